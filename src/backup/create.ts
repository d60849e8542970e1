// Creating a backup: pin the DB's live files (db-files.ts), copy each one that the directory does
// not hold yet (table and blob files are shared between backups by name, RocksDB's AddFile checks
// applied), then publish meta/<id>, create-only, as the commit point. Copies run through fanOut;
// on any failure nothing is published and what this attempt wrote is removed.
import * as path from 'node:path';
import * as fsp from 'node:fs/promises';
import type { WriteSource } from '../env.ts';
import { CairnError, corruption, invalidArgument, throwIfAborted } from '../errors.ts';
import { Crc32c } from '../crc32c.ts';
import { fanOut } from '../io/fan-out.ts';
import { openFileChunks } from '../io/file-chunks.ts';
import { RateLimiter, rateLimited } from '../rate-limiter.ts';
import type { EngineContext } from './context.ts';
import { checkedAgainstDb, checkSharedAgainstDb } from './db-checksum.ts';
import { collectGarbage } from './gc.ts';
import { requireRetention } from './locked-objects.ts';
import { SHARED_CHECKSUM_DIR, SHARED_DIR, isSharedName, metaName, privateDir, sharedChecksumName } from './layout.ts';
import { Leftovers } from './resume.ts';
import { encodeBackupMeta, manifestOf, MAX_APP_METADATA, type BackupMeta } from './meta-codec.ts';
import type { CreateBackupOptions, CreateBackupResult } from './types.ts';
// Backup-only modules (RocksDB's formats) are imported when first used: list and verify, often
// run from scripts, start without them.
import type { DbFile, DbSnapshot } from './db-files.ts';

const PROGRESS_INTERVAL = 4 << 20;

const toBuffer = (m: string | Uint8Array | undefined): Buffer =>
  m === undefined ? Buffer.alloc(0) : typeof m === 'string' ? Buffer.from(m, 'utf8') : Buffer.from(m);

export async function createBackup(ctx: EngineContext, dbDir: string, opts: CreateBackupOptions = {}): Promise<CreateBackupResult> {
  const { signal } = opts;
  const appMetadata = toBuffer(opts.appMetadata);
  if (appMetadata.length > MAX_APP_METADATA) throw invalidArgument(`app metadata is ${appMetadata.length} bytes, over the 1 MiB limit`);
  throwIfAborted(signal);
  if (opts.retainUntil !== undefined) {
    if (!(opts.retainUntil.getTime() > Date.now())) throw invalidArgument(`retainUntil ${opts.retainUntil.toISOString()} is not in the future`);
    // Before anything is written: a store that cannot lock would keep the backup unprotected.
    await requireRetention(ctx.env, signal);
  }
  const id = ctx.catalog.latestBackupId + 1;
  // A private dir for the new id is the remains of an interrupted backup: clear it first.
  if (await hasAny(ctx, privateDir(id), signal)) await collectGarbage(ctx, signal);

  let source = dbDir;
  let walDir = opts.walDir;
  let checkpointDir: string | undefined;
  if (opts.checkpoint) {
    const abs = path.resolve(dbDir);
    checkpointDir = path.join(path.dirname(abs), `.cairn-checkpoint-${path.basename(abs)}-${process.pid}-${Date.now()}`);
    try {
      await opts.checkpoint(checkpointDir, signal);
    } catch (e) {
      await fsp.rm(checkpointDir, { recursive: true, force: true });
      throw new CairnError('IOError', `checkpoint of ${dbDir} failed: ${(e as Error).message}`, { cause: e });
    }
    // A checkpoint holds its WAL files next to its table files.
    source = checkpointDir;
    walDir = undefined;
  }
  try {
    const { snapshotDb } = await import('./db-files.ts');
    const snapshot = await snapshotDb(source, { walDir, backupLogFiles: ctx.settings.backupLogFiles, signal });
    try {
      return await copyAndPublish(ctx, id, snapshot, appMetadata, opts);
    } finally {
      await snapshot.release();
    }
  } finally {
    if (checkpointDir) await fsp.rm(checkpointDir, { recursive: true, force: true });
  }
}

async function copyAndPublish(ctx: EngineContext, id: number, snapshot: DbSnapshot, appMetadata: Buffer, opts: CreateBackupOptions): Promise<CreateBackupResult> {
  const { env, catalog, settings } = ctx;
  const { signal, retainUntil } = opts;
  const timestamp = Math.floor(Date.now() / 1000);
  /** Shared files this backup uses without writing them: their retention is extended. */
  const reused: string[] = [];
  const limiter = settings.backupRateLimit > 0 ? new RateLimiter(settings.backupRateLimit) : undefined;
  const entries: { name: string; size: number; crc32c: number }[] = new Array(snapshot.files.length);
  const written: string[] = [];
  const bytesTotal = snapshot.files.reduce((a, f) => a + f.size, 0);
  let bytesDone = 0;
  let filesDone = 0;
  let copiedBytes = 0;
  let sharedBytesReused = 0;
  let filesKept = 0;
  let filesResumed = 0;
  let bytesResumed = 0;
  const progress = (file: string | undefined) =>
    opts.onProgress?.({ operation: 'backup', backupId: id, file, bytesDone, bytesTotal, filesDone, filesTotal: snapshot.files.length, filesKept, bytesReused: sharedBytesReused + bytesResumed });
  const dstSeen = new Set<string>();
  // Shared files a stopped or killed backup stored: reused when they hold the DB file's bytes.
  const leftovers = settings.shareTableFiles
    ? await Leftovers.find(env, catalog, settings.shareFilesWithChecksum ? SHARED_CHECKSUM_DIR : SHARED_DIR, signal, ctx.listing)
    : undefined;
  // Written by this attempt and not to be kept for a resumed run (see the catch below).
  const discard: string[] = [];

  const backupOne = async (f: DbFile, index: number, opSignal: AbortSignal): Promise<void> => {
    throwIfAborted(opSignal);
    const shared = settings.shareTableFiles && (f.type === 'table' || f.type === 'blob');
    let dst: string;
    let knownCrc: number | undefined;
    if (shared && settings.shareFilesWithChecksum) {
      let sessionId: string | undefined;
      if (settings.naming === 'session-id' && f.type === 'table') {
        const { readTableProperties } = await import('../rocksdb/table-properties.ts');
        sessionId = (await readTableProperties(path.join(f.dir, f.name)).catch(() => undefined))?.dbSessionId || undefined;
      }
      // The DB's own checksum names the file without a first read, as in RocksDB; the copy is checked against it.
      if (!sessionId) knownCrc = f.dbCrc32c ?? (await crcOfFile(path.join(f.dir, f.name), f.size, limiter, opSignal));
      dst = sharedChecksumName(f.name, f.size, { sessionId, crc32c: knownCrc, includeSize: settings.includeSizeInName, naming: settings.naming });
    } else if (shared) {
      dst = `${SHARED_DIR}${f.name}`;
    } else {
      dst = `${privateDir(id)}${f.name}`;
    }
    if (dstSeen.has(dst)) throw corruption(`two live files map to ${dst}`, { file: dst, backupId: id });
    dstSeen.add(dst);

    /** Stored already: shared with an earlier backup, or left by an interrupted run (resumed). */
    const kept = (crc: number, how: 'shared' | 'resumed') => {
      entries[index] = { name: dst, crc32c: crc, size: f.size };
      // Its lock (if any) is extended like any stored file's (a resumed one's is the interrupted run's).
      reused.push(dst);
      if (how === 'shared') sharedBytesReused += f.size;
      else {
        bytesResumed += f.size;
        filesResumed++;
      }
      bytesDone += f.size;
      filesDone++;
      filesKept++;
      progress(dst);
    };
    const existing = shared ? catalog.files.find(dst) : undefined;
    if (existing !== undefined && catalog.files.refs(existing) > 0) {
      // Stored already by an earlier backup: share it. RocksDB's AddFile check.
      const existingSize = catalog.files.fileSize(existing);
      if (existingSize !== f.size) {
        throw corruption(
          `${dst} is already in the backup directory with size ${existingSize}, but ${f.name} in the DB is ${f.size} bytes; ` +
            'if the DB file is not corrupt, delete old backups or back up to another directory',
          { file: dst, backupId: id },
        );
      }
      let crc = catalog.files.crc32c(existing);
      checkSharedAgainstDb(f.name, dst, f.dbCrc32c, crc, id);
      crc ??= f.dbCrc32c;
      if (knownCrc !== undefined && crc !== undefined && knownCrc !== crc) {
        throw corruption(`${dst} in the backup directory has crc32c ${crc}, but ${f.name} in the DB has ${knownCrc}`, { file: dst, backupId: id });
      }
      if (crc === undefined) crc = knownCrc ?? (await crcOfFile(path.join(f.dir, f.name), f.size, limiter, opSignal));
      return kept(crc, 'shared');
    }
    const resumed = (crc: number) => {
      checkSharedAgainstDb(f.name, dst, f.dbCrc32c, crc, id);
      kept(crc, 'resumed');
    };
    const local = { path: path.join(f.dir, f.name), size: f.size, knownCrc };
    if (shared && leftovers?.has(dst)) {
      // Left by an interrupted run: reused if it holds the DB file's bytes, else overwritten.
      const c = await leftovers.check(env, dst, local, opSignal);
      if (c.reuse) return resumed(c.crc32c);
    }
    if (shared && leftovers?.hasTemporary(dst)) {
      // Written whole by an interrupted run that was killed before it could rename it (local disk).
      const p = await leftovers.promote(env, dst, local, settings.sync, opSignal);
      if (p !== undefined) {
        ctx.listing?.deleted(p.temporary, catalog);
        ctx.listing?.put(dst, f.size, catalog);
        return resumed(p.crc32c);
      }
    }
    const file =
      f.contents || f.size === 0
        ? undefined
        : await openFileChunks(path.join(f.dir, f.name), {
            length: f.size,
            reuse: env.capabilities.writeRetainsNoChunk === true,
            // A provider that copies each chunk into its own buffers gains nothing from large
            // reads: two 1 MiB buffers per file, not two parts' worth.
            chunkSize: env.capabilities.writeRetainsNoChunk ? undefined : env.capabilities.preferredChunkSize,
            signal: opSignal,
          });
    const source: WriteSource = f.contents ? [f.contents] : (file ?? []);
    let lastReport = 0;
    const counted = async function* (src: WriteSource) {
      for await (const c of src) {
        bytesDone += c.length;
        if (bytesDone - lastReport >= PROGRESS_INTERVAL) {
          lastReport = bytesDone;
          progress(dst);
        }
        yield c;
      }
    };
    const expectedSize = f.contents ? f.contents.length : f.size;
    const checked = checkedAgainstDb(source, f.name, f.dbCrc32c, id);
    // A write stopped before it read its source leaves the file to close here.
    const res = await env
      .write(dst, counted(rateLimited(checked, limiter, opSignal)), { size: expectedSize, expectedCrc32c: knownCrc ?? f.dbCrc32c, sync: settings.sync, retainUntil, signal: opSignal })
      .finally(() => file?.close());
    written.push(dst);
    ctx.listing?.put(dst, res.size, catalog);
    if (res.size !== expectedSize) {
      discard.push(dst);
      throw corruption(`${f.name} changed while being backed up: copied ${res.size} bytes, expected ${expectedSize}`, { file: f.name, backupId: id });
    }
    entries[index] = { name: dst, crc32c: res.crc32c, size: res.size };
    copiedBytes += res.size;
    filesDone++;
    progress(dst);
  };

  try {
    await fanOut(snapshot.files, (f, i, sig) => backupOne(f, i, sig), { concurrency: settings.maxBackgroundOperations, signal });
    throwIfAborted(signal);
    await snapshot.checkAfterCopy();
    // Shared files keep the latest date of any backup using them (never shortened).
    if (retainUntil !== undefined && reused.length > 0) await env.extendRetention!(reused, retainUntil, { signal });
    const meta: BackupMeta = manifestOf(settings.schemaVersion, { timestamp, sequence: snapshot.sequence, appMetadata }, entries, snapshot.files);
    // Publishing meta/<id> is the commit point: create-only, so two writers can never both
    // publish the same id.
    await ctx.lock?.check(signal);
    await env.write(metaName(id), [encodeBackupMeta(meta)], { createOnly: true, sync: settings.sync, retainUntil, signal });
    catalog.latestBackupId = id;
    const added = catalog.add(id, meta, entries);
    progress(undefined);
    return {
      ...catalog.info(added), copiedBytes, sharedBytesReused, filesKept, bytesReused: sharedBytesReused + bytesResumed, filesResumed, bytesResumed,
      ...(retainUntil === undefined ? {} : { retainUntil }),
    };
  } catch (e) {
    // Nothing was published. The shared files this attempt stored whole stay for the next run
    // to reuse (gc keeps them for its grace period); its private files, and a file found to
    // have changed while being copied, are removed now.
    const orphans = written.filter((n) => {
      if (isSharedName(n) && !discard.includes(n)) return false;
      const i = catalog.files.find(n);
      return i === undefined || catalog.files.refs(i) === 0;
    });
    await env.delete(orphans).catch(() => {});
    if (signal?.aborted) {
      throw new CairnError('Incomplete', `backup ${id} stopped before completion; nothing was published`, { backupId: id, cause: e });
    }
    throw e;
  }
}

async function hasAny(ctx: EngineContext, prefix: string, signal?: AbortSignal): Promise<boolean> {
  // (A private dir of an id without a manifest is never referenced: in the run's listing if stored.)
  const files = ctx.listing ? ctx.listing.unreferencedCandidates(ctx.catalog, prefix) : ctx.env.list(prefix, { signal });
  for await (const _ of files) return true;
  return false;
}

/** CRC32C of the first `size` bytes of a local file (for legacy crc32c naming). */
async function crcOfFile(p: string, size: number, limiter: RateLimiter | undefined, signal: AbortSignal): Promise<number> {
  const crc = new Crc32c();
  if (size === 0) return 0;
  for await (const c of rateLimited(await openFileChunks(p, { length: size, reuse: true, signal }), limiter, signal)) crc.update(c);
  if (crc.length !== size) throw corruption(`${p} shrank while being read`, { file: p });
  return crc.value;
}
