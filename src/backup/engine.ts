// BackupEngine: RocksDB's backup engine (utilities/backup/backup_engine.cc) on a BackupEnv.
// Same directory layout and manifest format, so either side can read and extend the other's
// backup directories. The engine holds the state RocksDB's holds after Initialize(): every
// backup's manifest and a reference count per stored file.
import { openFileChunks } from '../io/file-chunks.ts';
import * as path from 'node:path';
import * as fsp from 'node:fs/promises';
import PQueue from 'p-queue';
import type { BackupEnv, FileInfo, StoredChecksum, WriteSource } from '../env.ts';
import { CairnError, corruption, firstFailure, invalidArgument, isCairnError, notFound, throwIfAborted } from '../errors.ts';
import { Crc32c } from '../crc32c.ts';
import { readParallelRanges } from '../io/parallel-ranges.ts';
import { RateLimiter, rateLimited } from '../rate-limiter.ts';
import { decodeBackupMeta, encodeBackupMeta, MAX_APP_METADATA, MAX_META_FILE_SIZE, type BackupMeta, type BackupFileEntry } from './meta-codec.ts';
import {
  META_DIR, PRIVATE_DIR, SHARED_DIR, SHARED_CHECKSUM_DIR, metaName, privateDir, parseBackupId, isSharedName,
  sharedChecksumName, validateBackupFileName, type Naming,
} from './layout.ts';
// Backup- and restore-only modules (RocksDB's formats, the restore writer) are imported when
// first used: list and verify, often run from scripts, start without them.
import type { DbFile, DbSnapshot } from './db-files.ts';
import { WriterLock, type WriterLockOptions } from './writer-lock.ts';

export interface BackupEngineOptions {
  /** Where the backups live. */
  env: BackupEnv;
  /** Open without changing anything in the backup directory (no clean-up, no writes). */
  readOnly?: boolean;
  /** Store table and blob files once, shared by every backup (default true). */
  shareTableFiles?: boolean;
  /** Shared files go to shared_checksum/ with unique names (default true); false: shared/ by plain name. */
  shareFilesWithChecksum?: boolean;
  /** Name of shared table files: db session id (default) or crc32c and size. */
  naming?: Naming;
  /** Append the file size to session-id names (default true, RocksDB's kFlagIncludeFileSize). */
  includeSizeInName?: boolean;
  /** Back up live WAL files (default true, as RocksDB). */
  backupLogFiles?: boolean;
  /** Parallel file copies (default 1, as RocksDB). */
  maxBackgroundOperations?: number;
  /** Bytes per second, 0 = unlimited. */
  backupRateLimit?: number;
  restoreRateLimit?: number;
  /** fsync written files and directories (default true). */
  sync?: boolean;
  /** Delete every existing backup on open. */
  destroyOldData?: boolean;
  /**
   * The directory's writer lock (see writer-lock.ts), taken by every writing operation (a
   * writable open's clean-up included) and released when it ends; `false` leaves mutual
   * exclusion to the caller, as RocksDB does.
   */
  lock?: false | (Omit<WriterLockOptions, 'signal'> & {
    /**
     * Hold the lock from a writable open until close(), instead of taking it for each operation:
     * for a short-lived engine (one command) that saves taking it and re-reading the directory
     * twice; a long-lived one would keep every other writer out.
     */
    hold?: boolean;
  });
  /** Read-only opens load only the newest N valid backups. */
  maxValidBackupsToOpen?: number;
}

export interface ProgressEvent {
  operation: 'backup' | 'restore' | 'verify';
  backupId: number;
  file?: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  onProgress?: (ev: ProgressEvent) => void;
}

export interface CreateBackupOptions extends OperationOptions {
  /** Directory holding the WAL files when it is not the DB directory. */
  walDir?: string;
  appMetadata?: string | Uint8Array;
  /**
   * Let the DB owner make a RocksDB checkpoint first: called with a directory that does not
   * exist yet (next to dbDir, so hard links work); the checkpoint made there is backed up
   * instead of dbDir, then deleted.
   */
  checkpoint?: (checkpointDir: string, signal?: AbortSignal) => Promise<void>;
}

export interface BackupFileDetail {
  name: string;
  size: number;
  crc32c?: number;
}

export interface BackupInfo {
  id: number;
  timestamp: number;
  sequence: bigint;
  size: number;
  numFiles: number;
  appMetadata: Buffer;
  files?: BackupFileDetail[];
}

export interface CorruptBackup {
  id: number;
  error: CairnError;
}

export interface CreateBackupResult extends BackupInfo {
  /** Bytes actually written to the backup directory by this backup. */
  copiedBytes: number;
  /** Bytes of files already stored by earlier backups and shared, not copied again. */
  sharedBytesReused: number;
}

export interface RestoreOptions extends OperationOptions {
  /** Backup to restore; default the latest valid one. */
  backupId?: number;
  dbDir: string;
  /** Where WAL files go (default dbDir). */
  walDir?: string;
  /** Keep the WAL files already in walDir (RocksDB's keep_log_files). */
  keepLogFiles?: boolean;
  /**
   * Refuse, before deleting anything, a backup that does not fit in the free space (default
   * true). Off for file systems whose free space says little (compressing, deduplicating).
   */
  checkSpace?: boolean;
}

export interface VerifyOptions extends OperationOptions {
  /** Download every file and recompute its crc32c. */
  checksum?: boolean;
  /** Compare the store's own crc32c with the manifest, downloading nothing. */
  serverChecksum?: boolean;
  /**
   * Pass one Map to the verifyBackup() calls of one run (the CLI does, for `verify` of every
   * backup): a shared file checked for one backup is not checked again for the next ones, which
   * would otherwise download (or HEAD) the same table files once per backup.
   */
  checkedSharedFiles?: Map<string, VerifyProblem[]>;
}

export interface VerifyProblem {
  file: string;
  code: 'NotFound' | 'Corruption' | 'NotSupported';
  message: string;
}

export interface VerifyResult {
  id: number;
  filesChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

interface StoredFile {
  name: string;
  size: number;
  crc32c?: number;
  refs: number;
}

interface LoadedBackup {
  id: number;
  meta: BackupMeta;
  files: StoredFile[];
  size: number;
}

const toBuffer = (m: string | Uint8Array | undefined): Buffer =>
  m === undefined ? Buffer.alloc(0) : typeof m === 'string' ? Buffer.from(m, 'utf8') : Buffer.from(m);

export class BackupEngine {
  readonly env: BackupEnv;
  private readonly opts: Required<Omit<BackupEngineOptions, 'env'>>;
  private backups = new Map<number, LoadedBackup>();
  private corrupt = new Map<number, CairnError>();
  /** Files named by metas that failed validation but parsed: kept by GC until that backup is deleted. */
  private protectedFiles = new Set<string>();
  private files = new Map<string, StoredFile>();
  private latestBackupId = 0;
  private busy = false;
  private loaded = false;
  private lock: WriterLock | undefined;
  private heldLock = false;
  /** What the clean-up run by a writable open removed. */
  cleanedOnOpen: { deleted: string[]; abortedUploads: number } = { deleted: [], abortedUploads: 0 };

  private constructor(opts: BackupEngineOptions) {
    this.env = opts.env;
    this.opts = {
      readOnly: opts.readOnly ?? false,
      shareTableFiles: opts.shareTableFiles ?? true,
      shareFilesWithChecksum: opts.shareFilesWithChecksum ?? true,
      naming: opts.naming ?? 'session-id',
      includeSizeInName: opts.includeSizeInName ?? true,
      backupLogFiles: opts.backupLogFiles ?? true,
      maxBackgroundOperations: Math.max(1, opts.maxBackgroundOperations ?? 1),
      backupRateLimit: opts.backupRateLimit ?? 0,
      restoreRateLimit: opts.restoreRateLimit ?? 0,
      sync: opts.sync ?? true,
      destroyOldData: opts.destroyOldData ?? false,
      maxValidBackupsToOpen: opts.maxValidBackupsToOpen ?? Number.MAX_SAFE_INTEGER,
      lock: opts.lock ?? {},
    };
    if (this.opts.readOnly && this.opts.destroyOldData) throw invalidArgument("can't destroy old data with a read-only backup engine");
  }

  /** Opens a backup directory (which need not exist yet) and loads every backup's manifest. */
  static async open(opts: BackupEngineOptions & { signal?: AbortSignal }): Promise<BackupEngine> {
    const engine = new BackupEngine(opts);
    if (engine.opts.readOnly) {
      await engine.load(opts.signal);
      return engine;
    }
    await engine.writing(opts.signal, async () => {
      if (engine.opts.destroyOldData) {
        for (const id of [...engine.backups.keys(), ...engine.corrupt.keys()]) await engine.deleteNoGc(id, opts.signal);
        engine.latestBackupId = 0;
      }
      // Leftovers of an interrupted backup or delete (a private dir without meta, *.tmp files,
      // unfinished multipart uploads) are removed as soon as a writer opens the directory.
      engine.cleanedOnOpen = await engine.doGarbageCollect(opts.signal);
    });
    return engine;
  }

  // ---------------------------------------------------------------- loading

  private async listAll(prefix: string, signal?: AbortSignal): Promise<Map<string, FileInfo>> {
    const m = new Map<string, FileInfo>();
    for await (const f of this.env.list(prefix, { signal })) m.set(f.name, f);
    return m;
  }

  /** Several prefixes listed in parallel (one round trip instead of one each on object stores). */
  private async listMany(prefixes: string[], signal?: AbortSignal): Promise<Map<string, FileInfo>> {
    const out = new Map<string, FileInfo>();
    for (const m of await Promise.all(prefixes.map((p) => this.listAll(p, signal)))) for (const [n, f] of m) out.set(n, f);
    return out;
  }

  private async readMeta(id: number, size: number, signal?: AbortSignal): Promise<BackupMeta> {
    const file = metaName(id);
    if (size > MAX_META_FILE_SIZE) throw corruption(`${file} is ${size} bytes, over the ${MAX_META_FILE_SIZE} limit`, { file, backupId: id });
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of await this.env.openRead(file, { signal })) {
      total += c.length;
      if (total > MAX_META_FILE_SIZE) throw corruption(`${file} grew over the size limit while read`, { file, backupId: id });
      chunks.push(Buffer.from(c));
    }
    return decodeBackupMeta(Buffer.concat(chunks), file);
  }

  private async load(signal?: AbortSignal): Promise<void> {
    this.loaded = true;
    this.backups.clear();
    this.corrupt.clear();
    this.files.clear();
    this.protectedFiles.clear();
    // One round trip of listings on object stores, then the manifests, several in flight.
    const [metas, stored] = await Promise.all([this.listAll(META_DIR, signal), this.listMany([SHARED_DIR, SHARED_CHECKSUM_DIR, PRIVATE_DIR], signal)]);
    const ids: number[] = [];
    for (const name of metas.keys()) {
      const id = parseBackupId(name.slice(META_DIR.length));
      if (id !== undefined) ids.push(id);
    }
    ids.sort((a, b) => b - a);
    this.latestBackupId = ids[0] ?? 0;
    const reads = new Map<number, Promise<BackupMeta>>();
    const readAhead = (i: number) => {
      for (let j = i; j < Math.min(ids.length, i + META_READ_AHEAD); j++) {
        if (reads.has(j)) continue;
        const r = this.readMeta(ids[j], metas.get(metaName(ids[j]))!.size, signal);
        r.catch(() => {}); // awaited (and its error handled) in order below, or dropped unused
        reads.set(j, r);
      }
    };
    let validLeft = this.opts.readOnly ? this.opts.maxValidBackupsToOpen : Number.MAX_SAFE_INTEGER;
    for (let i = 0; i < ids.length && validLeft > 0; i++) {
      const id = ids[i];
      readAhead(i);
      let meta: BackupMeta | undefined;
      try {
        meta = await reads.get(i)!;
        reads.delete(i);
        const files = this.checkBackupFiles(id, meta, stored);
        this.addBackup(id, meta, files);
        validLeft--;
      } catch (e) {
        if (isCairnError(e, 'Corruption') || isCairnError(e, 'NotSupported') || isCairnError(e, 'NotFound')) {
          const err = e.code === 'NotFound' ? corruption(`backup ${id}: ${e.message}`, { backupId: id, file: e.file, cause: e }) : e;
          this.corrupt.set(id, err);
          for (const f of meta?.files ?? []) this.protectedFiles.add(f.name);
        } else {
          throw e;
        }
      }
    }
  }

  /** Every file of the backup exists with the recorded size; names are safe. */
  private checkBackupFiles(id: number, meta: BackupMeta, stored: Map<string, FileInfo>): StoredFile[] {
    const file = metaName(id);
    const out: StoredFile[] = [];
    const seen = new Set<string>();
    for (const f of meta.files) {
      validateBackupFileName(f.name, id, file);
      if (f.excluded) continue;
      if (seen.has(f.name)) throw corruption(`${file} lists ${f.name} twice`, { file, backupId: id });
      seen.add(f.name);
      const size = stored.get(f.name)?.size;
      if (size === undefined) throw corruption(`${file}: ${f.name} is missing from the backup directory`, { file: f.name, backupId: id });
      if (f.size !== undefined && f.size !== size) {
        throw corruption(`${file}: ${f.name} is ${size} bytes, the manifest says ${f.size}`, { file: f.name, backupId: id });
      }
      out.push({ name: f.name, size, crc32c: f.crc32c, refs: 0 });
    }
    return out;
  }

  /** RocksDB's BackupMeta::AddFile: shared files must agree on size and checksum across backups. */
  private addBackup(id: number, meta: BackupMeta, files: StoredFile[]): void {
    for (const f of files) {
      const have = this.files.get(f.name);
      if (!have) continue;
      if (have.size !== f.size) throw corruption(`size mismatch for ${f.name}: ${have.size} in one backup, ${f.size} in backup ${id}`, { file: f.name, backupId: id });
      if (have.crc32c !== undefined && f.crc32c !== undefined && have.crc32c !== f.crc32c) {
        throw corruption(`checksum mismatch for ${f.name}: ${have.crc32c} in one backup, ${f.crc32c} in backup ${id}`, { file: f.name, backupId: id });
      }
    }
    const refs: StoredFile[] = [];
    let size = 0;
    for (const f of files) {
      let have = this.files.get(f.name);
      if (!have) {
        have = { ...f, refs: 0 };
        this.files.set(f.name, have);
      } else if (have.crc32c === undefined) {
        have.crc32c = f.crc32c;
      }
      have.refs++;
      refs.push(have);
      size += f.size;
    }
    this.backups.set(id, { id, meta, files: refs, size });
  }

  // ---------------------------------------------------------------- queries

  private info(b: LoadedBackup, details: boolean): BackupInfo {
    const info: BackupInfo = {
      id: b.id,
      timestamp: b.meta.timestamp,
      sequence: b.meta.sequence,
      size: b.size,
      numFiles: b.files.length,
      appMetadata: b.meta.appMetadata,
    };
    if (details) info.files = b.files.map((f) => ({ name: f.name, size: f.size, crc32c: f.crc32c }));
    return info;
  }

  /** Valid backups, oldest first. */
  listBackups(opts: { includeFileDetails?: boolean } = {}): BackupInfo[] {
    return [...this.backups.values()].sort((a, b) => a.id - b.id).map((b) => this.info(b, opts.includeFileDetails ?? false));
  }

  listCorruptedBackups(): CorruptBackup[] {
    return [...this.corrupt.entries()].sort((a, b) => a[0] - b[0]).map(([id, error]) => ({ id, error }));
  }

  getBackupInfo(id: number, opts: { includeFileDetails?: boolean } = {}): BackupInfo {
    return this.info(this.requireBackup(id), opts.includeFileDetails ?? false);
  }

  get latestValidBackupId(): number | undefined {
    let max: number | undefined;
    for (const id of this.backups.keys()) if (max === undefined || id > max) max = id;
    return max;
  }

  private requireBackup(id: number): LoadedBackup {
    const err = this.corrupt.get(id);
    if (err) throw err;
    const b = this.backups.get(id);
    if (!b) throw notFound(`backup ${id} not found in ${this.env.url}`, { backupId: id });
    return b;
  }

  private requireWritable(what: string): void {
    if (this.opts.readOnly) throw invalidArgument(`${what}: the backup engine was opened read-only`);
  }

  /**
   * Runs a writing operation under the directory's writer lock, on a fresh view of the directory
   * (another process may have written since this engine last looked).
   */
  private async writing<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.opts.lock === false || this.heldLock) {
      // (A lock held since open: nobody else has written meanwhile.)
      if (!this.loaded) await this.load(signal);
      return fn();
    }
    const lock = await WriterLock.acquire(this.env, { ...this.opts.lock, signal });
    const hold = this.opts.lock.hold === true;
    this.lock = lock;
    this.heldLock = hold;
    let done = false;
    try {
      await this.load(signal);
      const result = await fn();
      done = true;
      return result;
    } finally {
      // A held lock is kept for the engine's next operations, unless this first one failed.
      if (!hold || !done) {
        this.lock = undefined;
        this.heldLock = false;
        await lock.release();
      }
    }
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw invalidArgument('another operation is running on this backup engine');
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  // ---------------------------------------------------------------- create

  async createBackup(dbDir: string, opts: CreateBackupOptions = {}): Promise<CreateBackupResult> {
    this.requireWritable('create backup');
    return this.exclusive(() => this.writing(opts.signal, () => this.doCreateBackup(dbDir, opts)));
  }

  private async doCreateBackup(dbDir: string, opts: CreateBackupOptions): Promise<CreateBackupResult> {
    const { signal } = opts;
    const appMetadata = toBuffer(opts.appMetadata);
    if (appMetadata.length > MAX_APP_METADATA) throw invalidArgument(`app metadata is ${appMetadata.length} bytes, over the 1 MiB limit`);
    throwIfAborted(signal);
    const id = this.latestBackupId + 1;
    // A private dir for the new id is the remains of an interrupted backup: clear it first.
    if (await this.hasAny(privateDir(id), signal)) await this.doGarbageCollect(signal);

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
      const snapshot = await snapshotDb(source, { walDir, backupLogFiles: this.opts.backupLogFiles, signal });
      try {
        return await this.copyAndPublish(id, snapshot, appMetadata, opts);
      } finally {
        await snapshot.release();
      }
    } finally {
      if (checkpointDir) await fsp.rm(checkpointDir, { recursive: true, force: true });
    }
  }

  private async copyAndPublish(id: number, snapshot: DbSnapshot, appMetadata: Buffer, opts: CreateBackupOptions): Promise<CreateBackupResult> {
    const { signal } = opts;
    const timestamp = Math.floor(Date.now() / 1000);
    const limiter = this.opts.backupRateLimit > 0 ? new RateLimiter(this.opts.backupRateLimit) : undefined;
    const queue = new PQueue({ concurrency: this.opts.maxBackgroundOperations });
    const entries: (BackupFileEntry & { size: number })[] = new Array(snapshot.files.length);
    const written: string[] = [];
    const bytesTotal = snapshot.files.reduce((a, f) => a + f.size, 0);
    let bytesDone = 0;
    let filesDone = 0;
    let copiedBytes = 0;
    let sharedBytesReused = 0;
    const progress = (file: string) =>
      opts.onProgress?.({ operation: 'backup', backupId: id, file, bytesDone, bytesTotal, filesDone, filesTotal: snapshot.files.length });
    const dstSeen = new Set<string>();
    const internalAbort = new AbortController();
    const opSignal = signal ? AbortSignal.any([signal, internalAbort.signal]) : internalAbort.signal;

    const backupOne = async (f: DbFile, index: number): Promise<void> => {
      throwIfAborted(opSignal);
      const shared = this.opts.shareTableFiles && (f.type === 'table' || f.type === 'blob');
      let dst: string;
      let knownCrc: number | undefined;
      if (shared && this.opts.shareFilesWithChecksum) {
        let sessionId: string | undefined;
        if (this.opts.naming === 'session-id' && f.type === 'table') {
          const { readTableProperties } = await import('../rocksdb/table-properties.ts');
          sessionId = (await readTableProperties(path.join(f.dir, f.name)).catch(() => undefined))?.dbSessionId || undefined;
        }
        if (!sessionId) knownCrc = await crcOfFile(path.join(f.dir, f.name), f.size, limiter, opSignal);
        dst = sharedChecksumName(f.name, f.size, { sessionId, crc32c: knownCrc, includeSize: this.opts.includeSizeInName, naming: this.opts.naming });
      } else if (shared) {
        dst = `${SHARED_DIR}${f.name}`;
      } else {
        dst = `${privateDir(id)}${f.name}`;
      }
      if (dstSeen.has(dst)) throw corruption(`two live files map to ${dst}`, { file: dst, backupId: id });
      dstSeen.add(dst);

      const existing = shared ? this.files.get(dst) : undefined;
      if (existing && existing.refs > 0) {
        // Stored already by an earlier backup: share it. RocksDB's AddFile check.
        if (existing.size !== f.size) {
          throw corruption(
            `${dst} is already in the backup directory with size ${existing.size}, but ${f.name} in the DB is ${f.size} bytes; ` +
              'if the DB file is not corrupt, delete old backups or back up to another directory',
            { file: dst, backupId: id },
          );
        }
        let crc = existing.crc32c;
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
      const source: WriteSource = f.contents
        ? [f.contents]
        : f.size === 0
          ? []
          : await openFileChunks(path.join(f.dir, f.name), {
              length: f.size,
              reuse: this.env.capabilities.writeRetainsNoChunk === true,
              chunkSize: this.env.capabilities.preferredChunkSize,
              signal: opSignal,
            });
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
      const body: WriteSource = counted(rateLimited(source, limiter, opSignal));
      const res = await this.env.write(dst, body, {
        size: f.contents ? f.contents.length : f.size,
        expectedCrc32c: knownCrc,
        sync: this.opts.sync,
        signal: opSignal,
      });
      written.push(dst);
      const expectedSize = f.contents ? f.contents.length : f.size;
      if (res.size !== expectedSize) {
        throw corruption(`${f.name} changed while being backed up: copied ${res.size} bytes, expected ${expectedSize}`, { file: f.name, backupId: id });
      }
      entries[index] = { name: dst, crc32c: res.crc32c, size: res.size };
      copiedBytes += res.size;
      filesDone++;
      progress(dst);
    };

    try {
      const tasks = snapshot.files.map((f, i) =>
        queue.add(() => backupOne(f, i)).catch((e) => {
          internalAbort.abort(e);
          throw e;
        }),
      );
      const results = await Promise.allSettled(tasks);
      const failed = firstFailure(results);
      if (failed) {
        throwIfAborted(signal);
        throw failed.reason;
      }
      throwIfAborted(signal);
      await snapshot.checkAfterCopy();
      const meta: BackupMeta = { schemaVersion: '1', timestamp, sequence: snapshot.sequence, appMetadata, files: entries.map(({ name, crc32c }) => ({ name, crc32c })) };
      // Publishing meta/<id> is the commit point: create-only, so two writers can never both
      // publish the same id.
      await this.lock?.check(signal);
      await this.env.write(metaName(id), [encodeBackupMeta(meta)], { createOnly: true, sync: this.opts.sync, signal });
      this.latestBackupId = id;
      this.addBackup(id, meta, entries.map((e) => ({ name: e.name, size: e.size, crc32c: e.crc32c, refs: 0 })));
      const info = this.info(this.backups.get(id)!, false);
      opts.onProgress?.({ operation: 'backup', backupId: id, bytesDone, bytesTotal, filesDone, filesTotal: snapshot.files.length });
      return { ...info, copiedBytes, sharedBytesReused };
    } catch (e) {
      queue.clear();
      await queue.onIdle().catch(() => {});
      // Nothing was published; remove what this attempt wrote that no backup references.
      const orphans = written.filter((n) => !(this.files.get(n)?.refs));
      await this.env.delete(orphans).catch(() => {});
      if (signal?.aborted) {
        throw new CairnError('Incomplete', `backup ${id} stopped before completion; nothing was published`, { backupId: id, cause: e });
      }
      throw e;
    }
  }

  private async hasAny(prefix: string, signal?: AbortSignal): Promise<boolean> {
    for await (const _ of this.env.list(prefix, { signal })) return true;
    return false;
  }

  // ---------------------------------------------------------------- delete, purge, gc

  async deleteBackup(id: number, opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.requireWritable('delete backup');
    return this.exclusive(() =>
      this.writing(opts.signal, async () => {
        await this.deleteNoGc(id, opts.signal);
        await this.doGarbageCollect(opts.signal);
      }),
    );
  }

  /** Keeps the newest `keep` valid backups, deletes the older ones (corrupt backups are left alone). */
  async purgeOldBackups(keep: number, opts: { signal?: AbortSignal } = {}): Promise<number[]> {
    this.requireWritable('purge backups');
    if (!Number.isInteger(keep) || keep < 0) throw invalidArgument(`keep must be a whole number >= 0, got ${keep}`);
    return this.exclusive(() =>
      this.writing(opts.signal, async () => {
        const ids = [...this.backups.keys()].sort((a, b) => a - b);
        const toDelete = ids.slice(0, Math.max(0, ids.length - keep));
        for (const id of toDelete) await this.deleteNoGc(id, opts.signal);
        await this.doGarbageCollect(opts.signal);
        return toDelete;
      }),
    );
  }

  private async deleteNoGc(id: number, signal?: AbortSignal): Promise<void> {
    const b = this.backups.get(id);
    if (!b && !this.corrupt.has(id)) throw notFound(`backup ${id} not found in ${this.env.url}`, { backupId: id });
    // The meta file goes first: once it is gone the backup no longer exists, whatever happens
    // to the deletion of its files (GC finishes that).
    await this.lock?.check(signal);
    await this.env.delete([metaName(id)], { signal });
    if (b) {
      this.backups.delete(id);
      for (const f of b.files) f.refs--;
    } else {
      this.corrupt.delete(id);
      // Protection lasts while some corrupt backup still names the file: GC recomputes it from
      // the corrupt metas that remain.
      this.protectedFiles.clear();
    }
  }

  async garbageCollect(opts: { signal?: AbortSignal } = {}): Promise<{ deleted: string[]; abortedUploads: number }> {
    this.requireWritable('garbage collect');
    return this.exclusive(() => this.writing(opts.signal, () => this.doGarbageCollect(opts.signal)));
  }

  private async doGarbageCollect(signal?: AbortSignal): Promise<{ deleted: string[]; abortedUploads: number }> {
    // Re-read what corrupt metas reference, so files only they name survive until they are deleted.
    if (this.corrupt.size > 0 && this.protectedFiles.size === 0) await this.reloadProtected(signal);
    const liveIds = new Set<number>([...this.backups.keys(), ...this.corrupt.keys()]);
    const garbage: string[] = [];
    for await (const f of this.env.list('', { signal })) {
      if (this.isGarbage(f, liveIds)) garbage.push(f.name);
    }
    for (let i = 0; i < garbage.length; i += 1000) {
      throwIfAborted(signal);
      await this.lock?.check(signal);
      await this.env.delete(garbage.slice(i, i + 1000), { signal });
    }
    for (const n of garbage) this.files.delete(n);
    for (const [n, f] of this.files) if (f.refs <= 0) this.files.delete(n);
    const abortedUploads = (await this.env.cleanupIncomplete?.({ signal })) ?? 0;
    return { deleted: garbage, abortedUploads };
  }

  private isGarbage(f: FileInfo, liveIds: Set<number>): boolean {
    const name = f.name;
    if (isSharedName(name)) {
      return !(this.files.get(name)?.refs) && !this.protectedFiles.has(name);
    }
    if (name.startsWith(PRIVATE_DIR)) {
      const dir = name.slice(PRIVATE_DIR.length).split('/')[0];
      const id = parseBackupId(dir);
      // RocksDB's rule: a private dir whose id has no meta file, or a *.tmp dir, is garbage.
      if (id === undefined) return dir.endsWith('.tmp') || dir.includes('.tmp');
      return !liveIds.has(id);
    }
    if (name.startsWith(META_DIR)) {
      const rest = name.slice(META_DIR.length);
      // RocksDB writes meta/.<id>.tmp before renaming it into place.
      return rest.endsWith('.tmp');
    }
    return false;
  }

  private async reloadProtected(signal?: AbortSignal): Promise<void> {
    for (const id of this.corrupt.keys()) {
      try {
        const st = await this.env.stat(metaName(id), { signal });
        if (!st) continue;
        const meta = await this.readMeta(id, st.size, signal);
        for (const f of meta.files) this.protectedFiles.add(f.name);
      } catch {
        // unreadable: nothing to protect by name
      }
    }
  }

  // ---------------------------------------------------------------- restore

  async restore(opts: RestoreOptions): Promise<BackupInfo> {
    return this.exclusive(async () => {
      const id = opts.backupId ?? this.latestValidBackupId;
      if (id === undefined) throw notFound(`no valid backup in ${this.env.url}`);
      const b = this.requireBackup(id);
      if (b.meta.files.some((f) => f.excluded)) {
        throw new CairnError('NotSupported', `backup ${id} has files excluded to another backup directory; cairn cannot restore it`, { backupId: id });
      }
      const { restoreFiles } = await import('./restore-files.ts');
      try {
        await restoreFiles({
          env: this.env,
          backupId: id,
          files: b.files.map((f) => ({ name: f.name, size: f.size, crc32c: f.crc32c })),
          dbDir: opts.dbDir,
          walDir: opts.walDir ?? opts.dbDir,
          keepLogFiles: opts.keepLogFiles ?? false,
          checkSpace: opts.checkSpace ?? true,
          sync: this.opts.sync,
          concurrency: this.opts.maxBackgroundOperations,
          limiter: this.opts.restoreRateLimit > 0 ? new RateLimiter(this.opts.restoreRateLimit) : undefined,
          signal: opts.signal,
          onProgress: opts.onProgress,
        });
      } catch (e) {
        if (isCairnError(e, 'NotFound') || isCairnError(e, 'Corruption')) throw (await this.deletedMeanwhile(id, 'restored', opts.signal, e)) ?? e;
        throw e;
      }
      return this.info(b, false);
    });
  }

  /**
   * Asked when reading backup `id` failed on (or found) missing files: if its manifest is gone
   * too, another process deleted the backup meanwhile (readers take no lock), and the error to
   * report is that, not a damaged backup.
   */
  private async deletedMeanwhile(id: number, what: string, signal: AbortSignal | undefined, cause?: unknown): Promise<CairnError | undefined> {
    if (signal?.aborted) return undefined;
    // (A failed stat proves nothing: the original error stands.)
    if ((await this.env.stat(metaName(id), { signal }).catch(() => 'unknown')) !== undefined) return undefined;
    return notFound(`backup ${id} was deleted while it was being ${what} (a purge or delete by another process)`, { backupId: id, ...(cause === undefined ? {} : { cause }) });
  }

  // ---------------------------------------------------------------- verify

  /**
   * Checks one backup: every file present with its recorded size; with `checksum`, its crc32c
   * recomputed from the bytes; with `serverChecksum`, the store's own crc32c compared.
   * Problems are collected, not thrown; a corrupt or unknown backup throws.
   */
  async verifyBackup(id: number, opts: VerifyOptions = {}): Promise<VerifyResult> {
    return this.exclusive(async () => {
      const b = this.requireBackup(id);
      const { signal } = opts;
      if (opts.serverChecksum && !this.env.capabilities.serverChecksum) {
        throw new CairnError('NotSupported', `${this.env.url} has no store-side checksums; use checksum verification`);
      }
      // Store-side checksums come with the size, from the listing where it carries them (GCS),
      // else from one metadata request per file (S3), which makes a listing unnecessary.
      const perFile = opts.serverChecksum && !this.env.capabilities.listsChecksums;
      // A shared file has the same size and crc32c in every backup (checked on load), so its
      // outcome in one mode holds for every backup that uses it.
      const mode = opts.checksum ? 'checksum' : opts.serverChecksum ? 'server' : 'size';
      const memo = opts.checkedSharedFiles;
      const memoKey = (name: string) => (isSharedName(name) ? `${mode}\0${name}` : undefined);
      const known = (name: string) => memo?.get(memoKey(name) ?? '');
      const todo = b.files.filter((f) => known(f.name) === undefined);
      const prefixes = [
        ...(todo.some((f) => !isSharedName(f.name)) ? [privateDir(id)] : []),
        ...(todo.some((f) => isSharedName(f.name)) ? [SHARED_DIR, SHARED_CHECKSUM_DIR] : []),
      ];
      const present = perFile || prefixes.length === 0 ? undefined : await this.listMany(prefixes, signal);
      const problems: VerifyProblem[] = [];
      const bytesTotal = b.size;
      let bytesDone = 0;
      let filesDone = 0;
      const queue = new PQueue({ concurrency: Math.max(this.opts.maxBackgroundOperations, opts.serverChecksum ? 32 : 1) });
      const limiter = this.opts.restoreRateLimit > 0 ? new RateLimiter(this.opts.restoreRateLimit) : undefined;
      await Promise.all(
        b.files.map((f) =>
          queue.add(async () => {
            throwIfAborted(signal);
            const already = known(f.name);
            if (already !== undefined) {
              problems.push(...already);
              bytesDone += f.size;
              filesDone++;
              return;
            }
            const found: VerifyProblem[] = [];
            const missing = (name: string) => found.push({ file: name, code: 'NotFound', message: `file missing: ${name}` });
            const wrongSize = (name: string, expected: number, size: number) =>
              found.push({ file: name, code: 'Corruption', message: `size mismatch for ${name}: expected ${expected}, found ${size}` });
            if (opts.serverChecksum) {
              let stored: StoredChecksum | undefined = present?.get(f.name);
              // (An entry listed without its checksum is asked for it on its own.)
              if (perFile || (stored !== undefined && stored.crc32c === undefined && f.crc32c !== undefined)) {
                try {
                  stored = await this.env.serverChecksum!(f.name, { signal });
                } catch (e) {
                  if (!isCairnError(e, 'NotFound')) throw e;
                }
              }
              if (stored === undefined) missing(f.name);
              else if (stored.size !== f.size) wrongSize(f.name, f.size, stored.size);
              else if (f.crc32c !== undefined) {
                // (A RocksDB meta without checksums leaves only the size to compare.)
                if (stored.crc32c === undefined) found.push({ file: f.name, code: 'NotSupported', message: `the store has no crc32c for ${f.name}` });
                else if (stored.crc32c !== f.crc32c) found.push({ file: f.name, code: 'Corruption', message: `checksum mismatch for ${f.name}: expected ${f.crc32c}, the store has ${stored.crc32c}` });
              }
            } else {
              const size = present!.get(f.name)?.size;
              if (size === undefined) missing(f.name);
              else if (size !== f.size) wrongSize(f.name, f.size, size);
              else if (f.crc32c !== undefined && opts.checksum) {
                // (A damaged file, or one the store will not serve as it is, e.g. archived: a
                // problem of that file, not a failure of the whole verification.)
                const got = await this.checksumOf(f.name, f.size, limiter, signal).catch((e: unknown) => {
                  if (isCairnError(e, 'Corruption') || isCairnError(e, 'NotSupported')) return e;
                  throw e;
                });
                if (got instanceof CairnError) found.push({ file: f.name, code: got.code as 'Corruption' | 'NotSupported', message: got.message });
                else if (got.length !== f.size) found.push({ file: f.name, code: 'Corruption', message: `${f.name}: read ${got.length} bytes, expected ${f.size}` });
                else if (got.crc !== f.crc32c) found.push({ file: f.name, code: 'Corruption', message: `checksum mismatch for ${f.name}: expected ${f.crc32c}, computed ${got.crc}` });
              }
            }
            problems.push(...found);
            const k = memoKey(f.name);
            if (memo && k !== undefined) memo.set(k, found);
            bytesDone += f.size;
            filesDone++;
            opts.onProgress?.({ operation: 'verify', backupId: id, file: f.name, bytesDone, bytesTotal, filesDone, filesTotal: b.files.length });
          }),
        ),
      );
      if (problems.some((p) => p.code === 'NotFound')) {
        const deleted = await this.deletedMeanwhile(id, 'verified', signal);
        if (deleted) throw deleted;
      }
      return { id, filesChecked: b.files.length, bytesChecked: bytesTotal, problems };
    });
  }

  /** CRC32C of a stored file, read in (parallel, resumable) ranges where the store prefers that. */
  private async checksumOf(name: string, size: number, limiter: RateLimiter | undefined, signal: AbortSignal | undefined): Promise<{ crc: number; length: number }> {
    const ranges = this.env.capabilities.parallelRanges;
    if (ranges && size > 0) {
      // (A range that returns another length than asked throws Corruption: reported as damage.)
      const crc = await readParallelRanges(
        async (offset, length, sig) => rateLimited(await this.env.openRead(name, { offset, length, signal: sig }), limiter, sig),
        () => ({ chunk: () => {} }),
        { name, size, partSize: ranges.partSize, concurrency: ranges.concurrency, ...(signal === undefined ? {} : { signal }) },
      );
      return { crc, length: size };
    }
    const crc = new Crc32c();
    for await (const c of rateLimited(await this.env.openRead(name, { signal, reuseBuffers: true, length: size }), limiter, signal)) crc.update(c);
    return { crc: crc.value, length: crc.length };
  }

  private async releaseHeldLock(): Promise<void> {
    const lock = this.heldLock ? this.lock : undefined;
    this.heldLock = false;
    this.lock = undefined;
    await lock?.release();
  }

  async close(): Promise<void> {
    await this.releaseHeldLock();
    await this.env.close();
  }
}

const PROGRESS_INTERVAL = 4 << 20;
/** Manifests read ahead while opening a directory (a round trip each on object stores). */
const META_READ_AHEAD = 8;

/** CRC32C of the first `size` bytes of a local file (for legacy crc32c naming). */
async function crcOfFile(p: string, size: number, limiter: RateLimiter | undefined, signal: AbortSignal): Promise<number> {
  const crc = new Crc32c();
  if (size === 0) return 0;
  for await (const c of rateLimited(await openFileChunks(p, { length: size, reuse: true, signal }), limiter, signal)) crc.update(c);
  if (crc.length !== size) throw corruption(`${p} shrank while being read`, { file: p });
  return crc.value;
}

