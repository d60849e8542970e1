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
import { collectGarbage } from './gc.ts';
import { SHARED_DIR, metaName, privateDir, sharedChecksumName } from './layout.ts';
import { encodeBackupMeta, MAX_APP_METADATA, type BackupMeta } from './meta-codec.ts';
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
  const { signal } = opts;
  const timestamp = Math.floor(Date.now() / 1000);
  const limiter = settings.backupRateLimit > 0 ? new RateLimiter(settings.backupRateLimit) : undefined;
  const entries: { name: string; size: number; crc32c: number }[] = new Array(snapshot.files.length);
  const written: string[] = [];
  const bytesTotal = snapshot.files.reduce((a, f) => a + f.size, 0);
  let bytesDone = 0;
  let filesDone = 0;
  let copiedBytes = 0;
  let sharedBytesReused = 0;
  const progress = (file: string) =>
    opts.onProgress?.({ operation: 'backup', backupId: id, file, bytesDone, bytesTotal, filesDone, filesTotal: snapshot.files.length });
  const dstSeen = new Set<string>();

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
      if (!sessionId) knownCrc = await crcOfFile(path.join(f.dir, f.name), f.size, limiter, opSignal);
      dst = sharedChecksumName(f.name, f.size, { sessionId, crc32c: knownCrc, includeSize: settings.includeSizeInName, naming: settings.naming });
    } else if (shared) {
      dst = `${SHARED_DIR}${f.name}`;
    } else {
      dst = `${privateDir(id)}${f.name}`;
    }
    if (dstSeen.has(dst)) throw corruption(`two live files map to ${dst}`, { file: dst, backupId: id });
    dstSeen.add(dst);

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
      if (knownCrc !== undefined && crc !== undefined && knownCrc !== crc) {
        throw corruption(`${dst} in the backup directory has crc32c ${crc}, but ${f.name} in the DB has ${knownCrc}`, { file: dst, backupId: id });
      }
      if (crc === undefined) crc = knownCrc ?? (await crcOfFile(path.join(f.dir, f.name), f.size, limiter, opSignal));
      entries[index] = { name: dst, crc32c: crc, size: f.size };
      sharedBytesReused += f.size;
      bytesDone += f.size;
      filesDone++;
      progress(dst);
      return;
    }
    // A shared file present but referenced by no backup (left by an interrupted run) is
    // overwritten: the new copy is the one this backup vouches for.
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
    // A write stopped before it read its source leaves the file to close here.
    const res = await env
      .write(dst, counted(rateLimited(source, limiter, opSignal)), { size: expectedSize, expectedCrc32c: knownCrc, sync: settings.sync, signal: opSignal })
      .finally(() => file?.close());
    written.push(dst);
    if (res.size !== expectedSize) {
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
    const meta: BackupMeta = { schemaVersion: '1', timestamp, sequence: snapshot.sequence, appMetadata, files: entries.map(({ name, crc32c }) => ({ name, crc32c })) };
    // Publishing meta/<id> is the commit point: create-only, so two writers can never both
    // publish the same id.
    await ctx.lock?.check(signal);
    await env.write(metaName(id), [encodeBackupMeta(meta)], { createOnly: true, sync: settings.sync, signal });
    catalog.latestBackupId = id;
    const added = catalog.add(id, meta, entries);
    opts.onProgress?.({ operation: 'backup', backupId: id, bytesDone, bytesTotal, filesDone, filesTotal: snapshot.files.length });
    return { ...catalog.info(added), copiedBytes, sharedBytesReused };
  } catch (e) {
    // Nothing was published; remove what this attempt wrote that no backup references.
    const orphans = written.filter((n) => {
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
  for await (const _ of ctx.env.list(prefix, { signal })) return true;
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
