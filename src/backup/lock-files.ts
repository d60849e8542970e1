// The lock files under locks/ that writers and readers of a backup directory leave for each
// other: their names, their contents, when one is stale, and the refresh every holder does.
// The protocols that decide who may proceed live in writer-lock.ts and reader-lock.ts.
//
// A name says when, by which kind of holder, and by which process of which host the lock was
// taken: locks/<ms>-<random>-<w|r>-<pid>-<host tag>. The content says the same and more (host
// name, refresh time, state, backups), but a holder killed between creating the file and
// writing it (local disk writes a temporary next to the name first) leaves an empty file; its
// name alone then tells a dead process of this host, and its modification time how long ago it
// was written. Names of older cairn versions (<ms>-<random>) still read as write locks.
import { hostname } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import type { BackupEnv, FileInfo } from '../env.ts';
import { CairnError, isCairnError, throwIfAborted } from '../errors.ts';
import { isProcessAlive } from '../process-alive.ts';

export const LOCK_DIR = 'locks/';
/** A lock not rewritten for this long belongs to a dead holder (its refresh interval is 1/6 of it). */
export const DEFAULT_STALE_AFTER = 30 * 60_000;
/**
 * The longest a lock file may take to be written (temporary file, write, fsync and link on disk;
 * a PUT with its retries on a store): an empty or unreadable lock younger than this may be one
 * being written; older, its writer died before writing it.
 */
export const LOCK_WRITE_GRACE = 30_000;
const MAX_LOCK_SIZE = 4096;

export type LockKind = 'write' | 'read';

export interface LockInfo {
  name: string;
  kind: LockKind;
  host: string;
  pid: number;
  created: string;
  refreshed: string;
  /** False for an empty or unparsable file: a holder that died before writing it, or a stranger's. */
  readable: boolean;
  /** The store's modification time (ms), where its listing carries one. */
  modified?: number;
  /**
   * Writers: 'pending' while deciding whether they may proceed, 'held' once they do (locks of
   * older versions, and unreadable ones, count as held).
   */
  state?: 'pending' | 'held';
  /** Writers: the backups they are about to delete. Readers: the backups they read. */
  backupIds: number[];
}

/** This host, as lock names carry it (a host name may hold any character; the tag cannot). */
export const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

export function newLockName(kind: LockKind, now: number): string {
  return `${LOCK_DIR}${now}-${randomBytes(4).toString('hex')}-${kind === 'read' ? 'r' : 'w'}-${process.pid}-${HOST_TAG}`;
}

interface ParsedName {
  /** The lock's own name, without a temporary file's suffix. */
  base: string;
  createdMs?: number;
  kind: LockKind;
  pid?: number;
  hostTag?: string;
}

export function parseLockName(name: string): ParsedName {
  const base = name.slice(LOCK_DIR.length).split('.')[0];
  const parts = base.split('-');
  const ms = Number(parts[0]);
  const out: ParsedName = { base: `${LOCK_DIR}${base}`, kind: 'write', ...(parts[0] !== '' && Number.isSafeInteger(ms) ? { createdMs: ms } : {}) };
  if (parts.length === 5 && (parts[2] === 'r' || parts[2] === 'w') && /^\d+$/.test(parts[3])) {
    out.kind = parts[2] === 'r' ? 'read' : 'write';
    out.pid = Number(parts[3]);
    out.hostTag = parts[4];
  }
  return out;
}

/** Total order on lock names (time taken, then the random part): breaks ties between writers. */
export function compareLockNames(a: string, b: string): number {
  const pa = parseLockName(a);
  const pb = parseLockName(b);
  const d = (pa.createdMs ?? 0) - (pb.createdMs ?? 0);
  return d !== 0 ? d : pa.base < pb.base ? -1 : pa.base > pb.base ? 1 : 0;
}

export function encodeLock(info: LockInfo): Buffer {
  const { host, pid, kind, created, refreshed, state, backupIds } = info;
  return Buffer.from(JSON.stringify({ kind, host, pid, created, refreshed, ...(state ? { state } : {}), backupIds }) + '\n');
}

async function readLock(env: BackupEnv, file: FileInfo, signal?: AbortSignal): Promise<LockInfo | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of await env.openRead(file.name, { signal })) {
      size += c.length;
      if (size > MAX_LOCK_SIZE) break;
      chunks.push(Buffer.from(c));
    }
  } catch (e) {
    if (isCairnError(e, 'NotFound')) return undefined; // released meanwhile
    throw e;
  }
  const n = parseLockName(file.name);
  const fallback = new Date(n.createdMs ?? 0).toISOString();
  const fromName: LockInfo = {
    name: file.name,
    kind: n.kind,
    host: n.hostTag === HOST_TAG ? hostname() : '?',
    pid: n.pid ?? 0,
    created: fallback,
    refreshed: fallback,
    readable: false,
    backupIds: [],
    ...(file.modified !== undefined ? { modified: file.modified } : {}),
  };
  try {
    const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    if (typeof j !== 'object' || j === null) return fromName;
    const created = typeof j.created === 'string' ? j.created : fallback;
    return {
      ...fromName,
      kind: j.kind === 'read' ? 'read' : j.kind === 'write' ? 'write' : fromName.kind,
      host: typeof j.host === 'string' ? j.host : '?',
      pid: Number.isSafeInteger(j.pid) ? (j.pid as number) : fromName.pid,
      created,
      refreshed: typeof j.refreshed === 'string' ? j.refreshed : created,
      readable: true,
      ...(j.state === 'pending' || j.state === 'held' ? { state: j.state } : {}),
      backupIds: Array.isArray(j.backupIds) ? j.backupIds.filter((x): x is number => Number.isSafeInteger(x)) : [],
    };
  } catch {
    return fromName;
  }
}

/**
 * Every lock under locks/, read, other than `except` (and its temporaries). A temporary file of a
 * lock whose final file exists is the same lock and left out.
 */
export async function listLocks(env: BackupEnv, opts: { except?: string; signal?: AbortSignal } = {}): Promise<LockInfo[]> {
  const except = opts.except === undefined ? undefined : parseLockName(opts.except).base;
  const files: FileInfo[] = [];
  for await (const f of env.list(LOCK_DIR, { signal: opts.signal })) if (parseLockName(f.name).base !== except) files.push(f);
  const finals = new Set(files.map((f) => f.name));
  const out: LockInfo[] = [];
  for (const f of files) {
    const base = parseLockName(f.name).base;
    if (base !== f.name && finals.has(base)) continue;
    const l = await readLock(env, f, opts.signal);
    if (l) out.push(l);
  }
  return out;
}

/**
 * A lock is stale when its holder is known to be gone: taken on this host (by its content or its
 * name) by a process that no longer runs (restic's rule: a writer killed here frees the
 * directory at once); not rewritten for `staleAfter`; or unreadable and older than a lock write
 * can take. Two machines that share a host name and a backup directory but not their processes
 * may take each other's live lock for stale; the holder then stops at its next check.
 */
export function isStale(l: LockInfo, staleAfter: number, now = Date.now(), writeGrace = LOCK_WRITE_GRACE): boolean {
  const n = parseLockName(l.name);
  const pid = l.readable ? l.pid : (n.pid ?? 0);
  const here = l.readable ? l.host === hostname() : n.hostTag === HOST_TAG;
  if (here && pid > 0 && pid !== process.pid && !isProcessAlive(pid)) return true;
  if (!l.readable) {
    const written = l.modified ?? n.createdMs;
    return written === undefined || !(now - written <= writeGrace);
  }
  return !(now - Date.parse(l.refreshed) <= staleAfter);
}

/** Deletes the stale locks (other than `except`) and returns the live ones. */
export async function removeStale(env: BackupEnv, staleAfter: number, opts: { except?: string; writeGrace?: number; signal?: AbortSignal } = {}): Promise<LockInfo[]> {
  const live: LockInfo[] = [];
  const stale: string[] = [];
  for (const l of await listLocks(env, opts)) {
    if (isStale(l, staleAfter, Date.now(), opts.writeGrace)) stale.push(l.name);
    else live.push(l);
  }
  if (stale.length > 0) await env.delete(stale, { signal: opts.signal });
  return live;
}

/** "writer (host pid N, since …, last refreshed …)": who holds a lock, for messages and `list`. */
export function describeLock(l: LockInfo): string {
  const what = l.kind === 'read' ? 'reader' : 'writer';
  if (!l.readable) {
    return `${what} (an unreadable lock ${l.name}${l.pid ? ` of pid ${l.pid}` : ''}: its holder died while writing it, unless it is being written now; ` +
      `it is stale ${Math.round(LOCK_WRITE_GRACE / 1000)} s after it was written)`;
  }
  const ids = l.backupIds.length > 0 ? `, ${l.kind === 'read' ? 'reading' : 'deleting'} backup ${l.backupIds.join(', ')}` : '';
  return `${what} (${l.host} pid ${l.pid}${ids}, since ${l.created}, last refreshed ${l.refreshed})`;
}

export interface HeldLockOptions {
  staleAfterMs?: number;
  refreshIntervalMs?: number;
  /** How long an unreadable lock may be one being written (default LOCK_WRITE_GRACE). */
  writeGraceMs?: number;
  signal?: AbortSignal;
}

/** A lock file of this process: rewritten every refresh interval until released. */
export class HeldLock {
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh: number;
  private lost: CairnError | undefined;
  private writing: Promise<void> = Promise.resolve();

  protected readonly env: BackupEnv;
  readonly name: string;
  protected info: LockInfo;
  protected readonly staleAfter: number;

  protected constructor(env: BackupEnv, info: LockInfo, staleAfter: number) {
    this.env = env;
    this.name = info.name;
    this.info = info;
    this.staleAfter = staleAfter;
    this.lastRefresh = Date.now();
  }

  protected static newInfo(kind: LockKind, fields: Partial<LockInfo> = {}): LockInfo {
    const now = Date.now();
    const iso = new Date(now).toISOString();
    return { name: newLockName(kind, now), kind, host: hostname(), pid: process.pid, created: iso, refreshed: iso, readable: true, backupIds: [], ...fields };
  }

  protected startRefreshing(everyMs: number): void {
    this.timer = setInterval(() => void this.rewrite({}).catch(() => {
      // A failed refresh is retried at the next tick; check() notices if they keep failing.
    }), everyMs);
    this.timer.unref();
  }

  /** Rewrites the lock with `patch` and a new refresh time (one write at a time). */
  protected rewrite(patch: Partial<LockInfo>, signal?: AbortSignal): Promise<void> {
    const next = this.writing.then(async () => {
      if (this.lost) throw this.lost;
      if (!(await this.env.stat(this.name, { signal }))) {
        this.lost = this.removedError();
        throw this.lost;
      }
      const now = new Date();
      const info = { ...this.info, ...patch, refreshed: now.toISOString() };
      await this.env.write(this.name, [encodeLock(info)], { sync: true, signal });
      this.info = info;
      this.lastRefresh = now.getTime();
    });
    this.writing = next.catch(() => {});
    return next;
  }

  protected removedError(): CairnError {
    return new CairnError('Locked', `the ${this.info.kind === 'read' ? 'read' : 'writer'} lock ${this.name} in ${this.env.url} was removed by someone else; stopping before acting on a stale view`, { file: this.name });
  }

  /** Rejects unless the lock is still this process's: call before every commit point. */
  async check(signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (!this.lost && Date.now() - this.lastRefresh > this.staleAfter) {
      this.lost = new CairnError('Locked', `the lock ${this.name} in ${this.env.url} could not be refreshed for ${Math.round(this.staleAfter / 1000)} s; another writer may have taken over`, { file: this.name });
    }
    if (!this.lost && !(await this.env.stat(this.name, { signal }))) this.lost = this.removedError();
    if (this.lost) throw this.lost;
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.writing;
    // A lock that outlives its process only delays others until it goes stale.
    await this.env.delete([this.name]).catch(() => {});
  }
}
