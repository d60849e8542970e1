// The writer lock's protocol details on a local directory (the engine suite runs the lock
// end to end on every provider).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { hostname, tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { LocalEnv } from '../../providers/local/index.ts';
import { WriterLock, listLocks, LOCK_DIR } from '../../src/backup/writer-lock.ts';
import { HOST_TAG, LOCK_WRITE_GRACE } from '../../src/backup/lock-files.ts';
import { isCairnError } from '../../src/errors.ts';
import { waitFor } from '../support/children.ts';

describe('writer lock', () => {
  let work: string;
  let n = 0;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-lock-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));
  const freshEnv = () => new LocalEnv(path.join(work, `d${++n}`));
  const put = (env: LocalEnv, name: string, body: string) => env.write(`${LOCK_DIR}${name}`, [Buffer.from(body)]);

  it('a lock file it cannot parse (or an empty one) is live only as long as a lock write can take, judged by its modification time', async () => {
    const env = freshEnv();
    await put(env, `${Date.now() - 3_600_000}-feedfacefeedface`, '\u0000garbage');
    await assert.rejects(WriterLock.acquire(env), (e) => isCairnError(e, 'Locked') && /an unreadable lock locks\/\d+-feedfacefeedface/.test((e as Error).message),
      'just written: it may be a lock being written, whatever its name says');
    const old = (Date.now() - 2 * LOCK_WRITE_GRACE) / 1000;
    for (const f of await fsp.readdir(path.join(env.root, 'locks'))) await fsp.utimes(path.join(env.root, 'locks', f), old, old);
    const lock = await WriterLock.acquire(env);
    assert.deepEqual((await listLocks(env)).map((l) => l.name), [lock.name], 'older than a lock write can take: stale and removed');
    await lock.release();

    const env2 = freshEnv();
    await put(env2, `${Date.now()}-feedfacefeedface`, '');
    await assert.rejects(WriterLock.acquire(env2, { writeGraceMs: 60_000 }), (e) => isCairnError(e, 'Locked'));
    const lock2 = await WriterLock.acquire(env2, { writeGraceMs: 0 });
    await lock2.release();
    assert.deepEqual(await listLocks(env2), []);

    const env3 = freshEnv();
    await put(env3, 'no-time-in-this-name', '{}');
    await put(env3, `${Date.now()}-0000000000000000`, JSON.stringify({ host: 'h', pid: 7, created: 'yesterday', refreshed: 'never' }));
    const lock3 = await WriterLock.acquire(env3);
    assert.deepEqual((await listLocks(env3)).map((l) => l.name), [lock3.name], 'both were stale and removed');
    await lock3.release();
  });

  it('an empty lock whose name names a process of this host that is gone is stale at once', async () => {
    const env = freshEnv();
    const gone = await new Promise<number>((resolve) => {
      const c = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
      c.once('exit', () => resolve(c.pid!));
    });
    // What a writer killed between creating its temporary lock file and writing it leaves.
    await fsp.mkdir(path.join(env.root, 'locks'), { recursive: true });
    await fsp.writeFile(path.join(env.root, 'locks', `${Date.now()}-0badc0de-w-${gone}-${HOST_TAG}.9f9f9f9f.tmp`), '');
    // The same from a live process of this host is a lock being written: it blocks.
    await fsp.writeFile(path.join(env.root, 'locks', `${Date.now()}-0badc0de-w-${process.ppid}-${HOST_TAG}`), '');
    await assert.rejects(WriterLock.acquire(env), (e) => isCairnError(e, 'Locked') && new RegExp(`of pid ${process.ppid}`).test((e as Error).message));
    await fsp.rm(path.join(env.root, 'locks', `${(await fsp.readdir(path.join(env.root, 'locks'))).find((n) => !n.endsWith('.tmp'))}`));
    const lock = await WriterLock.acquire(env);
    assert.deepEqual(await fsp.readdir(path.join(env.root, 'locks')), [lock.name.slice(LOCK_DIR.length)], 'the dead one was removed');
    await lock.release();
  });

  it('of writers that start together exactly one proceeds, and the others name a holder', async () => {
    for (let round = 0; round < 20; round++) {
      const env = freshEnv();
      const results = await Promise.allSettled([0, 1, 2].map(() => WriterLock.acquire(env, { staleAfterMs: 60_000 })));
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status === 'rejected' ? (r.reason as Error).message : 'proceeded').join(' | ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isCairnError(r.reason, 'Locked') && /locked by another writer \(.+ pid \d+/.test(r.reason.message), String(r.reason));
      await (won[0] as PromiseFulfilledResult<WriterLock>).value.release();
      assert.deepEqual(await listLocks(env), [], 'the losers removed their locks');
    }
  });

  it('a lock of this host is live while its process runs, and stale once it is gone', async () => {
    const env = freshEnv();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const now = new Date().toISOString();
      await put(env, `${Date.now()}-0123456789abcdef`, JSON.stringify({ host: hostname(), pid: child.pid, created: now, refreshed: now }));
      await assert.rejects(WriterLock.acquire(env), (e) => isCairnError(e, 'Locked') && new RegExp(`pid ${child.pid}`).test((e as Error).message));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const lock = await WriterLock.acquire(env);
    assert.deepEqual((await listLocks(env)).map((l) => l.name), [lock.name]);
    await lock.release();
  });

  it('a holder rewrites its lock while it holds it, and names itself in it', async () => {
    const env = freshEnv();
    const lock = await WriterLock.acquire(env, { staleAfterMs: 60_000, refreshIntervalMs: 100 });
    const first = (await listLocks(env))[0];
    assert.equal(first.pid, process.pid);
    // waits for the first rewrite, however late a busy machine runs the refresh timer
    const later = await waitFor(async () => {
      const l = (await listLocks(env))[0];
      return l && l.refreshed !== first.refreshed ? l : undefined;
    }, 'a refreshed lock');
    assert.equal(later.name, first.name);
    assert.equal(later.created, first.created);
    assert.ok(Date.parse(later.refreshed) > Date.parse(first.refreshed), `${later.refreshed} after ${first.refreshed}`);
    await lock.release();
  });

  it('a holder that cannot refresh for longer than staleAfter considers its lock lost', async () => {
    const env = freshEnv();
    const lock = await WriterLock.acquire(env, { staleAfterMs: 300, refreshIntervalMs: 60_000 });
    await lock.check();
    // time itself is the condition here: staleAfter passes without a refresh (a busy machine only makes it longer)
    await new Promise((r) => setTimeout(r, 400));
    await assert.rejects(lock.check(), (e) => isCairnError(e, 'Locked') && /could not be refreshed/.test((e as Error).message));
    await lock.release();
  });
});
