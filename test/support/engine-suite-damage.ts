// The engine suite (engine-suite.ts), damage and interruptions: corrupt manifests, missing or
// resized files, the DB's own checksums, resumed backups, read-only opens, garbage collection.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { type VerifyOptions } from '../../src/backup/engine.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table } from './fake-db.ts';
import { chunked, listAll, readAll } from './env-conformance.ts';
import type { EngineCase } from './engine-suite.ts';
import { expectedFiles, dirContents, assertSameFiles } from './engine-suite-helpers.ts';

export function damageTests(c: EngineCase): void {
  const { open, restoreDir, spec1 } = c;
  it('corrupt manifests are listed as corrupted, never trusted, and the rest still works', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    await e.createBackup(dbDir);
    await e.createBackup(dbDir);
    await e.createBackup(dbDir);
    await e.close();
    const good = (await readAll(sub, 'meta/2')).toString();
    await sub.write('meta/2', chunked(Buffer.from(good.replace(/crc32 ([0-9]+)/, 'crc32 0$1'))));
    await sub.write('meta/3', chunked(Buffer.from(good.replace(/private\/2\/CURRENT/, 'private/3/../../../../etc/passwd'))));
    const ro = await open({ readOnly: true });
    assert.deepEqual(ro.listBackups().map((b) => b.id), [1]);
    assert.deepEqual(ro.listCorruptedBackups().map((c) => c.id), [2, 3]);
    for (const c of ro.listCorruptedBackups()) assert.equal(c.error.code, 'Corruption');
    await assert.rejects(ro.restore({ backupId: 3, dbDir: restoreDir() }), (err) => isCairnError(err, 'Corruption'));
    const out = restoreDir();
    const info = await ro.restore({ dbDir: out });
    assert.equal(info.id, 1, 'latest valid backup');
    // a writer keeps the files a corrupt backup names until that backup is deleted
    const w = await open();
    await w.garbageCollect();
    assert.ok((await listAll(sub, 'private/2/')).size > 0);
    const r4 = await w.createBackup(dbDir);
    assert.equal(r4.id, 4, 'ids continue after corrupt backups');
    await w.deleteBackup(2);
    await w.deleteBackup(3);
    assert.equal((await listAll(sub, 'private/2/')).size, 0);
    assert.deepEqual(w.listBackups().map((b) => b.id), [1, 4]);
    await w.close();
  });

  it('a backup with a missing or resized file is corrupt; verify reports checksum damage', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    const b1 = await e.createBackup(dbDir);
    const b2 = await e.createBackup(dbDir);
    await e.close();
    const details = (await open({ readOnly: true })).getBackupInfo(b2.id, { includeFileDetails: true }).files!;
    const sst = details.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
    // flip one byte, same size: only checksum verification can see it
    const bytes = await readAll(sub, sst.name);
    bytes[1000] ^= 0xff;
    await sub.write(sst.name, chunked(bytes));
    const v = await open({ readOnly: true });
    const quick = await v.verifyBackup(b2.id);
    assert.deepEqual(quick.problems, []);
    const deep = await v.verifyBackup(b2.id, { checksum: true });
    assert.equal(deep.problems.length, 1);
    assert.equal(deep.problems[0].file, sst.name);
    assert.equal(deep.problems[0].code, 'Corruption');
    if (sub.capabilities.serverChecksum) {
      const srv = await v.verifyBackup(b2.id, { serverChecksum: true });
      // Where the store keeps no CRC32C, --server-checksum compares sizes only (and says so):
      // damage that keeps the size goes unseen there.
      assert.deepEqual(srv.problems.map((p) => p.file), sub.capabilities.serverChecksumGaps ? [] : [sst.name]);
    }
    // restore checks every byte and refuses, leaving no CURRENT behind
    const out = restoreDir();
    await assert.rejects(v.restore({ dbDir: out }), (err) => isCairnError(err, 'Corruption'));
    assert.ok(!(await fsp.readdir(out)).includes('CURRENT'));
    // a missing private file makes its backup corrupt on open
    await sub.delete([`private/${b1.id}/OPTIONS-000006`]);
    const v2 = await open({ readOnly: true });
    assert.deepEqual(v2.listCorruptedBackups().map((c) => c.id), [b1.id]);
    // a truncated private file: schema-1 manifests record no sizes, so (as in RocksDB) only
    // checksum verification and restore can tell
    await sub.write(`private/${b2.id}/MANIFEST-000005`, chunked(Buffer.from('short')));
    const v3 = await open({ readOnly: true });
    const deep2 = await v3.verifyBackup(b2.id, { checksum: true });
    assert.deepEqual(deep2.problems.map((p) => [p.file, p.code]).sort(), [[sst.name, 'Corruption'], [`private/${b2.id}/MANIFEST-000005`, 'Corruption']].sort());
    // files that vanish or change size after the directory was opened: every mode reports them
    const v4 = await open({ readOnly: true });
    const gone = details.find((f) => f.name !== sst.name && f.name.startsWith('shared_checksum/'))!;
    await sub.delete([gone.name]);
    await sub.write(`private/${b2.id}/MANIFEST-000005`, chunked(Buffer.from('shorter')));
    const modes: VerifyOptions[] = [{}, { checksum: true }, ...(sub.capabilities.serverChecksum ? [{ serverChecksum: true }] : [])];
    for (const mode of modes) {
      const r = await v4.verifyBackup(b2.id, mode);
      const codes = new Map(r.problems.map((p) => [p.file, p.code]));
      assert.equal(codes.get(gone.name), 'NotFound', JSON.stringify(mode));
      assert.equal(codes.get(`private/${b2.id}/MANIFEST-000005`), 'Corruption', JSON.stringify(mode));
      assert.match(r.problems.find((p) => p.file === `private/${b2.id}/MANIFEST-000005`)!.message, /size mismatch.*expected 5, found 7/);
    }
  });

  it('an interrupted backup publishes nothing; the next open keeps its shared files and the next backup reuses them', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, { ...spec1(), tables: [table(7, 3_000_000), table(9, 3_000_000), table(10, 3_000_000)] });
    const e = await open({ maxBackgroundOperations: 1, backupRateLimit: 8 * 1024 * 1024 });
    const ac = new AbortController();
    const p = e.createBackup(dbDir, { signal: ac.signal, onProgress: (ev) => { if (ev.bytesDone > 1_000_000) ac.abort(); } });
    await assert.rejects(p, (err) => isCairnError(err, 'Incomplete'));
    assert.equal((await listAll(sub, 'meta/')).size, 0);
    assert.equal(e.listBackups().length, 0);
    await e.close();
    const storedWhole = [...(await listAll(sub, 'shared_checksum/')).keys()];
    assert.ok(storedWhole.length >= 1, 'the stopped backup kept the shared file it had stored');
    assert.deepEqual([...(await listAll(sub, 'private/')).keys()], [], 'and removed its private files');
    // A crash left more behind: a private file, a table stored short (as a torn upload would
    // be if one could become visible) under the name table 9 maps to, and junk.
    const name9 = `shared_checksum/000009_${crc32c(await fsp.readFile(path.join(dbDir, '000009.sst')))}_3000000.sst`;
    await sub.write('private/1/MANIFEST-000005', chunked(Buffer.from('partial')));
    await sub.write(name9, chunked(Buffer.alloc(1000, 7)));
    await sub.write('shared_checksum/000099_1_5.sst', chunked(Buffer.from('torn!')));
    const e2 = await open();
    assert.deepEqual(e2.cleanedOnOpen.deleted, ['private/1/MANIFEST-000005'], 'only the private leftover goes on open');
    assert.equal(e2.cleanedOnOpen.keptForResume, storedWhole.length + 2);
    const r = await e2.createBackup(dbDir);
    assert.equal(r.id, 1);
    // A store that keeps no CRC32C of its own (the compatible S3 path) cannot show a leftover
    // holds the DB file's bytes: everything is uploaded again there.
    const checkable = sub.capabilities.serverChecksumGaps === undefined;
    assert.equal(r.filesResumed, checkable ? storedWhole.filter((x) => x !== name9).length : 0, 'every whole leftover reused');
    assert.equal(r.bytesResumed, 3_000_000 * r.filesResumed);
    assert.equal(r.bytesReused, r.bytesResumed);
    assert.equal(r.filesKept, r.filesResumed);
    assert.equal(r.copiedBytes, r.size - r.bytesResumed, 'everything else copied, the short table 9 again');
    assert.deepEqual((await e2.verifyBackup(1, { checksum: true })).problems, []);
    const out = restoreDir();
    await e2.restore({ dbDir: out });
    assertSameFiles(await dirContents(out), await expectedFiles(dbDir, { ...spec1(), tables: [table(7, 3_000_000), table(9, 3_000_000), table(10, 3_000_000)] }), 'resumed backup');
    const g = await e2.garbageCollect();
    assert.deepEqual(g.deleted, []);
    assert.equal(g.keptForResume, 1, 'the junk file is younger than the grace period');
    assert.deepEqual((await e2.garbageCollect({ graceMs: 0 })).deleted, ['shared_checksum/000099_1_5.sst']);
    await e2.close();
  });

  it('the DB\'s own file checksums: matching ones pass (schema 2 too); a file damaged on disk fails the backup naming it, nothing stored', async () => {
    const { dbDir, sub } = c.now();
    const spec = { ...spec1(), fileChecksums: true };
    await writeFakeDb(dbDir, spec);
    const e = await open({ shareFilesWithChecksum: false, schemaVersion: 2 });
    try {
      const good = await e.createBackup(dbDir);
      const shared = (await listAll(sub, 'shared/')).size;
      // table 10 is new and damaged (size kept): it has to be caught while it is copied
      const t10 = table(10, 40_000);
      await writeFakeDb(dbDir, { ...spec, manifestNumber: 12, tables: [...spec.tables, t10] });
      const bytes = Buffer.from(t10.data);
      bytes[20_000] ^= 1;
      await fsp.writeFile(path.join(dbDir, '000010.sst'), bytes);
      await assert.rejects(e.createBackup(dbDir), (err) => isCairnError(err, 'Corruption') && /^000010\.sst: .*MANIFEST records/.test((err as Error).message));
      assert.deepEqual([...(await listAll(sub, 'meta/')).keys()].filter((k) => k !== 'meta/.cairn-list-index'), [`meta/${good.id}`]);
      assert.equal((await listAll(sub, 'shared/')).size, shared, 'the damaged copy was not kept');
      assert.deepEqual((await e.verifyBackup(good.id, { checksum: true })).problems, []);
    } finally {
      await e.close();
    }
    // (A private file whose upload was in flight when the failure stopped the others may have
    // reached an object store all the same; the next writable open removes it.)
    await (await open()).close();
    assert.deepEqual([...(await listAll(sub, 'private/2/')).keys()], []);
  });

  it('a resumed backup uploads again a leftover whose crc32c differs from the DB file', async () => {
    const { dbDir, sub } = c.now();
    const spec = { ...spec1(), tables: [table(7, 200_000), table(9, 70_000)] };
    await writeFakeDb(dbDir, spec);
    const crc7 = crc32c(await fsp.readFile(path.join(dbDir, '000007.sst')));
    const name7 = `shared_checksum/000007_${crc7}_200000.sst`;
    // Same name and size, other bytes (the name's crc is what the writer computed, not checked here).
    await sub.write(name7, chunked(Buffer.alloc(200_000, 1)));
    const e = await open();
    const r = await e.createBackup(dbDir);
    assert.equal(r.filesResumed, 0);
    assert.equal(r.copiedBytes, r.size);
    assert.ok((await readAll(sub, name7)).equals(await fsp.readFile(path.join(dbDir, '000007.sst'))), 'overwritten with the DB file');
    assert.deepEqual((await e.verifyBackup(r.id, { checksum: true })).problems, []);
    await e.close();
  });

  it('read-only open changes nothing, even with garbage present', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    await e.createBackup(dbDir);
    await e.close();
    await sub.write('private/9/junk', chunked(Buffer.from('junk')));
    const before = await listAll(sub, '');
    const ro = await open({ readOnly: true });
    assert.equal(ro.listBackups().length, 1);
    await assert.rejects(ro.createBackup(dbDir), (err) => isCairnError(err, 'InvalidArgument'));
    await assert.rejects(ro.purgeOldBackups(0), (err) => isCairnError(err, 'InvalidArgument'));
    await ro.verifyBackup(1, { checksum: true });
    await ro.restore({ dbDir: restoreDir() });
    assert.deepEqual(await listAll(sub, ''), before);
  });

  it('garbage collection removes unreferenced shared files, orphan private dirs and tmp files', async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    await e.createBackup(dbDir);
    await sub.write('shared_checksum/000123_s1_4.sst', chunked(Buffer.from('abcd')));
    await sub.write('shared/000124.sst', chunked(Buffer.from('abcd')));
    await sub.write('private/5/CURRENT', chunked(Buffer.from('x')));
    await sub.write('private/1.tmp/CURRENT', chunked(Buffer.from('x')));
    await sub.write('meta/.2.tmp', chunked(Buffer.from('x')));
    await sub.write('shared_checksum/000125_s1_4.sst.1a2b3c4d.tmp', chunked(Buffer.from('abcd')));
    const before = await listAll(sub, '');
    // Young shared files stay for a resumed backup (grace period), and so do the temporaries of
    // shared files on a store whose interrupted writes leave them (local disk, temporaryTarget);
    // elsewhere such a name is an ordinary unreferenced file, and other temporaries go at once.
    const tmpKept = sub.temporaryTarget?.('shared_checksum/000125_s1_4.sst.1a2b3c4d.tmp') !== undefined;
    const r0 = await e.garbageCollect();
    assert.deepEqual(r0.deleted.sort(), ['meta/.2.tmp', 'private/1.tmp/CURRENT', 'private/5/CURRENT', ...(tmpKept ? [] : ['shared_checksum/000125_s1_4.sst.1a2b3c4d.tmp'])]);
    assert.equal(r0.keptForResume, tmpKept ? 3 : 2);
    const r = await e.garbageCollect({ graceMs: 0 });
    assert.deepEqual(r.deleted.sort(), ['shared/000124.sst', 'shared_checksum/000123_s1_4.sst', ...(tmpKept ? ['shared_checksum/000125_s1_4.sst.1a2b3c4d.tmp'] : [])]);
    assert.equal(r.keptForResume, 0);
    const after = await listAll(sub, '');
    assert.equal(after.size, before.size - 6);
    await e.verifyBackup(1, { checksum: true }).then((v) => assert.deepEqual(v.problems, []));
    await e.close();
  });
}
