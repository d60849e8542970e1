// Restore: every file of a backup back under its RocksDB name, each byte checked against the
// manifest's crc32c before the file takes its real name. CURRENT is renamed into place last, so
// an interrupted restore leaves a directory RocksDB will not open as a database, never a
// database with missing files.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import PQueue from 'p-queue';
import { REUSABLE_CHUNK_MIN, type BackupEnv } from '../env.ts';
import { CairnError, corruption, firstFailure, ioError, throwIfAborted } from '../errors.ts';
import { Crc32c } from '../crc32c.ts';
import { rateLimited, type RateLimiter } from '../rate-limiter.ts';
import { isPlainFileName } from '../names.ts';
import { parseDbFileName } from '../rocksdb/filename.ts';
import { dbFileNameOf } from './layout.ts';
import { writeAll } from '../io/write-all.ts';
import { fanOut } from '../io/fan-out.ts';
import { readParallelRanges } from '../io/parallel-ranges.ts';
import { bytesStreamed } from '../gc-tuning.ts';
import type { ProgressEvent } from './types.ts';
import { syncDir } from '../io/sync-dir.ts';
import { dbLockHolder } from '../rocksdb/db-lock.ts';
import { keptFiles } from './restore-keep.ts';
import type { RestoreMode } from './types.ts';

export interface RestoreFile {
  name: string;
  size: number;
  crc32c?: number;
}

export interface RestoreParams {
  env: BackupEnv;
  backupId: number;
  files: RestoreFile[];
  dbDir: string;
  walDir: string;
  keepLogFiles: boolean;
  checkSpace: boolean;
  /** Which files already in dbDir stay (restore-keep.ts). */
  mode: RestoreMode;
  sync: boolean;
  concurrency: number;
  limiter?: RateLimiter;
  signal?: AbortSignal;
  onProgress?: (ev: ProgressEvent) => void;
}

const RESTORE_TMP = '.cairn-restore.tmp';

interface Target {
  from: RestoreFile;
  /** Absolute final path, always directly inside dbDir or walDir. */
  to: string;
  isCurrent: boolean;
}

/**
 * The RocksDB files of a directory (and our temporaries) that a restore replaces; nothing else.
 * Only files: a directory that happens to carry a RocksDB name (`999999.log/`) is not the DB's
 * and is left alone.
 */
async function replacedNames(dir: string, keepWal: boolean, kept?: ReadonlySet<string>): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw e;
  }
  return entries
    .filter((ent) => !ent.isDirectory())
    .map((ent) => ent.name)
    .filter((n) => {
      const p = parseDbFileName(n);
      if (!p && !n.endsWith(RESTORE_TMP)) return false;
      if (kept?.has(path.join(dir, n))) return false;
      return !(keepWal && p?.type === 'wal');
    });
}

async function clearDbFiles(dir: string, keepWal: boolean, kept?: ReadonlySet<string>): Promise<void> {
  for (const n of await replacedNames(dir, keepWal, kept)) await fsp.rm(path.join(dir, n), { force: true });
}

/**
 * The first change a restore makes: CURRENT goes (durably, before any other file), so that from
 * here until the new CURRENT is renamed into place nothing in dbDir opens as a database, whatever
 * stops the restore: a kill, a full disk, a file that cannot be deleted. Deleting table files
 * first would leave, on a kill, a CURRENT and MANIFEST naming files that are gone.
 */
async function removeCurrent(dbDir: string, sync: boolean): Promise<void> {
  const current = path.join(dbDir, 'CURRENT');
  const st = await fsp.lstat(current).catch((e) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return;
  if (st.isDirectory()) {
    // RocksDB cannot open this directory as a DB either; the final rename would fail on it.
    throw new CairnError('InvalidArgument', `${current} is a directory, not RocksDB's CURRENT file: remove it before restoring; nothing was changed`);
  }
  await fsp.unlink(current);
  if (sync) await syncDir(dbDir);
}

/** Bytes on disk that clearDbFiles(dir, keepWal) will free. */
async function clearableBytes(dir: string, keepWal: boolean, kept?: ReadonlySet<string>): Promise<number> {
  let total = 0;
  for (const n of await replacedNames(dir, keepWal, kept)) {
    const st = await fsp.lstat(path.join(dir, n)).catch(() => undefined);
    if (st?.isFile() && st.nlink === 1) total += st.blocks * 512;
  }
  return total;
}

const fmtBytes = (n: number) => (n >= 1 << 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

/**
 * Refuses, before anything is deleted, a restore that cannot fit: otherwise the old DB would be
 * cleared and the download fail with ENOSPC halfway, leaving neither DB. Counts the space the
 * files being replaced will free, per file system (dbDir and walDir may be on two).
 */
async function ensureSpace(p: RestoreParams, targets: Target[], dbDir: string, walDir: string, kept: ReadonlySet<string>): Promise<void> {
  const perDevice = new Map<number, { dir: string; need: number; freed: number }>();
  const entry = async (dir: string) => {
    const dev = (await fsp.stat(dir)).dev;
    let e = perDevice.get(dev);
    if (!e) perDevice.set(dev, (e = { dir, need: 0, freed: 0 }));
    return e;
  };
  const db = await entry(dbDir);
  const wal = await entry(walDir);
  db.freed += await clearableBytes(dbDir, p.keepLogFiles, kept);
  if (!p.keepLogFiles && walDir !== dbDir) wal.freed += await clearableBytes(walDir, false, kept);
  if (!p.keepLogFiles) wal.freed += await clearableBytes(path.join(walDir, 'archive'), false);
  for (const e of perDevice.values()) {
    const fs = await fsp.statfs(e.dir);
    const block = fs.bsize > 0 ? fs.bsize : 4096;
    for (const t of targets) if (!kept.has(t.to) && (path.dirname(t.to) === dbDir ? db : wal) === e) e.need += Math.ceil(t.from.size / block) * block;
    const free = fs.bavail * fs.bsize;
    if (e.need > free + e.freed) {
      throw new CairnError(
        'IOError',
        `not enough space for backup ${p.backupId} in ${e.dir}: it needs ${fmtBytes(e.need)} there, the file system has ${fmtBytes(free)} free` +
          `${e.freed > 0 ? ` and the files it replaces hold ${fmtBytes(e.freed)}` : ''}; no file was changed` +
          ` (on a compressing or deduplicating file system, --no-space-check / checkSpace: false skips this check)`,
        { backupId: p.backupId },
      );
    }
  }
}

function planTargets(p: RestoreParams): Target[] {
  const dbDir = path.resolve(p.dbDir);
  const walDir = path.resolve(p.walDir);
  const seen = new Set<string>();
  return p.files.map((f) => {
    const dbName = dbFileNameOf(f.name);
    const parsed = parseDbFileName(dbName);
    // The manifest was validated on load; check again here, at the point of writing, that the
    // name is a plain RocksDB file name that cannot leave the target directory.
    if (!parsed || !isPlainFileName(dbName)) {
      throw corruption(`backup ${p.backupId}: ${f.name} does not restore to a RocksDB file name`, { file: f.name, backupId: p.backupId });
    }
    const dir = parsed.type === 'wal' ? walDir : dbDir;
    const to = path.join(dir, dbName);
    if (path.dirname(to) !== dir) throw corruption(`backup ${p.backupId}: ${f.name} escapes the restore directory`, { file: f.name });
    if (seen.has(to)) throw corruption(`backup ${p.backupId}: two files restore to ${dbName}`, { file: f.name, backupId: p.backupId });
    seen.add(to);
    return { from: f, to, isCurrent: parsed.type === 'current' };
  });
}

// Socket reads arrive as chunks of up to 64 KiB, gathered here into one write per 256 KiB. Larger
// batches hold their chunks across the young-generation collections a download paces
// (src/gc-tuning.ts), which then move them to the old generation, where only a full collection
// frees them: larger batches raised peak RSS for no speed (README, Memory).
const WRITE_BATCH_BYTES = 256 * 1024;

/** Gathers small chunks and writes them WRITE_BATCH_BYTES at a time: in order, or from `position` on. */
class WriteBatch {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private readonly fh: fsp.FileHandle;
  private position: number | undefined;
  constructor(fh: fsp.FileHandle, position?: number) {
    this.fh = fh;
    this.position = position;
  }
  /**
   * Small chunks (socket reads) are gathered; a large one (possibly a reused buffer) is written
   * before this returns, after what was gathered.
   */
  async add(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= WRITE_BATCH_BYTES || chunk.length >= REUSABLE_CHUNK_MIN) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.chunks.length === 0) return;
    const chunks = this.chunks;
    const bytes = this.bytes;
    this.chunks = [];
    this.bytes = 0;
    await writeAll(this.fh, chunks, this.position);
    if (this.position !== undefined) this.position += bytes;
  }
}

export async function restoreFiles(p: RestoreParams): Promise<{ filesKept: number; bytesReused: number }> {
  const { signal } = p;
  const targets = planTargets(p);
  const dbDir = path.resolve(p.dbDir);
  const walDir = path.resolve(p.walDir);
  // Restoring clears the DB's files first: never under a RocksDB that has the DB open.
  const holder = await dbLockHolder(dbDir);
  if (holder !== undefined) {
    throw new CairnError('Locked', `${dbDir} is open in a running RocksDB process${holder ? ` (pid ${holder})` : ''}: close it before restoring over it; nothing was changed`, { backupId: p.backupId });
  }
  await fsp.mkdir(dbDir, { recursive: true });
  await fsp.mkdir(walDir, { recursive: true });
  // Judged before anything is deleted: a kept file is neither cleared nor downloaded.
  const candidates = targets.filter((t) => !t.isCurrent).map((t) => ({ ...t.from, to: t.to }));
  const kept = await keptFiles(candidates, p.mode, p.concurrency, signal);
  if (p.checkSpace) await ensureSpace(p, targets, dbDir, walDir, kept);
  await removeCurrent(dbDir, p.sync);
  if (p.keepLogFiles) {
    await clearDbFiles(dbDir, true, kept);
    // RocksDB moves archived WALs back so that recovery can replay them.
    const archive = path.join(walDir, 'archive');
    for (const n of await fsp.readdir(archive).catch(() => [] as string[])) {
      if (parseDbFileName(n)?.type === 'wal') await fsp.rename(path.join(archive, n), path.join(walDir, n));
    }
  } else {
    await clearDbFiles(walDir, false, kept);
    await clearDbFiles(path.join(walDir, 'archive'), false);
    await clearDbFiles(dbDir, false, kept);
  }

  const bytesTotal = p.files.reduce((a, f) => a + f.size, 0);
  const keptTargets = targets.filter((t) => kept.has(t.to));
  const bytesReused = keptTargets.reduce((a, t) => a + t.from.size, 0);
  // Progress counts the kept files as done from the start.
  let bytesDone = bytesReused;
  let filesDone = keptTargets.length;
  if (keptTargets.length > 0) {
    p.onProgress?.({ operation: 'restore', backupId: p.backupId, bytesDone, bytesTotal, filesDone, filesTotal: targets.length, filesKept: keptTargets.length, bytesReused });
  }
  const tmpOf = (t: Target) => `${t.to}.${randomBytes(4).toString('hex')}${RESTORE_TMP}`;
  const finished: { tmp: string; target: Target }[] = [];

  // Each file is flushed to disk as soon as it is complete, but off the copy's path: waiting for
  // the disk in the copy slot left the network (or the source disk) idle meanwhile. Everything
  // is on disk before CURRENT is renamed into place, the restore's commit point.
  const syncQueue = new PQueue({ concurrency: 2 });
  const syncs: Promise<void>[] = [];
  const syncLater = (file: string) => {
    const s = syncQueue.add(async () => {
      const fh = await fsp.open(file, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    s.catch(() => {}); // awaited below
    syncs.push(s);
  };
  // A kept file may come from a killed restore whose flush never ran: flushed like the others
  // before CURRENT makes the DB openable.
  if (p.sync) for (const t of keptTargets) syncLater(t.to);

  // One stream per file, written in order (local disk, and empty files everywhere).
  const copyStream = async (t: Target, fh: fsp.FileHandle, opSignal: AbortSignal) => {
    const crc = new Crc32c();
    if (t.from.size === 0) return { crc: crc.value, length: 0 };
    // Reused buffers: each chunk is checksummed and written before the next is asked for,
    // while the provider already reads the one after.
    const src = await p.env.openRead(t.from.name, { signal: opSignal, reuseBuffers: true, length: t.from.size });
    const batch = new WriteBatch(fh);
    for await (const chunk of rateLimited(src, p.limiter, opSignal)) {
      crc.update(chunk);
      bytesDone += chunk.length;
      bytesStreamed(chunk.length);
      await batch.add(chunk);
    }
    await batch.flush();
    return { crc: crc.value, length: crc.length };
  };

  // From an object store: as ranges, several at once for a large file, each written in place as
  // it arrives; a connection lost mid-range resumes from the last byte received
  // (src/io/parallel-ranges.ts).
  const copyRanges = async (t: Target, fh: fsp.FileHandle, r: { partSize: number; concurrency: number }, opSignal: AbortSignal) => {
    const length = t.from.size;
    const crc = await readParallelRanges(
      // Each chunk is written before the next is asked for: the provider may reuse its buffers.
      async (offset, len, signal) => rateLimited(await p.env.openRead(t.from.name, { offset, length: len, signal, reuseBuffers: true }), p.limiter, signal),
      (_i, start) => {
        const batch = new WriteBatch(fh, start);
        return {
          chunk: (_at, data) => {
            bytesDone += data.length;
            return batch.add(data);
          },
          rangeDone: () => batch.flush(),
        };
      },
      { name: t.from.name, size: length, partSize: r.partSize, concurrency: r.concurrency, signal: opSignal },
    );
    return { crc, length };
  };

  const ranges = p.env.capabilities.parallelRanges;
  const restoreOne = async (t: Target, opSignal: AbortSignal) => {
    throwIfAborted(opSignal);
    const tmp = tmpOf(t);
    const fh = await fsp.open(tmp, 'wx');
    try {
      const got = ranges && t.from.size > 0 ? await copyRanges(t, fh, ranges, opSignal) : await copyStream(t, fh, opSignal);
      if (got.length !== t.from.size) {
        throw corruption(`restoring ${t.from.name}: read ${got.length} bytes, the backup records ${t.from.size}`, { file: t.from.name, backupId: p.backupId });
      }
      if (t.from.crc32c !== undefined && got.crc !== t.from.crc32c) {
        throw corruption(`restoring ${t.from.name}: crc32c ${got.crc} does not match ${t.from.crc32c} in meta/${p.backupId}`, { file: t.from.name, backupId: p.backupId });
      }
      await fh.close();
    } catch (e) {
      await fh.close().catch(() => {});
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    finished.push({ tmp, target: t });
    if (!t.isCurrent) await fsp.rename(tmp, t.to);
    if (p.sync) syncLater(t.isCurrent ? tmp : t.to);
    filesDone++;
    p.onProgress?.({ operation: 'restore', backupId: p.backupId, file: t.from.name, bytesDone, bytesTotal, filesDone, filesTotal: targets.length, filesKept: keptTargets.length, bytesReused });
  };

  // (The first failed file stops the others; every copy has settled before the flushes are awaited.)
  const copied = await fanOut(targets.filter((t) => !kept.has(t.to)), (t, _i, sig) => restoreOne(t, sig), { concurrency: p.concurrency, ...(signal ? { signal } : {}) }).then(
    () => undefined,
    (e: unknown): PromiseRejectedResult => ({ status: 'rejected', reason: e }),
  );
  const synced = await Promise.allSettled(syncs);
  const failed = copied ?? firstFailure(synced);
  if (failed) {
    for (const f of finished) if (f.target.isCurrent) await fsp.rm(f.tmp, { force: true });
    throwIfAborted(signal);
    const e = failed.reason;
    if (e instanceof CairnError) throw e;
    throw ioError(`restore of backup ${p.backupId} failed: ${(e as Error).message}`, { backupId: p.backupId, cause: e });
  }
  if (p.sync) {
    await syncDir(dbDir);
    if (walDir !== dbDir) await syncDir(walDir);
  }
  for (const f of finished) if (f.target.isCurrent) await fsp.rename(f.tmp, f.target.to);
  if (p.sync) await syncDir(dbDir);
  return { filesKept: keptTargets.length, bytesReused };
}
