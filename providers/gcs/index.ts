// BackupEnv on Google Cloud Storage (@google-cloud/storage): gs://bucket/prefix, backup names map
// to objects `<prefix>/<name>`. The modules:
//   options.ts  what callers and CAIRN_GCS_* set, resolved to settings
//   client.ts   the library's clients, metadata, retries, request counting
//   read.ts     list, stat, stored checksum, downloads
//   upload.ts   single-request and resumable uploads with CRC32C, checked after the write
//   retention.ts  object retention (backup --retain) and holds
//   errors.ts   library errors to CairnErrors
import { RetainedFilesError, fillCapabilities, type BackupEnv, type EnvCapabilities, type FileInfo, type FileRetention, type ReadOptions, type StoredChecksum, type WriteOptions, type WriteResult, type WriteSource } from '../../src/env.ts';
import { fanOut } from '../../src/io/fan-out.ts';
import { BucketLocation } from '../object-store/location.ts';
import { GcsStore } from './client.ts';
import { statusOf } from './errors.ts';
import { listObjects, readObject, statObject, storedChecksum } from './read.ts';
import { GcsUploader } from './upload.ts';
import { GcsRetention } from './retention.ts';
import { gcsOptionsFromEnv, resolveGcsSettings, type GcsEnvOptions } from './options.ts';

export { gcsOptionsFromEnv, type GcsEnvOptions, type GcsRetryOptions } from './options.ts';

/** GCS bucket names: 3-222 characters of [a-z0-9._-], starting and ending with a letter or digit. */
const isGcsBucketName = (b: string) => /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(b);

export class GcsEnv implements BackupEnv {
  readonly url: string;
  readonly capabilities: EnvCapabilities;
  readonly bucket: string;
  /** '' or the object name prefix with a trailing '/'. */
  readonly prefix: string;
  private readonly store: GcsStore;
  private readonly uploader: GcsUploader;
  private readonly retention: GcsRetention;

  constructor(url: URL | string, opts: GcsEnvOptions = {}) {
    const loc = BucketLocation.parse(url, 'gs', isGcsBucketName);
    const settings = resolveGcsSettings(opts);
    this.store = new GcsStore(loc, opts, settings);
    this.retention = new GcsRetention(this.store, opts.retentionMode ?? 'Unlocked');
    this.uploader = new GcsUploader(this.store, opts.storageClass, this.retention);
    this.url = loc.url;
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.capabilities = fillCapabilities(this, {
      listsChecksums: true,
      atomicCreateOnly: true,
      // Every chunk is copied into a pooled buffer before the next is asked for.
      writeRetainsNoChunk: true,
      ...(settings.readConcurrency > 1 ? { parallelRanges: { partSize: settings.readPartSize, concurrency: settings.readConcurrency } } : {}),
    });
  }

  /** Resolves when the bucket is listable; NotFound naming the bucket when it does not exist. */
  async verifyBucket(): Promise<void> {
    try {
      await this.store.bucket.getFiles({ prefix: this.prefix, maxResults: 1, autoPaginate: false });
    } catch (e) {
      if (statusOf(e) === 404) throw this.store.missingBucket('open', this.prefix, undefined, e);
      throw this.store.mapError(e, 'open', undefined);
    }
  }

  list(prefix: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<FileInfo> {
    return listObjects(this.store, prefix, opts.signal);
  }

  stat(name: string, opts: { signal?: AbortSignal } = {}): Promise<FileInfo | undefined> {
    return statObject(this.store, name, opts.signal);
  }

  serverChecksum(name: string, opts: { signal?: AbortSignal } = {}): Promise<StoredChecksum> {
    return storedChecksum(this.store, name, opts.signal);
  }

  openRead(name: string, opts: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    return readObject(this.store, name, opts);
  }

  write(name: string, source: WriteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    return this.uploader.write(name, source, opts);
  }

  async delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { store } = this;
    const keys = [...new Set(names.map((n) => store.loc.key(n)))];
    const retained = new Map<string, FileRetention>();
    await fanOut(
      keys,
      async (key, _i, signal) => {
        try {
          // Unconditional deletes go through a client whose strategy is RetryAlways: with
          // RetryConditional the library would switch retries off client-wide for the duration of
          // each delete. Deleting twice is harmless here (404 is success).
          await store.deleteBucket.file(key).delete({ ignoreNotFound: true });
        } catch (e) {
          if (statusOf(e) === 404) return;
          // Refused under a retention or hold: reported once the others are deleted.
          const name = store.loc.nameOf(key) ?? key;
          const held = statusOf(e) === 403 ? await this.retention.whyRefused(name, signal) : undefined;
          if (!held) throw store.mapError(e, 'delete', name, key, signal);
          retained.set(name, held);
        }
      },
      { concurrency: store.settings.deleteConcurrency, ...(opts.signal === undefined ? {} : { signal: opts.signal }) },
    );
    if (retained.size > 0) throw new RetainedFilesError(`delete in ${this.url}`, retained);
  }

  requireRetention(opts: { signal?: AbortSignal } = {}): Promise<void> {
    return this.retention.require(opts.signal);
  }

  extendRetention(names: string[], until: Date, opts: { signal?: AbortSignal } = {}): Promise<void> {
    return this.retention.extend(names, until, opts.signal);
  }

  retentionOf(names: string[], opts: { now?: Date; signal?: AbortSignal } = {}): Promise<Map<string, FileRetention>> {
    return this.retention.retentionOf(names, opts.now ?? new Date(), opts.signal);
  }

  /**
   * GCS resumable sessions of interrupted writes are invisible to listing, hold no object and
   * expire by themselves (one week); there is no API to enumerate them. cairn cancels the session
   * of a write that fails when it can, so there is nothing to do here.
   */
  async cleanupIncomplete(): Promise<number> {
    return 0;
  }

  requestCounts(): Record<string, number> {
    return this.store.requests.snapshot();
  }

  async close(): Promise<void> {
    this.uploader.release();
    this.store.close();
  }
}

/** Opens `gs://bucket[/prefix]`: options given here win over CAIRN_GCS_* variables. */
export async function openGcsEnv(url: URL | string, opts: GcsEnvOptions = {}): Promise<BackupEnv> {
  const env = new GcsEnv(url, { ...gcsOptionsFromEnv(), ...opts });
  if (opts.verifyBucket ?? true) await env.verifyBucket();
  return env;
}
