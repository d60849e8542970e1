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

  it('a lock file it cannot parse is live while its name says it is recent, then stale', async () => {
    const env = freshEnv();
    await put(env, `${Date.now()}-feedfacefeedface`, '\u0000garbage');
    await assert.rejects(WriterLock.acquire(env), (e) => isCairnError(e, 'Locked') && /\? pid 0/.test((e as Error).message));
    const env2 = freshEnv();
    await put(env2, `${Date.now() - 3_600_000}-feedfacefeedface`, 'not json');
    await put(env2, 'no-time-in-this-name', '{}');
    await put(env2, `${Date.now()}-0000000000000000`, JSON.stringify({ host: 'h', pid: 7, created: 'yesterday', refreshed: 'never' }));
    const lock = await WriterLock.acquire(env2);
    assert.deepEqual((await listLocks(env2)).map((l) => l.name), [lock.name], 'all three were stale and removed');
    await lock.release();
    assert.deepEqual(await listLocks(env2), []);
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
