// The engine's public option, result and event types, in a module of their own so that the
// engine and the modules it delegates to (create, restore, verify, gc) import them from here
// rather than from each other.
import type { BackupEnv } from '../env.ts';
import type { CairnError } from '../errors.ts';
import type { Naming } from './layout.ts';
import type { RetainedBackup, RetainedFile } from './locked-objects.ts';
import type { WriterLockOptions } from './writer-lock.ts';

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
  /**
   * Read-only opens load only these backups' manifests (restore, verify or show of one backup):
   * the others are neither listed nor usable from this engine. In a directory of many large
   * backups, parsing every manifest is most of an open's time and memory.
   */
  onlyBackupIds?: number[];
  /**
   * The manifest schema new backups are written in (RocksDB's BackupEngineOptions::schema_version):
   * 1 (default) is what every RocksDB reads; 2 is RocksDB's schema 2.1, which adds each file's
   * size (checked on open, by cairn and by RocksDB) and temperature. Only RocksDB releases that
   * know schema 2 read it (tested with RocksDB 10); older ones list such a backup as corrupt.
   */
  schemaVersion?: 1 | 2;
  /**
   * Garbage collection (a writable open's clean-up included) keeps shared files that no backup
   * references but that were written less than this long ago, so that a backup stopped or killed
   * midway and run again reuses what it had uploaded (default 24 h; 0 removes them at once).
   */
  gcGraceMs?: number;
}

/** BackupEngineOptions with every default filled in (what the engine's parts work with). */
export type EngineSettings = Required<Omit<BackupEngineOptions, 'env' | 'onlyBackupIds'>> & Pick<BackupEngineOptions, 'onlyBackupIds'>;

export interface ProgressEvent {
  operation: 'backup' | 'restore' | 'verify';
  backupId: number;
  file?: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  /**
   * Of filesDone / bytesDone, what was not transferred (backup and restore): files already
   * stored or already in place and kept.
   */
  filesKept?: number;
  bytesReused?: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  onProgress?: (ev: ProgressEvent) => void;
  /** Told what the caller should know but that does not stop the operation (an unprotected read). */
  onWarning?: (message: string) => void;
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
  /**
   * Keep every file of the backup under retention until this date (S3 Object Lock, in the env's
   * mode): the manifest and private files are written locked, shared files already stored get
   * their retention extended (never shortened). The env must support it (requireRetention is
   * asked before anything is written: NotSupported otherwise).
   */
  retainUntil?: Date;
}

export interface BackupFileDetail {
  name: string;
  size: number;
  crc32c?: number;
  /** How many of the loaded valid backups use this stored file (more than 1 only for shared files). */
  usedBy?: number;
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
  /** With retainUntil: the date every file of the backup is retained until, at least. */
  retainUntil?: Date;
  /**
   * Files not copied (shared with earlier backups, or left by a stopped backup and resumed) and
   * their bytes: the names restore uses for what it kept.
   */
  filesKept: number;
  bytesReused: number;
  /** Of those, files a stopped or killed backup had stored, checked (size, crc32c) and reused. */
  filesResumed: number;
  bytesResumed: number;
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
  /**
   * What happens to the files already in dbDir (RocksDB's RestoreOptions::mode). 'purge-all'
   * (default) deletes them all and downloads every file. 'keep-latest-session-files' keeps a table
   * or blob file whose name and size match the backup's and whose DB session id (from its table
   * properties) matches the one in its backup name; files named without a session id are
   * compared by crc32c. 'verify-checksum' keeps table and blob files whose crc32c matches the
   * manifest's. MANIFEST, CURRENT, OPTIONS and WAL files are always replaced.
   */
  mode?: RestoreMode;
}

export type RestoreMode = 'purge-all' | 'keep-latest-session-files' | 'verify-checksum';
export const RESTORE_MODES: readonly RestoreMode[] = ['purge-all', 'keep-latest-session-files', 'verify-checksum'];

/** What restore() returns: the backup restored, and how much of it was already in place. */
export interface RestoreResult extends BackupInfo {
  /** Files already in dbDir that the mode kept instead of downloading. */
  filesKept: number;
  bytesReused: number;
}

export interface VerifyOptions extends OperationOptions {
  /** Download every file and recompute its crc32c. */
  checksum?: boolean;
  /** Compare the store's own crc32c with the manifest, downloading nothing. */
  serverChecksum?: boolean;
  /**
   * Pass one Map to the verifyBackup() calls of one run: a shared file checked for one backup
   * is not checked again for the next ones. verifyBackups() does this by itself (and lists each
   * directory once); this stays for callers that verify backup by backup.
   */
  checkedSharedFiles?: Map<string, VerifyProblem[]>;
  /**
   * Check sizes against the listing the engine was loaded from instead of listing the file
   * directories again: for a run that opened the engine just before (the CLI). It does not see
   * files deleted or changed since that listing; a backup whose manifest is gone once the read
   * lock is held is reported deleted (one listing of meta/). Not with serverChecksum on a store
   * whose listings carry the checksums (GCS): that listing is needed for them.
   */
  sizesFromOpen?: boolean;
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

/** What deleting backups did: backups a live reader holds are kept, not deleted. */
export interface DeleteResult {
  deleted: number[];
  /** Backups kept because a live restore or verify reads them, with who reads them. */
  keptForReaders: { id: number; readers: string[] }[];
  /** Backups kept whole because files their deletion would remove are under retention. */
  retained: RetainedBackup[];
}

export interface GcResult {
  /** Files deleted, and empty directories removed (their names end with '/'). */
  deleted: string[];
  abortedUploads: number;
  /** Garbage left in place because the store keeps it under retention (a later GC removes it). */
  retained?: RetainedFile[];
  /** Unreferenced shared files kept because they are younger than the grace period. */
  keptForResume: number;
}
