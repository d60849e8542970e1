// The end-to-end engine suite: the themes of RocksDB's backup_engine_test.cc, run against every
// provider. Every test asserts on bytes restored, names stored and checksums, not on return codes.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine, type BackupEngineOptions, type VerifyOptions } from '../../src/backup/engine.ts';
import { WriterLock, listLocks } from '../../src/backup/writer-lock.ts';
import { waitFor } from './children.ts';
import type { BackupEnv } from '../../src/env.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from './fake-db.ts';
import { chunked, listAll, readAll, type MakeEnv, type EnvHandle } from './env-conformance.ts';

const pad = (n: number) => String(n).padStart(6, '0');

/** Files of the fake DB that a backup must contain, name → bytes. */
async function expectedFiles(dbDir: string, spec: FakeDbSpec): Promise<Map<string, Buffer>> {
  const names = [
    ...spec.tables.map((t) => `${pad(t.number)}.sst`),
    ...(spec.blobs ?? []).map((b) => `${pad(b.number)}.blob`),
    `MANIFEST-${pad(spec.manifestNumber)}`,
    'CURRENT',
    ...(spec.optionsNumber !== undefined ? [`OPTIONS-${pad(spec.optionsNumber)}`] : []),
    ...(spec.wals ?? []).filter((w) => w.number >= spec.logNumber).map((w) => `${pad(w.number)}.log`),
  ];
  const m = new Map<string, Buffer>();
  for (const n of names) m.set(n, await fsp.readFile(path.join(dbDir, n)));
  return m;
}

async function dirContents(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const n of await fsp.readdir(dir)) {
    const st = await fsp.stat(path.join(dir, n));
    if (st.isFile()) m.set(n, await fsp.readFile(path.join(dir, n)));
  }
  return m;
}

function assertSameFiles(actual: Map<string, Buffer>, expected: Map<string, Buffer>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: file names`);
  for (const [n, b] of expected) assert.ok(actual.get(n)!.equals(b), `${what}: ${n} differs`);
}

export function runEngineSuite(label: string, makeEnv: MakeEnv): void {
  describe(`engine end-to-end: ${label}`, () => {
    let h: EnvHandle;
    let env: BackupEnv;
    let work: string;
    let dbDir: string;
    let n = 0;
    // Each test gets its own sub-root of the env, so tests do not see each other's backups.
    let sub: BackupEnv;

    before(async () => {
      h = await makeEnv();
      env = h.env;
      work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-engine-'));
    });
    after(async () => {
      await env?.close();
      await h?.cleanup();
      await fsp.rm(work, { recursive: true, force: true });
    });
    beforeEach(async () => {
      n++;
      dbDir = path.join(work, `db${n}`);
      sub = prefixed(env, `t${n}/`);
    });

    const open = (o: Partial<BackupEngineOptions> = {}) => BackupEngine.open({ env: sub, maxBackgroundOperations: 3, ...o });
    const restoreDir = () => path.join(work, `restore${n}-${Math.random().toString(36).slice(2, 8)}`);

    const spec1 = (): FakeDbSpec => ({
      tables: [table(7, 200_000), table(9, 70_000)],
      blobs: [table(8, 30_000)],
      wals: [{ number: 4, data: fakeWal(10) }, { number: 11, data: fakeWal(101) }],
      manifestNumber: 5,
      optionsNumber: 6,
      logNumber: 11,
      lastSequence: 100,
    });

    it('backs up, lists, restores byte-identical, with a RocksDB-format manifest', async () => {
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
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      await assert.rejects(e.createBackup(dbDir, { appMetadata: Buffer.alloc(1024 * 1024 + 1) }), (err) => isCairnError(err, 'InvalidArgument'));
      assert.equal(e.listBackups().length, 0);
      await e.close();
    });

    it('delete and purge drop only files no remaining backup needs', async () => {
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

    it('corrupt manifests are listed as corrupted, never trusted, and the rest still works', async () => {
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

    it('one writer at a time: a held lock refuses other writers, readers go on, release lets the next in', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      await e.createBackup(dbDir);
      assert.deepEqual(await listLocks(sub), [], 'an operation leaves no lock behind');
      const held = await WriterLock.acquire(sub);
      const locked = (err: unknown) => isCairnError(err, 'Locked') && /locked by another writer \(.+ pid \d+/.test((err as Error).message);
      await assert.rejects(e.createBackup(dbDir), locked);
      await assert.rejects(e.purgeOldBackups(0), locked);
      await assert.rejects(e.deleteBackup(1), locked);
      await assert.rejects(open(), locked, 'a writable open cleans up, so it needs the lock too');
      const r = await open({ readOnly: true });
      assert.deepEqual(r.listBackups().map((b) => b.id), [1]);
      assert.deepEqual((await r.verifyBackup(1, { checksum: true })).problems, []);
      await held.release();
      assert.equal((await e.createBackup(dbDir)).id, 2);
      assert.deepEqual((await listAll(sub, 'locks/')).size, 0);
    });

    it('lock.hold: the lock taken by a writable open is held until close, and operations reuse it', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open({ lock: { hold: true } });
      const held = await listLocks(sub);
      assert.equal(held.length, 1);
      await assert.rejects(open(), (err) => isCairnError(err, 'Locked'));
      assert.equal((await e.createBackup(dbDir)).id, 1);
      assert.deepEqual(await e.purgeOldBackups(1), []);
      assert.deepEqual((await listLocks(sub)).map((l) => l.name), held.map((l) => l.name), 'the same lock throughout');
      await e.close();
      assert.deepEqual(await listLocks(sub), []);
      const next = await open();
      assert.equal((await next.createBackup(dbDir)).id, 2);
    });

    it('a writer sees what another process wrote meanwhile, and a stale lock is removed', async () => {
      await writeFakeDb(dbDir, spec1());
      const a = await open();
      const b = await open();
      await a.createBackup(dbDir);
      // b opened before backup 1 existed; it must not take 1's files for garbage, nor reuse id 1
      assert.equal((await b.createBackup(dbDir)).id, 2);
      await b.garbageCollect();
      assert.deepEqual((await (await open({ readOnly: true })).verifyBackup(1, { checksum: true })).problems, []);
      // a lock left by a dead writer (not refreshed for longer than staleAfter) is removed
      const old = new Date(Date.now() - 3_600_000).toISOString();
      await sub.write('locks/1-deadbeef', [Buffer.from(JSON.stringify({ host: 'gone', pid: 1, created: old, refreshed: old }))]);
      await a.purgeOldBackups(1);
      assert.deepEqual(a.listBackups().map((x) => x.id), [2]);
      assert.equal((await listAll(sub, 'locks/')).size, 0);
    });

    it('a backup deleted by another process while a reader uses it: said so, not reported as damage', async () => {
      await writeFakeDb(dbDir, spec1());
      const w = await open();
      const { id } = await w.createBackup(dbDir);
      await w.createBackup(dbDir); // keeps the shared files alive: only private/1 disappears
      const r = await open({ readOnly: true });
      await w.deleteBackup(id);
      const deleted = (e: unknown, what: string) => isCairnError(e, 'NotFound') && new RegExp(`backup ${id} was deleted while it was being ${what}`).test((e as Error).message);
      await assert.rejects(r.verifyBackup(id), (e) => deleted(e, 'verified'));
      const out = restoreDir();
      await assert.rejects(r.restore({ backupId: id, dbDir: out }), (e) => deleted(e, 'restored'));
      assert.ok(!(await fsp.readdir(out).catch(() => [] as string[])).includes('CURRENT'));
      // a backup that is still there but damaged is still reported as damage
      const r2 = await open({ readOnly: true });
      const b2 = r2.getBackupInfo(2, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('private/'))!;
      await sub.delete([b2.name]);
      const v = await r2.verifyBackup(2);
      assert.deepEqual(v.problems.map((p) => [p.file, p.code]), [[b2.name, 'NotFound']]);
    });

    it('a writer whose lock was taken away stops before its commit point', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      await e.createBackup(dbDir);
      const lock = await WriterLock.acquire(sub, { staleAfterMs: 60_000 });
      await lock.check();
      await sub.delete([lock.name]); // someone judged it stale
      await assert.rejects(lock.check(), (err) => isCairnError(err, 'Locked') && /removed by someone else/.test((err as Error).message));
      await lock.release();
      // a lock refreshed while held stays live past staleAfter: once its stored refresh time is
      // more than staleAfter after its creation (whenever a busy machine gets there), a writer
      // with the same staleAfter still finds it live, and its holder still owns it
      const staleAfterMs = 2500;
      const live = await WriterLock.acquire(sub, { staleAfterMs, refreshIntervalMs: 200 });
      await waitFor(async () => {
        const l = (await listLocks(sub)).find((x) => x.name === live.name);
        return l && Date.parse(l.refreshed) - Date.parse(l.created) > staleAfterMs ? l : undefined;
      }, 'a refresh past staleAfter');
      await assert.rejects(open({ lock: { staleAfterMs } }), (err) => isCairnError(err, 'Locked'));
      await live.check();
      await live.release();
    });

    it('two writers racing: at most one proceeds, the other gets Locked, every published backup is whole', async () => {
      await writeFakeDb(dbDir, spec1());
      await (await open()).createBackup(dbDir);
      const [a, b] = [await open(), await open()];
      const results = await Promise.allSettled([a.createBackup(dbDir), b.createBackup(dbDir)]);
      const ok = results.filter((x) => x.status === 'fulfilled');
      assert.ok(ok.length <= 1 || new Set(ok.map((x) => (x as PromiseFulfilledResult<{ id: number }>).value.id)).size === ok.length);
      for (const x of results) if (x.status === 'rejected') assert.ok(isCairnError(x.reason, 'Locked'), String(x.reason));
      const r = await open({ readOnly: true });
      assert.equal(r.listBackups().length, 1 + ok.length);
      assert.deepEqual(r.listCorruptedBackups(), []);
      for (const info of r.listBackups()) assert.deepEqual((await r.verifyBackup(info.id, { checksum: true })).problems, []);
    });

    it('a backup with a missing or resized file is corrupt; verify reports checksum damage', async () => {
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
      // Young shared files stay for a resumed backup (grace period); temporaries go at once.
      const r0 = await e.garbageCollect();
      assert.deepEqual(r0.deleted.sort(), ['meta/.2.tmp', 'private/1.tmp/CURRENT', 'private/5/CURRENT', 'shared_checksum/000125_s1_4.sst.1a2b3c4d.tmp']);
      assert.equal(r0.keptForResume, 2);
      const r = await e.garbageCollect({ graceMs: 0 });
      assert.deepEqual(r.deleted.sort(), ['shared/000124.sst', 'shared_checksum/000123_s1_4.sst']);
      assert.equal(r.keptForResume, 0);
      const after = await listAll(sub, '');
      assert.equal(after.size, before.size - 6);
      await e.verifyBackup(1, { checksum: true }).then((v) => assert.deepEqual(v.problems, []));
      await e.close();
    });

    it('restore replaces RocksDB files only, keeps WALs on request, restores any id', async () => {
      const spec = spec1();
      await writeFakeDb(dbDir, spec);
      const e = await open();
      await e.createBackup(dbDir);
      const out = restoreDir();
      await fsp.mkdir(out, { recursive: true });
      await fsp.writeFile(path.join(out, '000077.sst'), 'stale table');
      await fsp.writeFile(path.join(out, '000078.log'), 'newer wal');
      await fsp.writeFile(path.join(out, 'notes.txt'), 'not RocksDB: left alone');
      await e.restore({ dbDir: out, keepLogFiles: true });
      const got = await dirContents(out);
      assert.ok(!got.has('000077.sst'));
      assert.equal(got.get('000078.log')!.toString(), 'newer wal');
      assert.equal(got.get('notes.txt')!.toString(), 'not RocksDB: left alone');
      await e.restore({ dbDir: out });
      const got2 = await dirContents(out);
      assert.ok(!got2.has('000078.log'));
      got2.delete('notes.txt');
      assertSameFiles(got2, await expectedFiles(dbDir, spec), 'restore without keeping logs');
      // separate WAL dir
      const walOut = restoreDir();
      const out3 = restoreDir();
      await e.restore({ dbDir: out3, walDir: walOut });
      assert.deepEqual(await fsp.readdir(walOut), ['000011.log']);
      assert.ok(!(await fsp.readdir(out3)).includes('000011.log'));
      await assert.rejects(e.restore({ backupId: 42, dbDir: restoreDir() }), (err) => isCairnError(err, 'NotFound'));
      await e.close();
    });

    it('a large file is restored and checksum-verified in parallel ranges; damage and truncation are found', async () => {
      const part = sub.capabilities.parallelRanges?.partSize ?? 1 << 20;
      const spec: FakeDbSpec = { ...spec1(), tables: [table(7, Math.floor(part * 2.5) + 123), table(9, 70_000)] };
      await writeFakeDb(dbDir, spec);
      const e = await open();
      const b = await e.createBackup(dbDir);
      const out = restoreDir();
      await e.restore({ dbDir: out });
      assertSameFiles(await dirContents(out), await expectedFiles(dbDir, spec), 'restore of a multi-range file');
      assert.deepEqual((await e.verifyBackup(b.id, { checksum: true })).problems, []);
      const big = e.getBackupInfo(b.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
      const bytes = await readAll(sub, big.name);
      bytes[bytes.length - 10] ^= 0x55; // in the last range
      await sub.write(big.name, chunked(bytes));
      const r = await e.verifyBackup(b.id, { checksum: true });
      assert.deepEqual(r.problems.map((p) => [p.file, p.code]), [[big.name, 'Corruption']]);
      assert.match(r.problems[0].message, /checksum mismatch/);
      const out2 = restoreDir();
      await assert.rejects(e.restore({ dbDir: out2 }), (err) => isCairnError(err, 'Corruption') && err.message.includes(big.name));
      assert.ok(!(await fsp.readdir(out2)).includes('CURRENT'));
      // Truncated after the directory was opened: a range comes back short.
      await sub.write(big.name, chunked(bytes.subarray(0, part + 5)));
      const out3 = restoreDir();
      await assert.rejects(e.restore({ dbDir: out3 }), (err) => isCairnError(err, 'Corruption') && err.message.includes(big.name));
      assert.deepEqual((await fsp.readdir(out3)).filter((n) => n === 'CURRENT' || n.endsWith('.tmp')), []);
      await e.close();
    });

    it('verifying several backups with one checkedSharedFiles map reads each shared file once, and reports its damage for each backup', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      const b1 = await e.createBackup(dbDir);
      const b2 = await e.createBackup(dbDir);
      const sst = e.getBackupInfo(b2.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
      await e.close();
      const bytes = await readAll(sub, sst.name);
      bytes[777] ^= 0x10;
      await sub.write(sst.name, chunked(bytes));
      const reads = new Map<string, number>();
      const count = (name: string) => reads.set(name, (reads.get(name) ?? 0) + 1);
      const counting: BackupEnv = {
        ...sub,
        openRead: (name, o) => (count(name), sub.openRead(name, o)),
        ...(sub.serverChecksum ? { serverChecksum: (name: string, o?: { signal?: AbortSignal }) => (count(name), sub.serverChecksum!(name, o)) } : {}),
      };
      const v = await BackupEngine.open({ env: counting, readOnly: true, maxBackgroundOperations: 3 });
      const modes: VerifyOptions[] = [{ checksum: true }, ...(sub.capabilities.serverChecksum ? [{ serverChecksum: true }] : [])];
      for (const mode of modes) {
        for (const shared of [false, true]) {
          reads.clear();
          const checkedSharedFiles = shared ? new Map() : undefined;
          const r1 = await v.verifyBackup(b1.id, { ...mode, ...(checkedSharedFiles ? { checkedSharedFiles } : {}) });
          const r2 = await v.verifyBackup(b2.id, { ...mode, ...(checkedSharedFiles ? { checkedSharedFiles } : {}) });
          const seen = mode.serverChecksum && sub.capabilities.serverChecksumGaps ? [] : [[sst.name, 'Corruption']];
          for (const r of [r1, r2]) assert.deepEqual(r.problems.map((p) => [p.file, p.code]), seen, `${JSON.stringify(mode)} backup ${r.id}`);
          const sharedReads = [...reads].filter(([n]) => n.startsWith('shared'));
          const perFile = mode.checksum || !sub.capabilities.listsChecksums;
          if (perFile) assert.ok(sharedReads.length > 0);
          for (const [n, c] of sharedReads) assert.equal(c, shared ? 1 : 2, `${JSON.stringify(mode)} ${shared ? 'with' : 'without'} the map: ${n}`);
          // Private files belong to one backup: checked for each.
          if (mode.checksum) assert.ok([...reads.keys()].some((n) => n.startsWith(`private/${b2.id}/`)));
        }
      }
      await v.close();
    });

    it('verifyBackups: one pass lists each directory once, checks each file once, and reports per backup', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      const b1 = await e.createBackup(dbDir);
      const b2 = await e.createBackup(dbDir);
      const sst = e.getBackupInfo(b2.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
      await e.close();
      const bytes = await readAll(sub, sst.name);
      bytes[777] ^= 0x10;
      await sub.write(sst.name, chunked(bytes));
      await sub.write('meta/9', chunked(Buffer.from('not a manifest\n')));
      const reads = new Map<string, number>();
      const lists = new Map<string, number>();
      const count = (m: Map<string, number>, name: string) => m.set(name, (m.get(name) ?? 0) + 1);
      const counting: BackupEnv = {
        ...sub,
        list: (prefix, o) => (count(lists, prefix), sub.list(prefix, o)),
        openRead: (name, o) => (count(reads, name), sub.openRead(name, o)),
        ...(sub.serverChecksum ? { serverChecksum: (name: string, o?: { signal?: AbortSignal }) => (count(reads, name), sub.serverChecksum!(name, o)) } : {}),
      };
      const v = await BackupEngine.open({ env: counting, readOnly: true, maxBackgroundOperations: 3 });
      const modes: VerifyOptions[] = [{}, { checksum: true }, ...(sub.capabilities.serverChecksum ? [{ serverChecksum: true }] : [])];
      for (const mode of modes) {
        reads.clear();
        lists.clear();
        const rs = await v.verifyBackups('all', mode);
        assert.deepEqual(rs.map((r) => r.id), [b1.id, b2.id, 9]);
        const damaged = mode.checksum || (mode.serverChecksum && !sub.capabilities.serverChecksumGaps) ? [[sst.name, 'Corruption']] : [];
        for (const r of rs.slice(0, 2)) {
          assert.deepEqual(r.problems.map((p) => [p.file, p.code]), damaged, `${JSON.stringify(mode)} backup ${r.id}`);
          assert.equal(r.error, undefined);
          assert.equal(r.filesChecked, v.getBackupInfo(r.id).numFiles);
        }
        assert.ok(isCairnError(rs[2].error, 'Corruption'), 'the corrupt backup: its error, the others still verified');
        for (const [n, c] of reads) if (!n.startsWith('meta/')) assert.equal(c, 1, `${JSON.stringify(mode)}: ${n} read ${c} times`);
        if (mode.checksum) assert.ok([...reads.keys()].some((n) => n.startsWith(`private/${b1.id}/`)) && [...reads.keys()].some((n) => n.startsWith(`private/${b2.id}/`)));
        for (const [p, c] of lists) assert.equal(c, 1, `${JSON.stringify(mode)}: ${p} listed ${c} times`);
        if (!mode.serverChecksum) assert.deepEqual([...lists.keys()].sort(), ['locks/', 'private/', 'shared/', 'shared_checksum/'], 'and locks/ once, by the read lock');
      }
      // The same as verifyBackup of each, problem for problem.
      for (const id of [b1.id, b2.id]) {
        const [r] = await v.verifyBackups([id], { checksum: true });
        assert.deepEqual(r, { ...(await v.verifyBackup(id, { checksum: true })) });
      }
      await v.close();
    });

    it('rate limiting holds a backup and a restore to the configured bytes per second', async () => {
      await writeFakeDb(dbDir, { ...spec1(), tables: [table(7, 600_000)], blobs: [] });
      const e = await open({ backupRateLimit: 1_000_000, restoreRateLimit: 1_000_000, maxBackgroundOperations: 4 });
      let t = performance.now();
      await e.createBackup(dbDir);
      assert.ok(performance.now() - t >= 450, `backup took ${performance.now() - t} ms for 0.6 MB at 1 MB/s`);
      t = performance.now();
      await e.restore({ dbDir: restoreDir() });
      assert.ok(performance.now() - t >= 450, `restore took ${performance.now() - t} ms`);
      await e.close();
    });

    it('maxValidBackupsToOpen and destroyOldData', async () => {
      await writeFakeDb(dbDir, spec1());
      const e = await open();
      for (let i = 0; i < 3; i++) await e.createBackup(dbDir);
      await e.close();
      const ro = await open({ readOnly: true, maxValidBackupsToOpen: 2 });
      assert.deepEqual(ro.listBackups().map((b) => b.id), [2, 3]);
      const d = await open({ destroyOldData: true });
      assert.deepEqual(d.listBackups(), []);
      assert.deepEqual([...(await listAll(sub, '')).keys()], []);
      assert.equal((await d.createBackup(dbDir)).id, 1);
      await d.close();
    });

    it('reports progress and refuses a directory that is not a RocksDB DB', async () => {
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
  });
}

/** A view of an env under a sub-prefix, so tests share one server bucket without interfering. */
export function prefixed(env: BackupEnv, prefix: string): BackupEnv {
  const strip = (name: string) => name.slice(prefix.length);
  return {
    url: `${env.url}/${prefix}`,
    capabilities: env.capabilities,
    async *list(p, o) {
      for await (const f of env.list(prefix + p, o)) yield { ...f, name: strip(f.name) };
    },
    stat: async (name, o) => {
      const s = await env.stat(prefix + name, o);
      return s && { name, size: s.size };
    },
    openRead: (name, o) => env.openRead(prefix + name, o),
    write: (name, src, o) => env.write(prefix + name, src, o),
    delete: (names, o) => env.delete(names.map((x) => prefix + x), o),
    serverChecksum: env.serverChecksum && ((name, o) => env.serverChecksum!(prefix + name, o)),
    cleanupIncomplete: env.cleanupIncomplete && ((o) => env.cleanupIncomplete!(o)),
    prepare: env.prepare && ((o) => env.prepare!(o)),
    close: async () => {},
  };
}
