// The engine suite (engine-suite.ts), backing up: layout, sharing, incremental, naming, metadata,
// delete and purge, progress.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BackupEngine } from '../../src/backup/engine.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, type FakeDbSpec } from './fake-db.ts';
import { listAll, readAll } from './env-conformance.ts';
import type { EngineCase } from './engine-suite.ts';
import { expectedFiles, dirContents, assertSameFiles, prefixed } from './engine-suite-helpers.ts';

export function backupTests(c: EngineCase): void {
  const { open, restoreDir, spec1 } = c;
  it('backs up, lists, restores byte-identical, with a RocksDB-format manifest', async () => {
    const { dbDir, n, sub } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open();
    const r = await e.createBackup(dbDir, { appMetadata: 'nightly' });
    assert.equal(r.id, 1);
    const expected = await expectedFiles(dbDir, spec);
    assert.equal(r.numFiles, expected.size);
    assert.equal(r.size, [...expected.values()].reduce((a, b) => a + b.length, 0));
    assert.equal(r.copiedBytes, r.size);
    assert.equal(r.sequence, 101n, 'sequence from the WAL beyond the MANIFEST');

    const meta = (await readAll(sub, 'meta/1')).toString();
    const lines = meta.split('\n');
    assert.match(lines[0], /^[0-9]+$/);
    assert.equal(lines[1], '101');
    assert.equal(lines[2], `metadata ${Buffer.from('nightly').toString('hex').toUpperCase()}`);
    assert.equal(lines[3], String(expected.size));
    const entries = new Map(lines.slice(4, -1).map((l) => {
      const [name, kw, crc] = l.split(' ');
      assert.equal(kw, 'crc32');
      return [name, Number(crc)];
    }));
    assert.equal(entries.get('shared_checksum/000008_' + crc32c(expected.get('000008.blob')!) + '_30000.blob'), crc32c(expected.get('000008.blob')!));
    assert.equal(entries.get('private/1/MANIFEST-000005'), crc32c(expected.get('MANIFEST-000005')!));
    assert.equal(entries.get('private/1/CURRENT'), crc32c(Buffer.from('MANIFEST-000005\n')));
    assert.ok(entries.has('private/1/OPTIONS-000006'));
    assert.ok(entries.has('private/1/000011.log'));
    assert.ok(!entries.has('private/1/000004.log'), 'obsolete WAL not backed up');
    assert.ok(![...entries.keys()].some((k) => /IDENTITY|LOCK|LOG$/.test(k)));
    // random bytes have no table properties: legacy crc32c naming for the tables
    assert.ok(entries.has(`shared_checksum/000007_${crc32c(expected.get('000007.sst')!)}_200000.sst`));

    const list = e.listBackups();
    assert.equal(list.length, 1);
    assert.equal(list[0].appMetadata.toString(), 'nightly');
    const out = restoreDir();
    await e.restore({ dbDir: out });
    assertSameFiles(await dirContents(out), expected, 'restore');
    await e.close();
  });

  it('incremental: unchanged table files are shared, not copied again', async () => {
    const { work, dbDir, n, sub } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open();
    const b1 = await e.createBackup(dbDir);
    const spec2: FakeDbSpec = { ...spec, tables: [...spec.tables, table(13, 50_000)], manifestNumber: 14, optionsNumber: 15 };
    await writeFakeDb(dbDir, spec2);
    const b2 = await e.createBackup(dbDir);
    assert.equal(b2.id, 2);
    const reused = 200_000 + 70_000 + 30_000;
    assert.equal(b2.sharedBytesReused, reused);
    assert.equal(b2.copiedBytes, b2.size - reused);
    const shared = await listAll(sub, 'shared_checksum/');
    assert.equal(shared.size, 4, 'three files from backup 1 + one new table');
    // a no-change backup copies only the private files
    const b3 = await e.createBackup(dbDir);
    assert.equal(b3.sharedBytesReused, reused + 50_000);
    await e.close();
    // both backups restore to their own state
    const e2 = await open({ readOnly: true });
    const out1 = restoreDir();
    await e2.restore({ backupId: 1, dbDir: out1 });
    await writeFakeDb(path.join(work, `ref${n}`), spec);
    const ref1 = await dirContents(out1);
    assert.ok(ref1.has('000007.sst') && !ref1.has('000013.sst'));
    assert.equal(ref1.get('CURRENT')!.toString(), 'MANIFEST-000005\n');
    const out2 = restoreDir();
    await e2.restore({ dbDir: out2 });
    assertSameFiles(await dirContents(out2), await expectedFiles(dbDir, spec2), 'latest restore');
    assert.equal(b1.id, 1);
  });

  it('a same-name shared file with another size is a Corruption error', async () => {
    const { dbDir, sub } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open({ naming: 'session-id' });
    await e.createBackup(dbDir);
    // table 9 rewritten with other content but same number: legacy crc naming differs, so
    // force a clash with shared/ plain naming instead
    const e2 = await BackupEngine.open({ env: prefixed(sub, 'plain/'), shareFilesWithChecksum: false });
    await e2.createBackup(dbDir);
    const spec2 = { ...spec, tables: [spec.tables[0], table(9, 71_000)] };
    await writeFakeDb(dbDir, spec2);
    await assert.rejects(e2.createBackup(dbDir), (err) => isCairnError(err, 'Corruption') && /000009\.sst/.test(err.message));
    assert.deepEqual(e2.listBackups().map((b) => b.id), [1], 'the failed backup is not published');
    await e.close();
    await e2.close();
  });

  it('legacy naming, no sharing and no WAL options lay files out as RocksDB does', async () => {
    const { dbDir, sub } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open({ shareTableFiles: false, backupLogFiles: false });
    const r = await e.createBackup(dbDir);
    const files = e.getBackupInfo(r.id, { includeFileDetails: true }).files!.map((f) => f.name).sort();
    assert.deepEqual(files, ['private/1/000007.sst', 'private/1/000008.blob', 'private/1/000009.sst', 'private/1/CURRENT', 'private/1/MANIFEST-000005', 'private/1/OPTIONS-000006']);
    assert.deepEqual(await listAll(sub, 'shared_checksum/'), new Map());
    await e.close();
  });

  it('app metadata over 1 MiB is refused', async () => {
    const { dbDir } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    await assert.rejects(e.createBackup(dbDir, { appMetadata: Buffer.alloc(1024 * 1024 + 1) }), (err) => isCairnError(err, 'InvalidArgument'));
    assert.equal(e.listBackups().length, 0);
    await e.close();
  });

  it('delete and purge drop only files no remaining backup needs', async () => {
    const { dbDir, sub } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open();
    await e.createBackup(dbDir);
    await writeFakeDb(dbDir, { ...spec, tables: [spec.tables[0], table(13, 10_000)], manifestNumber: 14 });
    await e.createBackup(dbDir);
    await e.createBackup(dbDir);
    await e.deleteBackup(1);
    const names = [...(await listAll(sub, '')).keys()];
    assert.ok(!names.some((x) => x.startsWith('private/1/')), 'private files of backup 1 gone');
    assert.ok(!names.includes('meta/1'));
    assert.ok(!names.some((x) => x.startsWith('shared_checksum/000009_')), 'table 9 was only in backup 1');
    assert.ok(names.some((x) => x.startsWith('shared_checksum/000007_')), 'table 7 still used');
    assert.deepEqual(await e.purgeOldBackups(1), [2]);
    assert.deepEqual(e.listBackups().map((b) => b.id), [3]);
    const out = restoreDir();
    await e.restore({ dbDir: out });
    assert.ok((await dirContents(out)).has('000013.sst'));
    await assert.rejects(e.deleteBackup(2), (err) => isCairnError(err, 'NotFound'));
    await e.purgeOldBackups(0);
    assert.deepEqual([...(await listAll(sub, '')).keys()], []);
    await e.close();
  });

  it('rate limiting holds a backup and a restore to the configured bytes per second, and the bytes restored are the DB\'s', async () => {
    const { dbDir } = c.now();
    // Larger than a provider's reused read buffers, limited to slices of 150 kB: no chunk a
    // provider reuses may be written after it moved on (the restored bytes say so).
    await writeFakeDb(dbDir, { ...spec1(), tables: [table(7, 1_800_000)], blobs: [] });
    const e = await open({ backupRateLimit: 3_000_000, restoreRateLimit: 3_000_000, maxBackgroundOperations: 4 });
    let t = performance.now();
    await e.createBackup(dbDir);
    assert.ok(performance.now() - t >= 450, `backup took ${performance.now() - t} ms for 1.8 MB at 3 MB/s`);
    t = performance.now();
    const out = restoreDir();
    await e.restore({ dbDir: out });
    assert.ok(performance.now() - t >= 450, `restore took ${performance.now() - t} ms`);
    assert.ok((await fsp.readFile(path.join(out, '000007.sst'))).equals(await fsp.readFile(path.join(dbDir, '000007.sst'))), 'restored table file = the DB\'s');
    await e.close();
  });

  it('maxValidBackupsToOpen, onlyBackupIds and destroyOldData', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    for (let i = 0; i < 3; i++) await e.createBackup(dbDir);
    await e.close();
    const ro = await open({ readOnly: true, maxValidBackupsToOpen: 2 });
    assert.deepEqual(ro.listBackups().map((b) => b.id), [2, 3]);
    // Only the manifest asked for is read.
    const reads: string[] = [];
    const counting = { ...sub, openRead: (name: string, o?: Parameters<typeof sub.openRead>[1]) => (reads.push(name), sub.openRead(name, o)) };
    const one = await BackupEngine.open({ env: counting, readOnly: true, onlyBackupIds: [2] });
    assert.deepEqual(one.listBackups().map((b) => b.id), [2]);
    assert.deepEqual(reads.filter((n) => n.startsWith('meta/')), ['meta/2']);
    const out = restoreDir();
    await one.restore({ dbDir: out });
    assertSameFiles(await dirContents(out), await expectedFiles(dbDir, spec1()), 'restored from a one-backup open');
    await one.close();
    await assert.rejects(open({ onlyBackupIds: [2] }), (err) => isCairnError(err, 'InvalidArgument') && /read-only/.test(err.message));
    const d = await open({ destroyOldData: true });
    assert.deepEqual(d.listBackups(), []);
    assert.deepEqual([...(await listAll(sub, '')).keys()], []);
    assert.equal((await d.createBackup(dbDir)).id, 1);
    await d.close();
  });

  it('reports progress and refuses a directory that is not a RocksDB DB', async () => {
    const { work, dbDir } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    const events: number[] = [];
    await e.createBackup(dbDir, { onProgress: (ev) => events.push(ev.filesDone) });
    assert.ok(events.length >= 7);
    assert.equal(events.at(-1), 7);
    await assert.rejects(e.createBackup(path.join(work, 'nope')), (err) => isCairnError(err, 'NotFound') && /CURRENT/.test(err.message));
    await fsp.rm(path.join(dbDir, '000009.sst'));
    await assert.rejects(e.createBackup(dbDir), (err) => isCairnError(err, 'NotFound') && /000009\.sst/.test(err.message));
    assert.deepEqual(e.listBackups().map((b) => b.id), [1]);
    await e.close();
  });
}
