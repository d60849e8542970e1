// Resumable backups. A backup that was stopped or killed has already stored some of its shared
// files (complete objects: every write is atomic) but published no manifest. Garbage collection
// keeps such unreferenced shared files for a grace period (isKeptForResume), and the next backup
// reuses each one whose stored size and CRC32C match the local file's, instead of uploading it
// again (Leftovers). The local file is read to compute its CRC32C; the stored one comes from
// the listing where it carries checksums (GCS), else from the store's own checksum (one metadata
// request, S3), else, on a store with neither (local disk), from reading the stored copy.
// On local disk a killed run also leaves temporaries: files written whole but not yet synced and
// renamed (the rename comes after the fsync). gc keeps them for the grace period too, and the
// next backup publishes one whose bytes it has checked the same way (promoteTemporary).
import * as path from 'node:path';
import type { BackupEnv, FileInfo } from '../env.ts';
import { Crc32c } from '../crc32c.ts';
import { isCairnError, throwIfAborted } from '../errors.ts';
import { openFileChunks } from '../io/file-chunks.ts';
import { parseDbFileName } from '../rocksdb/filename.ts';
import type { Catalog } from './catalog.ts';
import type { DirListing } from './dir-listing.ts';
import { SHARED_CHECKSUM_DIR, SHARED_DIR, dbFileNameOf, isSharedName } from './layout.ts';
import { isPlainFileName } from '../names.ts';

/** How long gc keeps an unreferenced shared file by default: a day for a stopped backup to be run again. */
export const DEFAULT_GC_GRACE_MS = 24 * 3_600_000;

/**
 * A shared file a resumed backup could use: a table or blob file under its final name (never a
 * temporary, which is a write cut off midway).
 */
export function isResumableName(name: string): boolean {
  if (!isSharedName(name)) return false;
  const rest = name.slice(name.startsWith(SHARED_CHECKSUM_DIR) ? SHARED_CHECKSUM_DIR.length : SHARED_DIR.length);
  if (!isPlainFileName(rest)) return false;
  const t = parseDbFileName(dbFileNameOf(name))?.type;
  return t === 'table' || t === 'blob';
}

/**
 * Whether gc keeps an unreferenced stored file for a later backup to resume with: a shared
 * table or blob file no manifest loaded by this engine ever named (a file that a deleted backup
 * used goes at once), or a temporary of one (see temporaryTarget), written less than `graceMs`
 * ago by the store's clock. A file the store gives no time for is not kept.
 */
export function isKeptForResume(f: FileInfo, catalog: Catalog, graceMs: number, now: number, env: BackupEnv): boolean {
  if (graceMs <= 0 || f.modified === undefined || now - f.modified >= graceMs) return false;
  const name = env.temporaryTarget?.(f.name) ?? f.name;
  return catalog.files.find(name) === undefined && isResumableName(name);
}

export type LeftoverCheck = { reuse: true; crc32c: number } | { reuse: false; why: string };

/** The shared files an interrupted backup left in the directory, found by one listing. */
export class Leftovers {
  private readonly found: Map<string, FileInfo>;
  /** Temporaries by the name they were meant for. */
  private readonly temporaries: Map<string, FileInfo[]>;
  private constructor(found: Map<string, FileInfo>, temporaries: Map<string, FileInfo[]>) {
    this.found = found;
    this.temporaries = temporaries;
  }

  /**
   * Resumable files under `dir` (shared_checksum/ or shared/) that no backup of `catalog`
   * references: from the run's listing when it has one (taken under the writer lock it still
   * holds, so no other cairn writer has stored or deleted one since), else from a listing of
   * `dir`. The run's listing keeps no checksums, so the store is asked for one at reuse (check),
   * which also finds a file deleted since by a process that ignores the lock.
   */
  static async find(env: BackupEnv, catalog: Catalog, dir: string, signal?: AbortSignal, listing?: DirListing): Promise<Leftovers> {
    const found = new Map<string, FileInfo>();
    const temporaries = new Map<string, FileInfo[]>();
    const files = listing ? listing.unreferencedCandidates(catalog, dir) : env.list(dir, { signal });
    for await (const f of files) {
      const target = env.temporaryTarget?.(f.name);
      const name = target ?? f.name;
      if (!isResumableName(name)) continue;
      const i = catalog.files.find(name);
      if (i !== undefined && catalog.files.refs(i) !== 0) continue;
      if (target === undefined) found.set(name, f);
      else if (temporaries.has(name)) temporaries.get(name)!.push(f);
      else temporaries.set(name, [f]);
    }
    return new Leftovers(found, temporaries);
  }

  get size(): number {
    return this.found.size;
  }

  has(name: string): boolean {
    return this.found.has(name);
  }

  hasTemporary(name: string): boolean {
    return this.temporaries.has(name);
  }

  /**
   * Publishes a temporary of `name` that holds exactly the local file's bytes (size, then CRC32C
   * of a read of it), if there is one; the others stay for gc. Which one, and its CRC32C.
   */
  async promote(env: BackupEnv, name: string, local: { path: string; size: number; knownCrc?: number }, sync: boolean, signal: AbortSignal): Promise<{ temporary: string; crc32c: number } | undefined> {
    let crc = local.knownCrc;
    for (const t of this.temporaries.get(name) ?? []) {
      if (t.size !== local.size) continue;
      const stored = await storedCrc(env, t, signal);
      if (stored === undefined) continue;
      crc ??= await localCrc(local.path, local.size, signal);
      if (crc === undefined) return undefined;
      if (stored >>> 0 !== crc >>> 0) continue;
      try {
        await env.promoteTemporary!(t.name, { sync, signal });
      } catch (e) {
        if (isCairnError(e, 'NotFound') || isCairnError(e, 'AlreadyExists')) continue;
        throw e;
      }
      this.temporaries.delete(name);
      return { temporary: t.name, crc32c: crc >>> 0 };
    }
    return undefined;
  }

  /**
   * Whether the stored `name` holds exactly the local file's bytes: same size, same CRC32C. The
   * local CRC32C is `knownCrc` when the caller has it already, else computed here.
   */
  async check(env: BackupEnv, name: string, local: { path: string; size: number; knownCrc?: number }, signal: AbortSignal): Promise<LeftoverCheck> {
    const listed = this.found.get(name);
    if (listed === undefined) return { reuse: false, why: 'not stored' };
    if (listed.size !== local.size) return { reuse: false, why: `stored with ${listed.size} bytes, the DB file has ${local.size}` };
    const stored = await storedCrc(env, listed, signal);
    if (stored === undefined) return { reuse: false, why: 'the store has no crc32c for it' };
    const crc = local.knownCrc ?? (await localCrc(local.path, local.size, signal));
    if (crc === undefined) return { reuse: false, why: 'the DB file changed while being read' };
    if (crc >>> 0 !== stored >>> 0) return { reuse: false, why: `stored crc32c ${stored >>> 0}, the DB file's ${crc >>> 0}` };
    return { reuse: true, crc32c: crc >>> 0 };
  }
}

async function storedCrc(env: BackupEnv, f: FileInfo, signal: AbortSignal): Promise<number | undefined> {
  if (f.crc32c !== undefined) return f.crc32c;
  if (env.capabilities.serverChecksum) {
    try {
      const s = await env.serverChecksum!(f.name, { signal });
      return s.size === f.size ? s.crc32c : undefined;
    } catch (e) {
      if (isCairnError(e, 'NotFound')) return undefined;
      throw e;
    }
  }
  // A store without checksums of its own (local disk): read the stored copy.
  try {
    const crc = new Crc32c();
    for await (const c of await env.openRead(f.name, { length: f.size, reuseBuffers: true, signal })) crc.update(c);
    return crc.length === f.size ? crc.value : undefined;
  } catch (e) {
    if (isCairnError(e, 'NotFound')) return undefined;
    throw e;
  }
}

// (Not under the backup's rate limit, which paces what is sent: reading a local file to avoid
// sending it should not take as long as sending it.)
async function localCrc(p: string, size: number, signal: AbortSignal): Promise<number | undefined> {
  throwIfAborted(signal);
  if (size === 0) return 0;
  const crc = new Crc32c();
  for await (const c of await openFileChunks(path.resolve(p), { length: size, reuse: true, signal })) crc.update(c);
  return crc.length === size ? crc.value : undefined;
}
