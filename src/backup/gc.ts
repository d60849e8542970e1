// Deleting backups and collecting garbage, with RocksDB's rules: a backup is gone once its
// manifest is; a stored file is garbage when no valid backup references it and no corrupt one
// names it; a private dir whose id has no manifest, and *.tmp leftovers, are garbage. No listing
// of its own where the run listed the directory under its writer lock (dir-listing.ts), else one
// per collection; work in proportion to the stored files, not to backups.
import type { FileInfo } from '../env.ts';
import { notFound, throwIfAborted } from '../errors.ts';
import { fanOut } from '../io/fan-out.ts';
import type { Catalog } from './catalog.ts';
import type { EngineContext } from './context.ts';
import type { DirListing } from './dir-listing.ts';
import { META_DIR, PRIVATE_DIR, isSharedName, metaName, parseBackupId } from './layout.ts';
import type { DeleteResult, GcResult } from './types.ts';
import { describeLock } from './lock-files.ts';
import { RetainedFilesError, type FileRetention } from '../env.ts';
import { retainedAmong, retainedFile, splitRetainedBackups, type RetainedFile } from './locked-objects.ts';
import { isKeptForResume } from './resume.ts';

/** Names deleted per request (S3's DeleteObjects takes at most 1,000). */
const DELETE_BATCH = 1000;

/** Deletes a backup's manifest (valid or corrupt) and forgets it; its files wait for GC. */
export async function deleteBackupNoGc(ctx: EngineContext, id: number, signal?: AbortSignal): Promise<void> {
  const { catalog, env } = ctx;
  if (!catalog.backups.has(id) && !catalog.corrupt.has(id)) throw notFound(`backup ${id} not found in ${env.url}`, { backupId: id });
  // The meta file goes first: once it is gone the backup no longer exists, whatever happens
  // to the deletion of its files (GC finishes that).
  await ctx.lock?.check(signal);
  await env.delete([metaName(id)], { signal });
  ctx.listing?.metaDeleted(metaName(id));
  catalog.remove(id);
}

/**
 * Deletes what no backup needs. Unreferenced shared files younger than `graceMs` (default the
 * engine's gcGraceMs) that no loaded manifest named stay for a resumed backup (resume.ts).
 * `names: false`: the result's `deleted` stays empty (callers that only need the deletion done:
 * a purge of hundreds of backups frees hundreds of thousands of files, whose names would
 * otherwise all be held at once).
 */
export async function collectGarbage(ctx: EngineContext, signal?: AbortSignal, graceMs = ctx.settings.gcGraceMs, opts: { names?: boolean } = {}): Promise<GcResult> {
  const { catalog, env } = ctx;
  // Files only a corrupt backup names survive until it is deleted; after such a deletion the
  // names the remaining ones protect are read again.
  await catalog.refreshProtected(env, signal);
  const liveIds = new Set<number>([...catalog.backups.keys(), ...catalog.corrupt.keys()]);
  const deleted: string[] = [];
  const held = new Map<string, FileRetention>();
  let keptForResume = 0;
  const now = Date.now();
  // The run's one listing, taken under the writer lock it still holds, when there is one
  // (dir-listing.ts says why that is as safe as listing now): only what may be garbage, i.e.
  // unreferenced stored files and meta/. Without it (lock: false) the whole directory is listed.
  // Either way it is read as the deletions go, a batch at a time: the deleted files leave the
  // listing's view behind the point its reading has reached.
  const { listing } = ctx;
  const files: Iterable<FileInfo> | AsyncIterable<FileInfo> = listing ? fromListing(listing, catalog) : env.list('', { signal });
  async function* batches(): AsyncIterable<string[]> {
    let batch: string[] = [];
    for await (const f of files) {
      if (!isGarbage(f, catalog, liveIds)) continue;
      if (isSharedName(f.name) && isKeptForResume(f, catalog, graceMs, now, env)) keptForResume++;
      else batch.push(f.name);
      if (batch.length === DELETE_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
  await fanOut(batches(), async (batch, _i, sig) => {
    // Garbage under retention stays (and is reported) until a later GC after its date.
    const retained = await retainedAmong(env, batch, sig);
    for (const [n, r] of retained) held.set(n, r);
    const names = retained.size > 0 ? batch.filter((n) => !retained.has(n)) : batch;
    if (names.length === 0) return;
    throwIfAborted(sig);
    await ctx.lock?.check(sig);
    let kept: ReadonlyMap<string, unknown> | undefined;
    try {
      await env.delete(names, { signal: sig });
    } catch (e) {
      // A version the store still keeps (an older, overwritten one; or a clock behind ours).
      if (!(e instanceof RetainedFilesError)) throw e;
      for (const [n, r] of e.files) held.set(n, r);
      kept = e.files;
      // Whether the file still lists depends on which of its versions stayed.
      listing?.uncertain();
    }
    for (const n of names) {
      if (kept?.has(n)) continue;
      if (listing) forget(listing, catalog, n);
      if (opts.names !== false) deleted.push(n);
    }
  }, { concurrency: ctx.settings.maxBackgroundOperations, signal });
  // Files left under retention are still stored once the catalog drops their records.
  if (listing) for (const n of held.keys()) listing.keepAside(n, catalog);
  // An empty private/<id>/ (a backup that failed before its first file) never shows in a listing.
  const keepDir = (dir: string) => {
    const id = parseBackupId(dir.slice(PRIVATE_DIR.length).split('/')[0]);
    return id !== undefined && liveIds.has(id);
  };
  const emptyDirs = (await env.pruneEmptyDirs?.(PRIVATE_DIR, { keep: keepDir, signal })) ?? [];
  catalog.dropUnreferenced();
  const abortedUploads = (await env.cleanupIncomplete?.({ signal })) ?? 0;
  const retained: RetainedFile[] = [...held].map(([n, r]) => retainedFile(n, r)).sort((a, b) => (a.file < b.file ? -1 : 1));
  if (opts.names !== false) deleted.push(...emptyDirs);
  return { deleted, abortedUploads, keptForResume, ...(retained.length > 0 ? { retained } : {}) };
}

function* fromListing(listing: DirListing, catalog: Catalog): IterableIterator<FileInfo> {
  yield* listing.metaFiles();
  yield* listing.unreferencedCandidates(catalog);
}

/** A file GC deleted, out of the run's listing (before the catalog drops its record). */
function forget(listing: DirListing, catalog: Catalog, name: string): void {
  if (name.startsWith(META_DIR)) listing.metaDeleted(name);
  else listing.deleted(name, catalog);
}

function isGarbage(f: FileInfo, catalog: Catalog, liveIds: Set<number>): boolean {
  const name = f.name;
  if (isSharedName(name)) return !catalog.isNeeded(name);
  if (name.startsWith(PRIVATE_DIR)) {
    const dir = name.slice(PRIVATE_DIR.length).split('/')[0];
    const id = parseBackupId(dir);
    // RocksDB's rule: a private dir whose id has no meta file, or a *.tmp dir, is garbage.
    if (id === undefined) return dir.endsWith('.tmp') || dir.includes('.tmp');
    return !liveIds.has(id);
  }
  if (name.startsWith(META_DIR)) {
    // RocksDB writes meta/.<id>.tmp before renaming it into place.
    return name.slice(META_DIR.length).endsWith('.tmp');
  }
  return false;
}

/**
 * Deletes the backups `ids` (meta first) and runs one GC pass, except those a live reader
 * (restore, verify) holds: the writer announces them in its lock, lists readers, and keeps what
 * they hold (reader-lock.ts); and except those under retention (locked-objects.ts). Without a
 * lock (lock: false) every other id is deleted.
 */
export async function deleteBackupsKeepingReaders(ctx: EngineContext, asked: number[], signal: AbortSignal | undefined): Promise<DeleteResult> {
  const lock = ctx.lock;
  // Backups under retention are kept whole: asked before anything is deleted (locked-objects.ts).
  const { deletable: ids, retained } = await splitRetainedBackups(ctx, asked, signal);
  if (!lock || ids.length === 0) {
    for (const id of ids) await deleteBackupNoGc(ctx, id, signal);
    await collectGarbage(ctx, signal, undefined, { names: false });
    return { deleted: ids, keptForReaders: [], retained };
  }
  const { deletable, heldByReaders } = await lock.beginDeleting(ids, signal);
  try {
    for (const id of deletable) await deleteBackupNoGc(ctx, id, signal);
    await collectGarbage(ctx, signal, undefined, { names: false });
  } finally {
    await lock.endDeleting(signal);
  }
  const keptForReaders = [...heldByReaders].sort((a, b) => a[0] - b[0]).map(([id, readers]) => ({ id, readers: readers.map(describeLock) }));
  return { deleted: deletable, keptForReaders, retained };
}
