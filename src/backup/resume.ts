// Resumable backups. A backup that was stopped or killed has already stored some of its shared
// files (complete objects: every write is atomic) but published no manifest. Garbage collection
// keeps such unreferenced shared files for a grace period (isKeptForResume), and the next backup
// reuses each one whose stored size and CRC32C match the local file's, instead of uploading it
// again (Leftovers). The local file is read to compute its CRC32C; the stored one comes from
// the listing where it carries checksums (GCS), else from the store's own checksum (one metadata
// request, S3), else, on a store with neither (local disk), from reading the stored copy.
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
 * used goes at once), written less than `graceMs` ago by the store's clock. A file the store
 * gives no time for is not kept.
 */
export function isKeptForResume(f: FileInfo, catalog: Catalog, graceMs: number, now = Date.now()): boolean {
  if (graceMs <= 0 || f.modified === undefined) return false;
  if (catalog.files.find(f.name) !== undefined) return false;
  return now - f.modified < graceMs && isResumableName(f.name);
}

export type LeftoverCheck = { reuse: true; crc32c: number } | { reuse: false; why: string };

/** The shared files an interrupted backup left in the directory, found by one listing. */
export class Leftovers {
  private readonly found: Map<string, FileInfo>;
  private constructor(found: Map<string, FileInfo>) {
    this.found = found;
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
    const files = listing ? listing.unreferencedCandidates(catalog, dir) : env.list(dir, { signal });
    for await (const f of files) {
      if (!isResumableName(f.name)) continue;
      const i = catalog.files.find(f.name);
      if (i === undefined || catalog.files.refs(i) === 0) found.set(f.name, f);
    }
    return new Leftovers(found);
  }

  get size(): number {
    return this.found.size;
  }

  has(name: string): boolean {
    return this.found.has(name);
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
