// One writer at a time per backup directory. RocksDB leaves this to its user; cairn runs from
// cron jobs and CI on several hosts against one bucket, where two writers overlap sooner or later,
// and an overlapping clean-up deletes the shared files another writer has uploaded but not yet
// published: its backup then names files that are gone.
//
// The protocol is restic's, made to pick one of two writers that start together instead of
// turning both away: write a lock of one's own under locks/ ('pending'), then list locks/.
// Another writer that holds the lock, or a pending one whose name sorts first, wins: back off.
// Pending writers whose names sort after this one's back off when they see it; wait until they
// have gone (or one turns out to hold the lock: back off), then mark the lock 'held' and
// proceed. Every writer lists after writing its own lock, so of two that overlap at least one
// sees the other, and both see the same order: never two proceed, and of two simultaneous ones
// exactly one does. This needs nothing from the store but a listing that shows what was written
// before it (S3 and GCS are strongly consistent; create-only writes, which S3 and GCS also
// enforce, would decide only who wrote one fixed name first, and a stale fixed-name lock cannot
// be taken over without a conditional delete).
//
// A holder rewrites its lock every refresh interval; a lock not rewritten for staleAfter, or
// left by a process of this host that no longer runs, or empty and older than a lock write can
// take, is removed by the next writer (lock-files.ts). Before a commit point (publishing a
// manifest, deleting files) the holder checks its lock is still there: if someone took it for
// stale, it stops instead of acting on a view that may be out of date.
import type { BackupEnv } from '../env.ts';
import { CairnError } from '../errors.ts';
import { abortableSleep } from '../io/retry.ts';
import {
  HeldLock, compareLockNames, describeLock, encodeLock, isStale, removeStale, DEFAULT_STALE_AFTER, LOCK_DIR, listLocks,
  type HeldLockOptions, type LockInfo,
} from './lock-files.ts';

export { DEFAULT_STALE_AFTER, LOCK_DIR, isStale, listLocks, type LockInfo };

export interface WriterLockOptions extends HeldLockOptions {
  /**
   * How long a writer waits for later contenders to see it and back off (default 10 s; they do
   * so within one listing). A contender that neither backs off nor holds the lock by then (a
   * process of another host killed while deciding) turns this writer away too.
   */
  contentionWaitMs?: number;
}

export function lockedError(holder: LockInfo, dir: string): CairnError {
  return new CairnError(
    'Locked',
    `${dir} is locked by another ${describeLock(holder)}; ` +
      `wait for it, or if that process is gone, let the lock go stale or remove it with \`cairn unlock\``,
    { file: holder.name },
  );
}

const liveWriters = (locks: LockInfo[]) => locks.filter((l) => l.kind === 'write');

export class WriterLock extends HeldLock {
  /** Takes the directory's writer lock, removing stale ones; rejects with Locked when another writer holds it. */
  static async acquire(env: BackupEnv, opts: WriterLockOptions = {}): Promise<WriterLock> {
    const { signal } = opts;
    const staleAfter = opts.staleAfterMs ?? DEFAULT_STALE_AFTER;
    const refreshEvery = opts.refreshIntervalMs ?? Math.max(1000, Math.floor(staleAfter / 6));
    const writeGrace = opts.writeGraceMs;
    const busy = liveWriters(await removeStale(env, staleAfter, { writeGrace, signal }));
    if (busy.length > 0) throw lockedError(busy[0], env.url);
    const info = HeldLock.newInfo('write', { state: 'pending' });
    await env.write(info.name, [encodeLock(info)], { createOnly: true, sync: true, signal });
    const lock = new WriterLock(env, info, staleAfter);
    try {
      const deadline = Date.now() + (opts.contentionWaitMs ?? 10_000);
      for (;;) {
        const others = liveWriters(await removeStale(env, staleAfter, { except: info.name, writeGrace, signal }));
        if (others.length === 0) break;
        // An unreadable lock is one being written (or a dead writer's, stale soon): its writer
        // lists after writing it, so it plays by the names like a pending one.
        const holds = (o: LockInfo) => o.state === 'held' || (o.readable && o.state === undefined);
        const winner = others.find((o) => holds(o) || compareLockNames(o.name, info.name) < 0);
        if (winner) throw lockedError(winner, env.url);
        if (Date.now() > deadline) throw lockedError(others[0], env.url);
        await abortableSleep(50, signal);
      }
      await lock.rewrite({ state: 'held' }, signal);
    } catch (e) {
      await lock.release();
      throw e;
    }
    lock.startRefreshing(refreshEvery);
    return lock;
  }

  /**
   * Before deleting backups: announces them in this lock, then asks which of them live readers
   * hold. The announcement comes first and readers list after writing their own lock, so a
   * reader either is seen here or sees the announcement and waits (reader-lock.ts). Backups
   * that readers hold are left out of the announcement again, so that those readers go on.
   */
  async beginDeleting(ids: number[], signal?: AbortSignal): Promise<{ deletable: number[]; heldByReaders: Map<number, LockInfo[]> }> {
    await this.rewrite({ backupIds: ids }, signal);
    const readers = (await removeStale(this.env, this.staleAfter, { except: this.name, signal })).filter((l) => l.kind === 'read');
    const heldByReaders = new Map<number, LockInfo[]>();
    for (const r of readers) {
      for (const id of r.backupIds) if (ids.includes(id)) heldByReaders.set(id, [...(heldByReaders.get(id) ?? []), r]);
    }
    const deletable = ids.filter((id) => !heldByReaders.has(id));
    if (heldByReaders.size > 0) await this.rewrite({ backupIds: deletable }, signal);
    return { deletable, heldByReaders };
  }

  /** The announced deletions are done (or given up): readers waiting for them go on. */
  async endDeleting(signal?: AbortSignal): Promise<void> {
    await this.rewrite({ backupIds: [] }, signal);
  }
}
