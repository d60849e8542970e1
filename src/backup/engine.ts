// BackupEngine: RocksDB's backup engine (utilities/backup/backup_engine.cc) on a BackupEnv.
// Same directory layout and manifest format, so either side can read and extend the other's
// backup directories. This class opens the directory into a Catalog (the state RocksDB's engine
// holds after Initialize()), takes the writer lock for writing operations, and runs each
// operation from its own module: create.ts, restore.ts, verify.ts, gc.ts.
import type { BackupEnv } from '../env.ts';
import { CairnError, invalidArgument } from '../errors.ts';
import { Catalog } from './catalog.ts';
import { DirListing } from './dir-listing.ts';
import type { EngineContext } from './context.ts';
import { createBackup } from './create.ts';
import { collectGarbage, deleteBackupNoGc, deleteBackupsKeepingReaders } from './gc.ts';
import { refreshListIndex } from './list-index.ts';
import { purgeBackups, type PurgeOptions, type PurgeResult } from './purge.ts';
import { ReaderLock } from './reader-lock.ts';
import type { RetentionPolicy } from './retention.ts';
import { restoreBackup } from './restore.ts';
import { retainedError } from './locked-objects.ts';
import { DEFAULT_GC_GRACE_MS } from './resume.ts';
import type {
  BackupEngineOptions, BackupInfo, CorruptBackup, CreateBackupOptions, CreateBackupResult, DeleteResult, EngineSettings, GcResult,
  OperationOptions, RestoreOptions, RestoreResult, VerifyOptions, VerifyResult,
} from './types.ts';
import { verifyBackup, verifyBackups, type VerifyBackupsResult } from './verify.ts';
import { WriterLock } from './writer-lock.ts';

export type {
  BackupEngineOptions, BackupFileDetail, BackupInfo, CorruptBackup, CreateBackupOptions, CreateBackupResult, DeleteResult, OperationOptions,
  ProgressEvent, RestoreMode, RestoreOptions, RestoreResult, VerifyOptions, VerifyProblem, VerifyResult,
} from './types.ts';
export type { VerifyBackupsResult } from './verify.ts';
export type { PurgeOptions, PurgeResult } from './purge.ts';
export type { RetainedBackup, RetainedFile } from './locked-objects.ts';
export type { RetentionPolicy } from './retention.ts';

export class BackupEngine {
  readonly env: BackupEnv;
  private readonly settings: EngineSettings;
  private catalog = new Catalog();
  private busy = false;
  private loaded = false;
  private lock: WriterLock | undefined;
  private heldLock = false;
  /**
   * The directory as listed right after this engine took the writer lock it holds, followed
   * through the operations' own changes (dir-listing.ts); undefined when no lock is held since
   * the listing, and after an operation failed (what it changed is then not known exactly).
   */
  private listing: DirListing | undefined;
  /** What the clean-up run by a writable open removed. */
  cleanedOnOpen: GcResult = { deleted: [], abortedUploads: 0, keptForResume: 0 };

  private constructor(opts: BackupEngineOptions) {
    this.env = opts.env;
    this.settings = {
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
      onlyBackupIds: opts.onlyBackupIds,
      lock: opts.lock ?? {},
      schemaVersion: opts.schemaVersion ?? 1,
      gcGraceMs: opts.gcGraceMs ?? DEFAULT_GC_GRACE_MS,
    };
    if (this.settings.schemaVersion !== 1 && this.settings.schemaVersion !== 2) {
      throw new CairnError('NotSupported', `schema version ${String(this.settings.schemaVersion)}: only 1 and 2 can be written`);
    }
    if (!(this.settings.gcGraceMs >= 0)) throw invalidArgument(`gcGraceMs must be >= 0, got ${opts.gcGraceMs}`);
    if (this.settings.readOnly && this.settings.destroyOldData) throw invalidArgument("can't destroy old data with a read-only backup engine");
    if (!this.settings.readOnly && opts.onlyBackupIds !== undefined) throw invalidArgument('onlyBackupIds is for read-only opens: a writer needs every backup to know which files are in use');
  }

  /** Opens a backup directory (which need not exist yet) and loads every backup's manifest. */
  static async open(opts: BackupEngineOptions & { signal?: AbortSignal }): Promise<BackupEngine> {
    const engine = new BackupEngine(opts);
    if (engine.settings.readOnly) {
      await engine.load(opts.signal);
      return engine;
    }
    await engine.writing(opts.signal, async (ctx) => {
      if (engine.settings.destroyOldData) {
        for (const id of [...ctx.catalog.backups.keys(), ...ctx.catalog.corrupt.keys()]) await deleteBackupNoGc(ctx, id, opts.signal);
        ctx.catalog.latestBackupId = 0;
        await refreshListIndex(ctx.env, ctx.catalog, opts.signal); // (removes it: no backup left)
      }
      // Leftovers of an interrupted backup or delete (a private dir without meta, *.tmp files,
      // unfinished multipart uploads) are removed as soon as a writer opens the directory.
      engine.cleanedOnOpen = await collectGarbage(ctx, opts.signal);
    }, { refreshIndex: false });
    return engine;
  }

  /** `underLock`: the writer lock was just taken, and the listing is kept for as long as it is held. */
  private async load(signal?: AbortSignal, underLock = false): Promise<void> {
    this.loaded = true;
    this.listing = undefined;
    const maxValidBackups = this.settings.readOnly ? this.settings.maxValidBackupsToOpen : undefined;
    const only = this.settings.readOnly ? this.settings.onlyBackupIds : undefined;
    const onlyIds = only === undefined ? undefined : new Set(only);
    if (!underLock) {
      this.catalog = await Catalog.load(this.env, { maxValidBackups, signal, ...(onlyIds ? { onlyIds } : {}) });
      return;
    }
    const listing = await DirListing.take(this.env, signal);
    this.catalog = await Catalog.load(this.env, { maxValidBackups, signal, listing: { metas: listing.metas, stored: listing.rest }, ...(onlyIds ? { onlyIds } : {}) });
    this.listing = listing;
  }

  private get ctx(): EngineContext {
    return { env: this.env, catalog: this.catalog, settings: this.settings, lock: this.lock, listing: this.listing };
  }

  // ---------------------------------------------------------------- queries

  /** Valid backups, oldest first. */
  listBackups(opts: { includeFileDetails?: boolean } = {}): BackupInfo[] {
    return this.catalog.list(opts.includeFileDetails ?? false);
  }

  listCorruptedBackups(): CorruptBackup[] {
    return this.catalog.listCorrupt();
  }

  getBackupInfo(id: number, opts: { includeFileDetails?: boolean } = {}): BackupInfo {
    return this.catalog.info(this.catalog.require(id, this.env.url), opts.includeFileDetails ?? false);
  }

  get latestValidBackupId(): number | undefined {
    return this.catalog.latestValidBackupId;
  }

  // ---------------------------------------------------------------- locking

  private requireWritable(what: string): void {
    if (this.settings.readOnly) throw invalidArgument(`${what}: the backup engine was opened read-only`);
  }

  /**
   * Without the writer lock, only a store that enforces create-only writes itself keeps two
   * writers from publishing the same backup id over each other.
   */
  private async requireAtomicCreateOnly(signal: AbortSignal | undefined): Promise<void> {
    await this.env.prepare?.({ signal });
    if (!this.env.capabilities.atomicCreateOnly) {
      throw new CairnError('NotSupported', `${this.env.url}: the store does not enforce create-only writes (If-None-Match), so writing without the writer lock (lock: false) could replace a published backup; write with the lock`);
    }
  }

  /**
   * Runs a writing operation under the directory's writer lock, on a fresh view of the directory
   * (another process may have written since this engine last looked). Once it succeeds, the list
   * index (list-index.ts) is rewritten to describe the directory it left (best-effort: never fails
   * the operation), unless `refreshIndex` is false (a dry run; the clean-up of a writable open).
   */
  private async writing<T>(signal: AbortSignal | undefined, op: (ctx: EngineContext) => Promise<T>, opts: { refreshIndex?: boolean } = {}): Promise<T> {
    const fn = async (ctx: EngineContext): Promise<T> => {
      let result: T;
      try {
        result = await op(ctx);
      } catch (e) {
        // A failed operation may have written or deleted more than it could tell the listing.
        this.listing = undefined;
        throw e;
      }
      if (opts.refreshIndex !== false) await refreshListIndex(ctx.env, ctx.catalog, signal, ctx.listing?.fingerprint());
      return result;
    };
    const lockOpts = this.settings.lock;
    if (lockOpts === false) await this.requireAtomicCreateOnly(signal);
    if (lockOpts === false || this.heldLock) {
      // (A lock held since open: nobody else has written meanwhile.)
      if (!this.loaded) await this.load(signal);
      return fn(this.ctx);
    }
    const lock = await WriterLock.acquire(this.env, { ...lockOpts, signal });
    const hold = lockOpts.hold === true;
    this.lock = lock;
    this.heldLock = hold;
    let done = false;
    try {
      await this.load(signal, true);
      const result = await fn(this.ctx);
      done = true;
      return result;
    } finally {
      // A held lock is kept for the engine's next operations, unless this first one failed.
      if (!hold || !done) {
        this.lock = undefined;
        this.heldLock = false;
        this.listing = undefined;
        await lock.release();
      }
    }
  }

  /**
   * Runs a reading operation under a read lock on `ids` (reader-lock.ts), so that a delete,
   * purge or gc of another process keeps those backups until it ends.
   */
  private async reading<T>(ids: readonly number[], opts: OperationOptions, fn: () => Promise<T>): Promise<T> {
    const lockOpts = this.settings.lock;
    if (lockOpts === false || ids.length === 0) return fn();
    const guard = await ReaderLock.acquire(this.env, { ...lockOpts, backupIds: [...ids], signal: opts.signal });
    if (guard.unprotected !== undefined) opts.onWarning?.(guard.unprotected);
    try {
      const result = await fn();
      // A read that outlived its lock (taken for stale meanwhile) was not protected throughout;
      // what it read was checked against the manifest all the same, so that is a warning only.
      await guard.check(opts.signal).catch((e: unknown) => { if (!opts.signal?.aborted) opts.onWarning?.(`not protected throughout: ${(e as Error).message}`); });
      return result;
    } finally {
      await guard.release();
    }
  }

  /**
   * Deletes `ids` under the writer lock, keeping those a live reader holds, then collects
   * garbage. The deletions are announced in the writer lock first (WriterLock.beginDeleting).
   */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw invalidArgument('another operation is running on this backup engine');
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  // ---------------------------------------------------------------- operations

  async createBackup(dbDir: string, opts: CreateBackupOptions = {}): Promise<CreateBackupResult> {
    this.requireWritable('create backup');
    return this.exclusive(() => this.writing(opts.signal, (ctx) => createBackup(ctx, dbDir, opts)));
  }

  /**
   * Deletes a backup; rejects with Locked, deleting nothing, while a live restore or verify reads
   * it, and with Retained, deleting nothing, while files its deletion would remove are under retention.
   */
  async deleteBackup(id: number, opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.requireWritable('delete backup');
    return this.exclusive(() =>
      this.writing(opts.signal, async (ctx) => {
        const r = await deleteBackupsKeepingReaders(ctx, [id], opts.signal);
        if (r.retained[0]) throw retainedError(r.retained[0], this.env.url);
        const kept = r.keptForReaders[0];
        if (kept) throw new CairnError('Locked', `backup ${id} in ${this.env.url} is being read by ${kept.readers.join('; ')}; not deleting it`, { backupId: id });
      }),
    );
  }

  /** Deletes the backups `ids` names, except those a live restore or verify reads (kept and reported). */
  async deleteBackups(ids: readonly number[], opts: { signal?: AbortSignal } = {}): Promise<DeleteResult> {
    this.requireWritable('delete backups');
    return this.exclusive(() => this.writing(opts.signal, (ctx) => deleteBackupsKeepingReaders(ctx, [...new Set(ids)].sort((a, b) => a - b), opts.signal)));
  }

  /** Keeps the newest `keep` valid backups, deletes the older ones (corrupt backups are left alone). */
  async purgeOldBackups(keep: number, opts: { signal?: AbortSignal; onKeptForReaders?: (kept: DeleteResult['keptForReaders']) => void } = {}): Promise<number[]> {
    if (!Number.isInteger(keep) || keep < 0) throw invalidArgument(`keep must be a whole number >= 0, got ${keep}`);
    // keep 0 is an empty policy (refused); RocksDB's PurgeOldBackups(0) deletes every backup.
    if (keep === 0) {
      this.requireWritable('purge backups');
      return this.exclusive(() => this.writing(opts.signal, async (ctx) => {
        const r = await deleteBackupsKeepingReaders(ctx, [...ctx.catalog.backups.keys()].sort((a, b) => a - b), opts.signal);
        if (r.keptForReaders.length > 0) opts.onKeptForReaders?.(r.keptForReaders);
        return r.deleted;
      }));
    }
    const r = await this.purge({ last: keep }, { signal: opts.signal });
    if (r.keptForReaders.length > 0) opts.onKeptForReaders?.(r.keptForReaders);
    return r.removed.map((b) => b.id).sort((a, b) => a - b);
  }

  /**
   * Applies a retention policy (docs/retention.md): deletes every valid backup no rule keeps,
   * under the writer lock, then one GC pass. The newest valid backup is always kept; corrupt
   * backups are reported and kept. With `dryRun` nothing changes (and a read-only engine will do).
   */
  async purge(policy: RetentionPolicy, opts: PurgeOptions = {}): Promise<PurgeResult> {
    if (opts.dryRun && this.settings.readOnly) return this.exclusive(() => purgeBackups(this.ctx, policy, opts));
    this.requireWritable('purge backups');
    return this.exclusive(() => this.writing(opts.signal, (ctx) => purgeBackups(ctx, policy, opts), { refreshIndex: !opts.dryRun }));
  }

  /** `graceMs` overrides the engine's gcGraceMs for this pass (0: remove every unreferenced file now). */
  async garbageCollect(opts: { signal?: AbortSignal; graceMs?: number } = {}): Promise<GcResult> {
    this.requireWritable('garbage collect');
    if (opts.graceMs !== undefined && !(opts.graceMs >= 0)) throw invalidArgument(`graceMs must be >= 0, got ${opts.graceMs}`);
    return this.exclusive(() => this.writing(opts.signal, (ctx) => collectGarbage(ctx, opts.signal, opts.graceMs)));
  }

  async restore(opts: RestoreOptions): Promise<RestoreResult> {
    return this.exclusive(() => {
      const backupId = opts.backupId ?? this.catalog.latestValidBackupId;
      return this.reading(backupId === undefined ? [] : [backupId], opts, () => restoreBackup(this.ctx, { ...opts, backupId }));
    });
  }

  /**
   * Checks one backup: every file present with its recorded size; with `checksum`, its crc32c
   * recomputed from the bytes; with `serverChecksum`, the store's own crc32c compared.
   * Problems are collected, not thrown; a corrupt or unknown backup throws.
   */
  async verifyBackup(id: number, opts: VerifyOptions = {}): Promise<VerifyResult> {
    return this.exclusive(() => this.reading([id], opts, () => verifyBackup(this.ctx, id, opts)));
  }

  /**
   * Checks several backups (`'all'`: every valid and corrupt one, by id) in one pass: each
   * directory listed once, each distinct file checked once and its problems reported for every
   * backup using it. A backup that cannot be verified (corrupt, unknown, deleted meanwhile) gets
   * its `error` in its result instead of failing the others; results come in the order of `ids`.
   */
  async verifyBackups(ids: readonly number[] | 'all', opts: VerifyOptions = {}): Promise<VerifyBackupsResult[]> {
    return this.exclusive(() => {
      const list = ids === 'all' ? [...this.catalog.backups.keys(), ...this.catalog.corrupt.keys()].sort((a, b) => a - b) : ids;
      return this.reading(list, opts, () => verifyBackups(this.ctx, list, opts));
    });
  }

  private async releaseHeldLock(): Promise<void> {
    const lock = this.heldLock ? this.lock : undefined;
    this.heldLock = false;
    this.lock = undefined;
    this.listing = undefined;
    await lock?.release();
  }

  async close(): Promise<void> {
    await this.releaseHeldLock();
    await this.env.close();
  }
}
