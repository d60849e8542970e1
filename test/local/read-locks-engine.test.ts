// The engine's side of read locks: restore and verify hold one on the backups they read for as
// long as they read; without write access to locks/ they still read and say they are
// unprotected; deleteBackups keeps what a live reader holds. (Across processes: test/cli/read-locks.test.ts.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LocalEnv } from '../../providers/local/index.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { ReaderLock, lockHolders } from '../../src/backup/reader-lock.ts';
import { CairnError, isCairnError } from '../../src/errors.ts';
import type { BackupEnv } from '../../src/env.ts';
import { writeFakeDb } from '../support/fake-db.ts';

/** `env` with hooks: writes to locks/ denied (read-only credentials), a callback on each read. */
function wrap(env: BackupEnv, opts: { denyLocks?: boolean; onRead?: (name: string) => Promise<void> }): BackupEnv {
  return new Proxy(env, {
    get(t, p) {
      if (p === 'write' && opts.denyLocks) {
        return (name: string, ...rest: unknown[]) => name.startsWith('locks/')
          ? Promise.reject(new CairnError('PermissionDenied', `write ${name}: access denied`))
          : (t.write as (...a: unknown[]) => unknown)(name, ...rest);
      }
      if (p === 'openRead' && opts.onRead) {
        return async (name: string, ...rest: unknown[]) => {
          await opts.onRead!(name);
          return (t.openRead as (...a: unknown[]) => unknown).call(t, name, ...rest);
        };
      }
      const v = Reflect.get(t, p, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

describe('engine read locks', () => {
  let work: string;
  let bk: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-rl-engine-'));
    bk = path.join(work, 'bk');
    const db = path.join(work, 'db');
    const e = await BackupEngine.open({ env: new LocalEnv(bk) });
    for (const n of [1, 2]) {
      await writeFakeDb(db, { tables: [{ number: 10 + n, data: randomBytes(5000) }], manifestNumber: 20 + n, logNumber: 30 + n, lastSequence: 40 + n });
      await e.createBackup(db);
    }
    await e.close();
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('restore and verify hold a read lock on the backups they read while reading, and release it', async () => {
    const seen: number[][] = [];
    const local = new LocalEnv(bk);
    const env = wrap(local, { onRead: async () => { seen.push(...(await lockHolders(local)).filter((h) => h.kind === 'read').map((h) => h.backupIds)); } });
    const e = await BackupEngine.open({ env, readOnly: true });
    const warnings: string[] = [];
    await e.restore({ backupId: 1, dbDir: path.join(work, 'r1'), onWarning: (m) => warnings.push(m) });
    assert.ok(seen.length > 0 && seen.every((ids) => ids.join() === '1'), `restore read under a lock on backup 1: ${JSON.stringify(seen)}`);
    seen.length = 0;
    const results = await e.verifyBackups('all', { checksum: true, onWarning: (m) => warnings.push(m) });
    assert.deepEqual(results.map((r) => [r.id, r.problems.length, r.error]), [[1, 0, undefined], [2, 0, undefined]]);
    assert.ok(seen.length > 0 && seen.every((ids) => ids.join() === '1,2'), `verify read under a lock on backups 1, 2: ${JSON.stringify(seen)}`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(await lockHolders(local), []);
    await e.close();
  });

  it('without write access to locks/, restore and verify still read and warn that they are unprotected', async () => {
    const env = wrap(new LocalEnv(bk), { denyLocks: true });
    const e = await BackupEngine.open({ env, readOnly: true });
    const warnings: string[] = [];
    const info = await e.restore({ dbDir: path.join(work, 'r2'), onWarning: (m) => warnings.push(m) });
    assert.equal(info.id, 2);
    assert.equal((await e.verifyBackup(1, { onWarning: (m) => warnings.push(m) })).problems.length, 0);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /no read lock could be taken .*access denied.*backup 2 /);
    assert.match(warnings[1], /backup 1 while they are read/);
    await e.close();
  });

  it('deleteBackups keeps what a live reader holds; deleteBackup of it fails with Locked and deletes nothing', async () => {
    const env = new LocalEnv(bk);
    const reader = await ReaderLock.acquire(env, { backupIds: [1] });
    const e = await BackupEngine.open({ env: new LocalEnv(bk) });
    try {
      await assert.rejects(e.deleteBackup(1), (err) => isCairnError(err, 'Locked') && /backup 1 .* is being read by reader \(.*reading backup 1/.test((err as Error).message));
      assert.deepEqual(e.listBackups().map((b) => b.id), [1, 2]);
      const r = await e.deleteBackups([1, 2]);
      assert.deepEqual(r.deleted, [2]);
      assert.deepEqual(r.keptForReaders.map((k) => k.id), [1]);
      assert.match(r.keptForReaders[0].readers[0], new RegExp(`pid ${process.pid}, reading backup 1`));
      assert.deepEqual(e.listBackups().map((b) => b.id), [1]);
      assert.deepEqual((await lockHolders(env)).map((h) => [h.kind, h.backupIds]), [['read', [1]]], 'the writer withdrew its announcement and released its lock');
    } finally {
      await reader.release();
    }
    assert.deepEqual(await e.purgeOldBackups(0), [1]);
    assert.deepEqual(await fsp.readdir(path.join(bk, 'meta')), []);
    await e.close();
  });
});
