import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCairnError } from '../../src/errors.ts';
import { parseDbFileName } from '../../src/rocksdb/filename.ts';
import { readLogRecords } from '../../src/rocksdb/log-reader.ts';
import { readManifest } from '../../src/rocksdb/manifest.ts';
import { lastSequenceInWal, writeBatchHeader } from '../../src/rocksdb/write-batch.ts';
import { FIXTURES, fixed32, fixed64, logOf } from './helpers.ts';

const batch = (sequence: number | bigint, count: number, body = 'x'): Buffer => Buffer.concat([fixed64(sequence), fixed32(count), Buffer.from(body)]);

describe('lastSequenceInWal', () => {
  it('matches ldb dump_wal on the fixture WALs', () => {
    let checked = 0;
    for (const db of ['db-basic', 'db-blob', 'db-cf']) {
      const x = JSON.parse(readFileSync(join(FIXTURES, `${db}.expected.json`), 'utf8'));
      for (const [name, w] of Object.entries(x.wals as Record<string, { batches: number; lastSequence: number | null }>)) {
        const got = lastSequenceInWal(readFileSync(join(FIXTURES, db, name)), name);
        assert.equal(got ?? null, w.lastSequence, `${db}/${name}`);
        if (w.batches > 0) checked++;
      }
    }
    assert.ok(checked >= 4);
  });

  it('with the MANIFEST, gives the sequence number ldb backup recorded in each backup', async () => {
    const root = join(FIXTURES, 'backup-ldb', 'backups');
    for (const id of ['1', '2']) {
      const recorded = Number(readFileSync(join(root, 'meta', id), 'latin1').split('\n')[1]);
      const dir = join(root, 'private', id);
      const files = readdirSync(dir);
      const manifest = await readManifest(join(dir, files.find((f) => parseDbFileName(f)?.type === 'manifest')!));
      const wals = files.filter((f) => parseDbFileName(f)?.type === 'wal');
      assert.ok(wals.length >= 2, `backup ${id} has WALs`);
      let last = manifest.lastSequence;
      for (const w of wals) {
        assert.ok(parseDbFileName(w)!.number >= manifest.minLogNumber, `${w} is live`);
        last = Math.max(last, lastSequenceInWal(readFileSync(join(dir, w)), w) ?? 0);
      }
      assert.equal(last, recorded, `backup ${id}`);
    }
  });

  it('reads a zstd-compressed WAL written by RocksDB like ldb dump_wal does', () => {
    const dir = join(FIXTURES, 'wal-zstd');
    const x = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    const entries = Object.entries(x.wals as Record<string, { batches: number; firstSequence: number; lastSequence: number }>);
    assert.equal(entries.length, 1);
    for (const [name, w] of entries) {
      const data = readFileSync(join(dir, name));
      assert.equal(data[6], 9, 'starts with a SetCompressionType record');
      const records = [...readLogRecords(data, { file: name })];
      assert.equal(records.length, w.batches);
      assert.equal(writeBatchHeader(records[0]).sequence, w.firstSequence);
      assert.equal(lastSequenceInWal(data, name), w.lastSequence);
    }
  });

  it('takes the largest sequence + count - 1 over all batches', () => {
    assert.equal(lastSequenceInWal(logOf([batch(10, 3), batch(13, 1), batch(14, 5)])), 18);
    assert.equal(lastSequenceInWal(logOf([batch(2 ** 40, 2)])), 2 ** 40 + 1);
    assert.equal(lastSequenceInWal(logOf([batch(50, 2), batch(7, 1)])), 51);
  });

  it('is undefined for an empty or zero-filled WAL', () => {
    assert.equal(lastSequenceInWal(Buffer.alloc(0)), undefined);
    assert.equal(lastSequenceInWal(Buffer.alloc(4096)), undefined);
  });

  it('ignores a torn last batch', () => {
    const full = logOf([batch(1, 2), batch(3, 4, 'y'.repeat(100))]);
    assert.equal(lastSequenceInWal(full.subarray(0, full.length - 10), '000007.log'), 2);
  });

  it('refuses a record too small for a batch header, or a sequence beyond 2^53', () => {
    assert.throws(
      () => lastSequenceInWal(logOf([Buffer.alloc(11)]), '000007.log'),
      (e) => isCairnError(e, 'Corruption') && e.file === '000007.log' && /too small/.test(e.message),
    );
    assert.throws(() => writeBatchHeader(batch(2n ** 60n, 1), 'w'), (e) => isCairnError(e, 'Corruption'));
  });
});
