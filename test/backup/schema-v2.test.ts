// Backups written in manifest schema 2 (RocksDB's 2.1: sizes and temperatures): what the engine
// writes, reads back, verifies and restores, and what a size in the manifest then catches.
// RocksDB 10 reading them is in test/interop/rocksdb10.test.ts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine, type BackupEngineOptions } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn } from '../cli/run-cli.ts';

describe('manifest schema 2 (schemaVersion: 2)', () => {
  let work: string;
  let db: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-schema2-'));
    db = path.join(work, 'db');
    await writeFakeDb(db, {
      tables: [{ ...table(7, 20_000), temperature: 0x0c }, table(8, 30_000)],
      blobs: [table(10, 5_000)],
      wals: [{ number: 11, data: fakeWal(20) }],
      manifestNumber: 5, optionsNumber: 6, logNumber: 11, lastSequence: 10,
    });
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));
  const open = (bk: string, opts: Omit<BackupEngineOptions, 'env'> = {}) => BackupEngine.open({ env: new LocalEnv(bk), sync: false, ...opts });

  it('writes schema_version 2.1 with every file\'s size and the tables\' temperatures; reads, verifies and restores it', async () => {
    const bk = path.join(work, 'bk');
    const engine = await open(bk, { schemaVersion: 2 });
    const made = await engine.createBackup(db, { appMetadata: 'v2' });
    await engine.close();
    const lines = (await fsp.readFile(path.join(bk, 'meta', String(made.id)), 'utf8')).split('\n');
    assert.equal(lines[0], 'schema_version 2.1');
    assert.equal(lines[3], `metadata ${Buffer.from('v2').toString('hex').toUpperCase()}`);
    assert.equal(Number(lines[4]), made.numFiles);
    const entries = lines.slice(5, -1);
    assert.equal(entries.length, made.numFiles);
    for (const line of entries) {
      const m = /^(\S+) crc32 \d+ size (\d+)( temp (\S+))?$/.exec(line);
      assert.ok(m, line);
      assert.equal(Number(m[2]), (await fsp.stat(path.join(bk, m[1]))).size, `${m[1]}: size field`);
      assert.equal(m[4], m[1].includes('000007_') ? 'kCold' : undefined, `${m[1]}: temperature`);
    }

    const ro = await open(bk, { readOnly: true });
    try {
      const info = ro.getBackupInfo(made.id, { includeFileDetails: true });
      assert.deepEqual([info.numFiles, info.size, String(info.appMetadata)], [made.numFiles, made.size, 'v2']);
      assert.deepEqual((await ro.verifyBackup(made.id, { checksum: true })).problems, []);
      const out = path.join(work, 'restored');
      await ro.restore({ dbDir: out });
      for (const name of ['000007.sst', '000008.sst', '000010.blob', '000011.log']) {
        assert.deepEqual(await fsp.readFile(path.join(out, name)), await fsp.readFile(path.join(db, name)), name);
      }
    } finally {
      await ro.close();
    }

    // A stored file cut short: the size in the manifest flags the backup on open (a schema-1
    // manifest records no size for a private file, so only verify would see it).
    const manifest = entries.map((l) => l.split(' ')[0]).find((n) => n.includes('/MANIFEST-'))!;
    await fsp.truncate(path.join(bk, manifest), 10);
    const again = await open(bk, { readOnly: true });
    try {
      assert.deepEqual(again.listBackups(), []);
      const [bad] = again.listCorruptedBackups();
      assert.equal(bad.id, made.id);
      assert.ok(isCairnError(bad.error, 'Corruption') && bad.error.message.includes(manifest), bad.error.message);
    } finally {
      await again.close();
    }
  });

  it('the CLI: backup --schema-version 2 writes it; another version is a usage error (exit 2) that writes nothing', async () => {
    const bk = path.join(work, 'bk-cli');
    const bad = await cairn(['backup', '--db', db, '--backup-dir', bk, '--schema-version', '3']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--schema-version is 1 or 2, got "3"/);
    assert.deepEqual(await fsp.readdir(bk).catch(() => []), []);
    const r = await cairn(['backup', '--db', db, '--backup-dir', bk, '--schema-version', '2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { id } = JSON.parse(r.stdout);
    assert.equal((await fsp.readFile(path.join(bk, 'meta', String(id)), 'utf8')).split('\n')[0], 'schema_version 2.1');
    const shown = await cairn(['show', '--backup-dir', bk, '--id', String(id), '--files', '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(JSON.parse(shown.stdout).files.length, 7);
  });

  it('schema 1 stays the default, byte for byte RocksDB\'s; other versions are refused', async () => {
    const bk = path.join(work, 'bk1');
    const engine = await open(bk);
    await engine.createBackup(db);
    await engine.close();
    const text = await fsp.readFile(path.join(bk, 'meta', '1'), 'utf8');
    assert.match(text, /^\d+\n\d+\n7\n/);
    assert.ok(text.split('\n').slice(3, -1).every((l) => /^\S+ crc32 \d+$/.test(l)), text);
    for (const v of [0, 3]) {
      await assert.rejects(open(bk, { schemaVersion: v as 2 }), (e) => isCairnError(e, 'NotSupported'));
    }
  });
});
