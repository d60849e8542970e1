// Read locks (reader-lock.ts) and the deleting writer's side of them (WriterLock.beginDeleting),
// on a local directory; the engine wiring comes with restore/verify/delete/purge.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { LocalEnv } from '../../providers/local/index.ts';
import { WriterLock } from '../../src/backup/writer-lock.ts';
import { ReaderLock, lockHolders } from '../../src/backup/reader-lock.ts';
import { LOCK_DIR, HOST_TAG, encodeLock, type LockInfo } from '../../src/backup/lock-files.ts';
import { CairnError, isCairnError } from '../../src/errors.ts';
import type { BackupEnv } from '../../src/env.ts';

describe('read locks', () => {
  let work: string;
  let n = 0;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-rlock-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));
  const freshEnv = () => new LocalEnv(path.join(work, `d${++n}`));

  it('readers share the directory with each other and with a writer; list shows every holder with kind, pid and backups', async () => {
    const env = freshEnv();
    const r1 = await ReaderLock.acquire(env, { backupIds: [1] });
    const r2 = await ReaderLock.acquire(env, { backupIds: [1, 2] });
    const w = await WriterLock.acquire(env);
    assert.equal(r1.unprotected, undefined);
    const holders = await lockHolders(env);
    assert.deepEqual(holders.map((h) => [h.kind, h.pid, h.backupIds, h.stale]).sort(), [['read', process.pid, [1, 2], false], ['read', process.pid, [1], false], ['write', process.pid, [], false]].sort());
    assert.ok(holders.every((h) => h.ageSeconds >= 0 && h.readable));
    await Promise.all([r1.release(), r2.release(), w.release()]);
    assert.deepEqual(await lockHolders(env), []);
  });

  it('a deleting writer keeps the backups live readers hold and deletes the others', async () => {
    const env = freshEnv();
    const r = await ReaderLock.acquire(env, { backupIds: [2] });
    const w = await WriterLock.acquire(env);
    const { deletable, heldByReaders } = await w.beginDeleting([1, 2, 3]);
    assert.deepEqual(deletable, [1, 3]);
    assert.deepEqual([...heldByReaders.keys()], [2]);
    assert.equal(heldByReaders.get(2)![0].pid, process.pid);
    assert.deepEqual((await lockHolders(env)).find((h) => h.kind === 'write')!.backupIds, [1, 3], 'the announcement no longer names the kept backup');
    await w.endDeleting();
    await Promise.all([r.release(), w.release()]);
  });

  it('a reader waits while a writer announces deleting its backup: Locked after deletionWaitMs, proceeds once the writer is done', async () => {
    const env = freshEnv();
    const w = await WriterLock.acquire(env);
    assert.deepEqual((await w.beginDeleting([4])).deletable, [4]);
    await assert.rejects(ReaderLock.acquire(env, { backupIds: [4], deletionWaitMs: 0 }), (e) =>
      isCairnError(e, 'Locked') && /backup 4 .* is being deleted by writer \(.+ pid \d+, deleting backup 4/.test((e as Error).message));
    assert.deepEqual((await lockHolders(env)).map((h) => h.kind), ['write'], 'the turned-away reader removed its lock');
    const other = await ReaderLock.acquire(env, { backupIds: [5], deletionWaitMs: 0 });
    await other.release();
    const waiting = ReaderLock.acquire(env, { backupIds: [4] });
    // The reader is waiting once its lock is listed; the writer then finishes.
    while (!(await lockHolders(env)).some((h) => h.kind === 'read')) await new Promise((r) => setImmediate(r));
    await w.endDeleting();
    const r = await waiting;
    await Promise.all([r.release(), w.release()]);
  });

  it('a read lock of a dead process of this host is stale at once and protects nothing', async () => {
    const env = freshEnv();
    const gone = await new Promise<number>((resolve) => {
      const c = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
      c.once('exit', () => resolve(c.pid!));
    });
    const now = new Date().toISOString();
    const info: LockInfo = { name: `${LOCK_DIR}${Date.now()}-00000000-r-${gone}-${HOST_TAG}`, kind: 'read', host: 'x', pid: gone, created: now, refreshed: now, readable: true, backupIds: [1] };
    await env.write(info.name, [encodeLock({ ...info, host: (await import('node:os')).hostname() })]);
    assert.equal((await lockHolders(env))[0].stale, true);
    const w = await WriterLock.acquire(env);
    assert.deepEqual((await w.beginDeleting([1])).deletable, [1]);
    await w.release();
  });

  it('without write access to locks/ a reader still reads, told that it is unprotected', async () => {
    const env = freshEnv();
    const readOnly: BackupEnv = Object.create(env, {
      write: { value: async (name: string) => { throw new CairnError('PermissionDenied', `write: permission denied on ${name}`); } },
    });
    const g = await ReaderLock.acquire(readOnly, { backupIds: [3] });
    assert.match(g.unprotected ?? '', /no read lock could be taken .* a delete, purge or gc running meanwhile may remove files of backup 3/);
    await g.check();
    await g.release();
    // Other failures are failures.
    const broken: BackupEnv = Object.create(env, { write: { value: async () => { throw new CairnError('IOError', 'disk on fire'); } } });
    await assert.rejects(ReaderLock.acquire(broken, { backupIds: [3] }), (e) => isCairnError(e, 'IOError'));
  });

  it('a reader refreshes its lock and notices when it was removed as stale', async () => {
    const env = freshEnv();
    const r = (await ReaderLock.acquire(env, { backupIds: [1], refreshIntervalMs: 50, staleAfterMs: 60_000 })) as ReaderLock;
    const first = (await lockHolders(env))[0].refreshed;
    while ((await lockHolders(env))[0].refreshed === first) await new Promise((res) => setTimeout(res, 20));
    await env.delete([r.name]);
    await assert.rejects(r.check(), (e) => isCairnError(e, 'Locked') && /read lock .* was removed by someone else/.test((e as Error).message));
    await r.release();
  });
});
