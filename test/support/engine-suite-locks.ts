// The engine suite (engine-suite.ts), the writer lock and other processes: one writer at a time,
// stale and lost locks, races, concurrent deletes.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import { WriterLock, listLocks } from '../../src/backup/writer-lock.ts';
import { waitFor } from './children.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb } from './fake-db.ts';
import { listAll } from './env-conformance.ts';
import type { EngineCase } from './engine-suite.ts';

export function lockTests(c: EngineCase): void {
  const { open, restoreDir, spec1 } = c;
  it('one writer at a time: a held lock refuses other writers, readers go on, release lets the next in', async () => {
    const { dbDir, sub } = c.now();
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
    const { dbDir, sub } = c.now();
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
    const { dbDir, sub } = c.now();
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
    const { dbDir, sub } = c.now();
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
    const { dbDir, sub } = c.now();
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
    const { dbDir } = c.now();
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
}
