import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCairnError } from '../../src/errors.ts';
import { parseDbFileName } from '../../src/rocksdb/filename.ts';
import { readLogRecords } from '../../src/rocksdb/log-reader.ts';
import { DEFAULT_LOG_WINDOW, FileLogSource } from '../../src/rocksdb/log-source.ts';
import { readManifest } from '../../src/rocksdb/manifest.ts';
import { lastSequenceInWal, lastSequenceInWalFile, WRITE_BATCH_HEADER_SIZE, writeBatchHeader } from '../../src/rocksdb/write-batch.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { BLOCK, FIXTURES, fixed32, fixed64, logOf } from './helpers.ts';

const run = promisify(execFile);
const tools = await Promise.all([run('db_bench', ['--version']), run('ldb', ['--version'])]).then(() => true, () => false);
const skip = requireOrSkip(tools, 'db_bench and ldb (Debian package rocksdb-tools)');

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

describe('lastSequenceInWalFile on WALs written by db_bench', { skip }, () => {
  let work: string;
  const wal = (db: string): { path: string; name: string } => {
    const names = readdirSync(join(work, db)).filter((f) => parseDbFileName(f)?.type === 'wal');
    assert.equal(names.length, 1, `${db} has one WAL`);
    return { path: join(work, db, names[0]), name: names[0] };
  };
  /** seq + count - 1 of the last batch `ldb dump_wal` lists (lines "seq,count,size,offset,..."). */
  const ldbLastSequence = async (p: string): Promise<number> => {
    const { stdout } = await run('ldb', ['dump_wal', `--walfile=${p}`], { maxBuffer: 64 << 20 });
    let last = 0;
    for (const m of stdout.matchAll(/^(\d+),(\d+),/gm)) last = Math.max(last, Number(m[1]) + Number(m[2]) - 1);
    return last;
  };

  before(async () => {
    work = await fsp.mkdtemp(join(tmpdir(), 'cairn-wal-scan-'));
    const common = ['--write_buffer_size=268435456', '--compression_type=none', '--stats_interval_seconds=0'];
    // 450 puts of 100 KB: a WAL of ~43 MiB whose every record spans four blocks (nothing is flushed).
    await run('db_bench', [`--db=${join(work, 'big')}`, '--benchmarks=fillseq', '--num=450', '--value_size=100000', ...common]);
    // Small puts in batches of 7: records of many batches per block, sequence = first + count - 1.
    await run('db_bench', [`--db=${join(work, 'batched')}`, '--benchmarks=fillrandom', '--num=20000', '--value_size=100', '--batch_size=7', '--seed=1', ...common]);
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('gives the sequence ldb dump_wal shows and the whole-Buffer path gives, through any window', async () => {
    for (const db of ['big', 'batched']) {
      const { path, name } = wal(db);
      const expected = await ldbLastSequence(path);
      assert.ok(expected >= 450, `${db}: ldb lists batches`);
      assert.equal(lastSequenceInWalFile(path, name), expected, db);
      assert.equal(lastSequenceInWalFile(path, name, { windowBytes: BLOCK }), expected, `${db}, 1-block window`);
      assert.equal(lastSequenceInWal(readFileSync(path), name), expected, `${db}, whole Buffer`);
    }
  });

  it('scans a WAL of 40+ MiB through its window alone: no view beyond a block, no record beyond a batch header', () => {
    const { path, name } = wal('big');
    const size = statSync(path).size;
    assert.ok(size > 40 * 1024 * 1024, `WAL is ${size} bytes`);
    const src = new FileLogSource(path);
    try {
      let records = 0;
      for (const r of readLogRecords(src, { file: name, recordPrefix: WRITE_BATCH_HEADER_SIZE })) {
        assert.ok(r.length <= WRITE_BATCH_HEADER_SIZE, `record ${records} is ${r.length} bytes`);
        records++;
      }
      assert.equal(records, 450);
      assert.equal(src.windowBytes, DEFAULT_LOG_WINDOW, 'the only buffer the source holds');
      assert.ok(src.largestView <= BLOCK, `largest view ${src.largestView}`);
      assert.equal(src.loads, Math.ceil(size / DEFAULT_LOG_WINDOW), 'one sequential pass, each window read once');
    } finally {
      src.close();
    }
  });
});
