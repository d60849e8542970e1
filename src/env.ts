// BackupEnv: the storage a backup directory lives on. The engine only speaks in
// '/'-separated names relative to the backup root ("meta/3", "shared_checksum/000013_s…_123.sst"),
// so a local directory, an S3 prefix and a GCS prefix look the same to it.
//
// Shape taken from restic's backend (small verbs, typed handles, idempotent delete) and rclone's
// Fs/Object (listing carries sizes; server-side hashes are an optional feature, asked for, not assumed).
import { CairnError } from './errors.ts';

/** What write() consumes: a stream, an async generator, or an array of buffers (iterate with for await). */
export type WriteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface FileInfo {
  /** Name relative to the backup root, '/'-separated, no leading slash. */
  name: string;
  size: number;
  /** The store's own CRC32C, where list() gets it at no extra cost (see listsChecksums). */
  crc32c?: number;
  /**
   * When the file was last written (ms since the epoch, the store's clock: mtime on disk, S3
   * LastModified, GCS updated), where list() gets it at no extra cost. Lock files use it
   * to tell a lock being written from one whose writer died before writing it.
   */
  modified?: number;
}

/** Chunks smaller than this are never reused by a provider (see ReadOptions.reuseBuffers). */
export const REUSABLE_CHUNK_MIN = 256 * 1024;

export interface ReadOptions {
  /** First byte to read (default 0). */
  offset?: number;
  /** Number of bytes to read from offset (default: to the end). */
  length?: number;
  /**
   * The caller is finished with each chunk of at least REUSABLE_CHUNK_MIN bytes before it asks for
   * the next, so the provider may hand out such buffers again (saves memory on large copies).
   * Smaller chunks always stay the caller's. Providers may ignore it.
   */
  reuseBuffers?: boolean;
  /**
   * Aborting it also lets go of a stream openRead returned that is not read to its end, or not
   * read at all (its response and connection are freed).
   */
  signal?: AbortSignal;
}

export interface WriteOptions {
  /**
   * Exact number of bytes the source will deliver, when known: object stores choose part sizes
   * from it. A source that delivers another number fails the write with Corruption.
   */
  size?: number;
  /**
   * The CRC32C the content must have, when the caller knows it in advance. The write fails with a
   * Corruption error and publishes nothing if the bytes received do not match.
   */
  expectedCrc32c?: number;
  /** Fail with AlreadyExists rather than replace an existing object. */
  createOnly?: boolean;
  /** Make the data durable before returning (fsync on local disk; implied on object stores). */
  sync?: boolean;
  /**
   * Keep the object under retention (S3 Object Lock, in the env's configured mode) until this
   * date: the store refuses to delete or overwrite it before. Only for an env with
   * capabilities.retention, after requireRetention().
   */
  retainUntil?: Date;
  signal?: AbortSignal;
}

/** Why the store refuses to delete a file now. */
export interface FileRetention {
  /** Until when (undefined: a hold without a date, such as an S3 legal hold). */
  until?: Date;
  /** The store's name for the lock: GOVERNANCE, COMPLIANCE, legal hold. */
  mode: string;
}

/**
 * delete() could not remove every version of these files: the store keeps them under retention
 * (everything else asked for was deleted). A Retained CairnError with the files and their dates.
 */
export class RetainedFilesError extends CairnError {
  readonly files: ReadonlyMap<string, FileRetention>;

  constructor(where: string, files: ReadonlyMap<string, FileRetention>) {
    const list = [...files].slice(0, 5).map(([n, r]) => `${n} (${r.mode}${r.until ? ` until ${r.until.toISOString()}` : ''})`).join(', ');
    super('Retained', `${where}: ${files.size} file(s) are under retention and were not deleted: ${list}${files.size > 5 ? ', …' : ''}`, { file: [...files.keys()][0] });
    this.files = files;
  }
}

export interface WriteResult {
  size: number;
  /** CRC32C of exactly the bytes written, computed in the same pass that sent them. */
  crc32c: number;
}

export interface StoredChecksum {
  size: number;
  /** Undefined when the store kept none for this object. */
  crc32c?: number;
}

/** One thing `cairn check` reports about a store: what the store does, what cairn does about it, and whether that is the full protection. */
export interface StoreFeature {
  feature: string;
  store: string;
  cairn: string;
  /** false: a gap cairn works around (or cannot), as explained in `cairn`. */
  ok: boolean;
}

export interface StoreDescription {
  /** How cairn writes there, in a few words. */
  writePath: string;
  features: StoreFeature[];
}

export interface EnvCapabilities {
  /**
   * The env has serverChecksum(), which answers without downloading the object. Derived from the
   * method's presence by fillCapabilities, never declared by hand.
   */
  readonly serverChecksum: boolean;
  /** list() entries carry the store's crc32c (a GCS listing has it; an S3 listing does not). */
  listsChecksums?: boolean;
  /** createOnly writes are enforced by the store itself (not check-then-write). */
  atomicCreateOnly: boolean;
  /**
   * write() is finished with each chunk of its source before it asks for the next one, so the
   * producer may reuse chunk buffers. Providers that keep chunks (to fill an upload part) leave
   * this unset.
   */
  writeRetainsNoChunk?: boolean;
  /**
   * The env has requireRetention(), extendRetention() and retentionOf() (WriteOptions.retainUntil
   * is honoured). Derived from the methods' presence by fillCapabilities.
   */
  readonly retention?: boolean;
  /** The chunk size write() handles best (an upload part): the engine reads sources in it. */
  preferredChunkSize?: number;
  /**
   * A byte range is one cheap request, and several ranges of one large file read at once beat a
   * single stream (object stores): restore and checksum verification read files as ranges of
   * partSize, `concurrency` at a time per file, and resume a range cut off midway.
   */
  parallelRanges?: { partSize: number; concurrency: number };
  /**
   * Known once prepare() has run: what serverChecksum() cannot check on this store (objects it
   * keeps no full-object CRC32C for), in words for the user; unset when it checks everything.
   */
  readonly serverChecksumGaps?: string;
}

export interface BackupEnv {
  /** Human-readable location, used in messages: a path, s3://bucket/prefix, gs://bucket/prefix. */
  readonly url: string;
  readonly capabilities: EnvCapabilities;

  /** Every file whose name starts with `prefix` (recursively), with sizes; order unspecified. */
  list(prefix: string, opts?: { signal?: AbortSignal }): AsyncIterable<FileInfo>;

  /** Size of one file, or undefined when it does not exist. */
  stat(name: string, opts?: { signal?: AbortSignal }): Promise<FileInfo | undefined>;

  /** The file's bytes (or a range), as chunks. Rejects with NotFound when it does not exist. */
  openRead(name: string, opts?: ReadOptions): Promise<AsyncIterable<Uint8Array>>;

  /**
   * Creates or replaces `name` with the bytes of `source`, atomically: readers see the old
   * content or the whole new content, never a part (tmp+rename on disk; PUT / multipart complete
   * on object stores). On error or abort nothing new becomes visible.
   */
  write(name: string, source: WriteSource, opts?: WriteOptions): Promise<WriteResult>;

  /**
   * Learns what the store supports (S3: a probe of a few requests, probe.ts), once per env; write()
   * waits for it by itself. Capabilities that depend on it (atomicCreateOnly, serverChecksumGaps)
   * are final afterwards.
   */
  prepare?(opts?: { signal?: AbortSignal }): Promise<void>;

  /** What the store supports and how cairn writes there (`cairn check`); may ask the store (S3: prepare()). */
  describeStore?(opts?: { signal?: AbortSignal }): Promise<StoreDescription>;

  /**
   * Removes files; a missing file is not an error. On a store that keeps versions (an Object Lock
   * bucket), every version of each file goes, not just its current one; versions the store keeps
   * under retention stay (the file stays listed) and delete rejects with RetainedFilesError after
   * deleting the rest.
   */
  delete(names: string[], opts?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Throws NotSupported, naming the location, unless the store can keep what cairn writes under
   * retention (an S3 bucket with Object Lock): asked before a backup with retainUntil writes anything.
   */
  requireRetention?(opts?: { signal?: AbortSignal }): Promise<void>;

  /** Keeps each file under retention at least until `until`; never shortens a retention. */
  extendRetention?(names: string[], until: Date, opts?: { signal?: AbortSignal }): Promise<void>;

  /**
   * The files among `names` that the store would refuse to delete at `now` (default: the clock),
   * with the retention that holds each; files that are absent or free are left out.
   */
  retentionOf?(names: string[], opts?: { now?: Date; signal?: AbortSignal }): Promise<Map<string, FileRetention>>;

  /**
   * The object's size and the store's own CRC32C of it, in one metadata request, without
   * downloading (crc32c undefined when the store kept none). Rejects with NotFound when absent.
   */
  serverChecksum?(name: string, opts?: { signal?: AbortSignal }): Promise<StoredChecksum>;

  /**
   * Removes leftovers of interrupted writes that are invisible to list() (S3 multipart uploads,
   * GCS resumable sessions). Returns how many were removed.
   */
  cleanupIncomplete?(opts?: { signal?: AbortSignal }): Promise<number>;

  /**
   * For stores where an interrupted write() leaves a visible temporary (local disk:
   * `<name>.<random>.tmp`; object stores have none, an upload being invisible until complete):
   * the name such a temporary was meant to become, or undefined when `name` is not one.
   */
  temporaryTarget?(name: string): string | undefined;

  /**
   * Publishes a temporary an interrupted write() left (see temporaryTarget) under its final name,
   * create-only (AlreadyExists when that name exists), synced first when `sync`. A resumed backup
   * calls it once it has checked that the temporary holds the whole file.
   */
  promoteTemporary?(temporary: string, opts?: { sync?: boolean; signal?: AbortSignal }): Promise<void>;

  /**
   * For stores with real directories (local disk), whose empty directories list() cannot show:
   * removes the empty directories below `dir` (such as private/<id>/ of a backup that never got
   * a file) but those `keep` names ('private/7/'). Returns the names of those removed.
   */
  pruneEmptyDirs?(dir: string, opts?: { keep?: (name: string) => boolean; signal?: AbortSignal }): Promise<string[]>;

  /**
   * Requests sent so far, by verb (GET, HEAD, LIST, PUT, POST, DELETE), retries included: what
   * the work cost on a store that bills per request. Object stores only.
   */
  requestCounts?(): Record<string, number>;

  close(): Promise<void>;
}

/** What a provider declares: everything but the flags derived from its optional methods. */
export type DeclaredCapabilities = Omit<EnvCapabilities, 'serverChecksum' | 'retention'>;

/**
 * A provider's capabilities, with every flag that stands for an optional method derived from that
 * method's presence (as rclone's Features.Fill does), so a flag and a method cannot disagree.
 */
export function fillCapabilities(env: object, declared: DeclaredCapabilities): EnvCapabilities {
  const e = env as Partial<BackupEnv>;
  const retention = typeof e.requireRetention === 'function' && typeof e.extendRetention === 'function' && typeof e.retentionOf === 'function';
  return { ...declared, serverChecksum: typeof e.serverChecksum === 'function', ...(retention ? { retention } : {}) };
}
