// Read locks: restic's shared locks, for restore and verify. Any number of readers hold one at a
// time, and a backup being written does not disturb them (a backup only adds files); what a
// reader must be protected from is a delete, purge or gc removing the files of the backup it
// reads. So a read lock names the backups it reads, and a deleting writer announces the backups
// it is about to delete in its own lock before it looks for readers (WriterLock.beginDeleting):
//
//   reader: write its lock, then list locks/; a live writer announcing one of its backups means
//           that backup is going away: wait until the announcement is withdrawn (the writer saw
//           this reader and keeps the backup) or the writer is done (the backup is then gone,
//           which the reader reports as deleted, not as damage);
//   writer: announce, then list locks/; a backup that a live reader holds is kept (and said so).
//
// Each lists after writing, so of a reader and a writer that overlap, at least one sees the
// other. Read locks are refreshed and go stale exactly like writer locks (lock-files.ts).
//
// Without write access to locks/ (read-only credentials, a read-only mount) a reader still
// reads, unprotected: `ReadGuard.unprotected` says so, for the command to tell its user.
import type { BackupEnv } from '../env.ts';
import { CairnError, isCairnError } from '../errors.ts';
import { abortableSleep } from '../io/retry.ts';
import {
  HeldLock, describeLock, encodeLock, isStale, listLocks, DEFAULT_STALE_AFTER,
  type HeldLockOptions, type LockInfo,
} from './lock-files.ts';

export interface ReaderLockOptions extends HeldLockOptions {
  /** The backups this reader reads. */
  backupIds: number[];
  /** How long to wait for a writer that announced deleting one of them (default 60 s). */
  deletionWaitMs?: number;
}

export interface ReadGuard {
  /** Why this read is not protected from deletions (no write access to locks/), or undefined. */
  readonly unprotected: string | undefined;
  /** Rejects if the read lock was taken for stale meanwhile (call before trusting a long read). */
  check(signal?: AbortSignal): Promise<void>;
  release(): Promise<void>;
}

const NO_WRITE_ACCESS = new Set(['PermissionDenied', 'NotSupported']);

export class ReaderLock extends HeldLock implements ReadGuard {
  readonly unprotected = undefined;

  /**
   * Takes a read lock on `backupIds`. Resolves once no live writer announces deleting any of
   * them; rejects with Locked if one still does after deletionWaitMs. Without write access to
   * locks/, resolves to an unprotected guard.
   */
  static async acquire(env: BackupEnv, opts: ReaderLockOptions): Promise<ReadGuard> {
    const { signal } = opts;
    const staleAfter = opts.staleAfterMs ?? DEFAULT_STALE_AFTER;
    const refreshEvery = opts.refreshIntervalMs ?? Math.max(1000, Math.floor(staleAfter / 6));
    const info = HeldLock.newInfo('read', { backupIds: [...opts.backupIds] });
    try {
      await env.write(info.name, [encodeLock(info)], { createOnly: true, sync: true, signal });
    } catch (e) {
      if (!isCairnError(e) || !NO_WRITE_ACCESS.has(e.code)) throw e;
      return unprotectedGuard(`no read lock could be taken in ${env.url} (${e.message}): a delete, purge or gc running meanwhile may remove files of backup ${opts.backupIds.join(', ')} while they are read`);
    }
    const lock = new ReaderLock(env, info, staleAfter);
    try {
      const deadline = Date.now() + (opts.deletionWaitMs ?? 60_000);
      for (;;) {
        const deleting = (await listLocks(env, { except: info.name, signal })).filter((l) =>
          l.kind === 'write' && !isStale(l, staleAfter, Date.now(), opts.writeGraceMs) && l.backupIds.some((id) => opts.backupIds.includes(id)));
        if (deleting.length === 0) break;
        if (Date.now() > deadline) {
          throw new CairnError('Locked', `backup ${opts.backupIds.join(', ')} in ${env.url} is being deleted by ${describeLock(deleting[0])}; not reading it`, { file: deleting[0].name });
        }
        await abortableSleep(100, signal);
      }
    } catch (e) {
      await lock.release();
      throw e;
    }
    lock.startRefreshing(refreshEvery);
    return lock;
  }
}

function unprotectedGuard(reason: string): ReadGuard {
  return { unprotected: reason, check: async () => {}, release: async () => {} };
}

/** Who holds locks in a backup directory, for `list`: live holders first, stale ones flagged. */
export async function lockHolders(env: BackupEnv, opts: { staleAfterMs?: number; signal?: AbortSignal } = {}): Promise<(LockInfo & { stale: boolean; ageSeconds: number })[]> {
  const now = Date.now();
  const staleAfter = opts.staleAfterMs ?? DEFAULT_STALE_AFTER;
  return (await listLocks(env, { signal: opts.signal }))
    .map((l) => ({ ...l, stale: isStale(l, staleAfter, now), ageSeconds: Math.max(0, Math.round((now - Date.parse(l.refreshed)) / 1000)) }))
    .sort((a, b) => Number(a.stale) - Number(b.stale) || a.name.localeCompare(b.name));
}
