// One writer at a time per backup directory. RocksDB leaves this to its user; cairn runs from
// cron jobs and CI on several hosts against one bucket, where two writers overlap sooner or later,
// and an overlapping clean-up deletes the shared files another writer has uploaded but not yet
// published: its backup then names files that are gone.
//
// The protocol is restic's, because object stores have no atomic "create if no other exists"
// across keys: write a lock object of one's own under locks/, then list locks/; any other live
// lock means contention, and the newcomer removes its own and gives up (two newcomers may both
// give up; never both proceed). A holder rewrites its lock every refresh interval; a lock not
// rewritten for staleAfter is left by a dead process and is removed by the next writer. Before a
// commit point (publishing a manifest, deleting files) the holder checks its lock is still there:
// if someone took it for stale, it stops instead of acting on a view that may be out of date.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { BackupEnv } from '../env.ts';
import { CairnError, isCairnError, throwIfAborted } from '../errors.ts';
import { isProcessAlive } from '../process-alive.ts';

export const LOCK_DIR = 'locks/';

export interface WriterLockOptions {
  /** A lock not rewritten for this long belongs to a dead writer (default 30 min). */
  staleAfterMs?: number;
  /** How often a holder rewrites its lock (default staleAfterMs / 6). */
  refreshIntervalMs?: number;
  signal?: AbortSignal;
}

export interface LockInfo {
  name: string;
  host: string;
  pid: number;
  created: string;
  refreshed: string;
}

export const DEFAULT_STALE_AFTER = 30 * 60_000;
const MAX_LOCK_SIZE = 4096;

export function lockedError(holder: LockInfo, dir: string): CairnError {
  return new CairnError(
    'Locked',
    `${dir} is locked by another writer (${holder.host} pid ${holder.pid}, since ${holder.created}, last refreshed ${holder.refreshed}); ` +
      `wait for it, or if that process is gone, let the lock go stale or remove it with \`cairn unlock\``,
    { file: holder.name },
  );
}

async function readLock(env: BackupEnv, name: string, signal?: AbortSignal): Promise<LockInfo | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of await env.openRead(name, { signal })) {
      size += c.length;
      if (size > MAX_LOCK_SIZE) break;
      chunks.push(Buffer.from(c));
    }
  } catch (e) {
    if (isCairnError(e, 'NotFound')) return undefined; // released meanwhile
    throw e;
  }
  // Unreadable content is somebody's lock all the same: its name carries its creation time.
  const createdMs = Number(name.slice(LOCK_DIR.length).split('-')[0]);
  const fallback = Number.isFinite(createdMs) ? new Date(createdMs).toISOString() : new Date(0).toISOString();
  try {
    const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<LockInfo>;
    const created = typeof j.created === 'string' ? j.created : fallback;
    return { name, host: String(j.host ?? '?'), pid: Number(j.pid ?? 0), created, refreshed: typeof j.refreshed === 'string' ? j.refreshed : created };
  } catch {
    return { name, host: '?', pid: 0, created: fallback, refreshed: fallback };
  }
}

/** Every lock under locks/ (other than `except`), read. */
export async function listLocks(env: BackupEnv, opts: { except?: string; signal?: AbortSignal } = {}): Promise<LockInfo[]> {
  const names: string[] = [];
  for await (const f of env.list(LOCK_DIR, { signal: opts.signal })) if (f.name !== opts.except) names.push(f.name);
  const out: LockInfo[] = [];
  for (const n of names) {
    const l = await readLock(env, n, opts.signal);
    if (l) out.push(l);
  }
  return out;
}

export class WriterLock {
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh: number;
  private lost: CairnError | undefined;
  private refreshing: Promise<void> | undefined;

  private readonly env: BackupEnv;
  readonly name: string;
  private readonly info: LockInfo;
  private readonly staleAfter: number;

  private constructor(env: BackupEnv, info: LockInfo, staleAfter: number) {
    this.env = env;
    this.name = info.name;
    this.info = info;
    this.staleAfter = staleAfter;
    this.lastRefresh = Date.now();
  }

  /** Takes the directory's writer lock, removing stale ones; rejects with Locked when another writer holds it. */
  static async acquire(env: BackupEnv, opts: WriterLockOptions = {}): Promise<WriterLock> {
    const { signal } = opts;
    const staleAfter = opts.staleAfterMs ?? DEFAULT_STALE_AFTER;
    const refreshEvery = opts.refreshIntervalMs ?? Math.max(1000, Math.floor(staleAfter / 6));
    const live = await removeStale(env, staleAfter, undefined, signal);
    if (live.length > 0) throw lockedError(live[0], env.url);
    const now = new Date();
    const name = `${LOCK_DIR}${now.getTime()}-${randomBytes(8).toString('hex')}`;
    const info: LockInfo = { name, host: hostname(), pid: process.pid, created: now.toISOString(), refreshed: now.toISOString() };
    await env.write(name, [encode(info)], { createOnly: true, sync: true, signal });
    const lock = new WriterLock(env, info, staleAfter);
    // Someone who listed before we wrote may have written too: whoever sees another backs off.
    let others: LockInfo[];
    try {
      others = await removeStale(env, staleAfter, name, signal);
    } catch (e) {
      await lock.release();
      throw e;
    }
    if (others.length > 0) {
      await lock.release();
      throw lockedError(others[0], env.url);
    }
    lock.timer = setInterval(() => void lock.refresh(), refreshEvery);
    lock.timer.unref();
    return lock;
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        if (this.lost) return;
        if (!(await this.env.stat(this.name))) {
          this.lost = this.removedError();
          return;
        }
        const now = new Date();
        await this.env.write(this.name, [encode({ ...this.info, refreshed: now.toISOString() })], { sync: true });
        this.lastRefresh = now.getTime();
      } catch {
        // A failed refresh is retried at the next tick; check() notices if they keep failing.
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private removedError(): CairnError {
    return new CairnError('Locked', `the writer lock ${this.name} in ${this.env.url} was removed by someone else; stopping before acting on a stale view`, { file: this.name });
  }

  /** Rejects unless the lock is still this writer's: call before every commit point. */
  async check(signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (!this.lost && Date.now() - this.lastRefresh > this.staleAfter) {
      this.lost = new CairnError('Locked', `the writer lock ${this.name} in ${this.env.url} could not be refreshed for ${Math.round(this.staleAfter / 1000)} s; another writer may have taken over`, { file: this.name });
    }
    if (!this.lost && !(await this.env.stat(this.name, { signal }))) this.lost = this.removedError();
    if (this.lost) throw this.lost;
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing;
    // A lock that outlives its process only delays the next writer until it goes stale.
    await this.env.delete([this.name]).catch(() => {});
  }
}

function encode(info: LockInfo): Buffer {
  return Buffer.from(JSON.stringify({ host: info.host, pid: info.pid, created: info.created, refreshed: info.refreshed }) + '\n');
}

/**
 * A lock is stale when it was not rewritten for `staleAfter` (an unreadable date counts as
 * stale), or when it was taken on this host by a process that no longer runs (restic's rule: a
 * writer killed here frees the directory at once, not 30 minutes later). Two machines that share
 * a host name and a backup directory but not their processes may take each other's live lock
 * for stale; the holder then stops at its next check, and nothing is lost.
 */
export function isStale(l: LockInfo, staleAfter: number, now = Date.now()): boolean {
  if (!(now - Date.parse(l.refreshed) <= staleAfter)) return true;
  return l.host === hostname() && l.pid !== process.pid && !isProcessAlive(l.pid);
}

/** Deletes the stale locks (other than `except`) and returns the live ones. */
async function removeStale(env: BackupEnv, staleAfter: number, except: string | undefined, signal?: AbortSignal): Promise<LockInfo[]> {
  const live: LockInfo[] = [];
  const stale: string[] = [];
  for (const l of await listLocks(env, { except, signal })) {
    if (isStale(l, staleAfter)) stale.push(l.name);
    else live.push(l);
  }
  if (stale.length > 0) await env.delete(stale, { signal });
  return live;
}
