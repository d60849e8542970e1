// BackupEnv on Amazon S3 and S3-compatible stores (MinIO, LocalStack, ...): s3://bucket/prefix.
// The integrity protocol is described in upload.ts; the modules:
//   options.ts  what callers and CAIRN_S3_* set, resolved to client settings
//   client.ts   the SDK client, error-mapped sends, HEAD, request counting
//   direct-request.ts  requests cairn signs and sends itself once the SDK has sent one to copy:
//     direct-head.ts  HEADs; direct-list.ts  ListObjectsV2 pages, read by list-page.ts
//   read.ts     list, stat, stored checksum, GetObject
//   upload.ts   PutObject / multipart upload with CRC32C, checked after the write
//   probe.ts    what the store supports, asked before the first write
//   write-strategy.ts  the CRC32C protocol, or the compatible (Content-MD5) path where it lacks it
//   cleanup.ts  delete, aborting leftover multipart uploads
//   retention.ts  Object Lock (backup --retain), deleting every version on versioned buckets
//   errors.ts   SDK errors to CairnErrors
import type { S3Client } from '@aws-sdk/client-s3';
import { fillCapabilities, type StoreDescription, type BackupEnv, type EnvCapabilities, type FileInfo, type FileRetention, type ReadOptions, type StoredChecksum, type WriteOptions, type WriteResult, type WriteSource } from '../../src/env.ts';
import { BucketLocation } from '../object-store/location.ts';
import { S3Store } from './client.ts';
import { S3Deleter, UploadLeftovers } from './cleanup.ts';
import { S3Uploader } from './upload.ts';
import { S3Retention } from './retention.ts';
import { readObject, listObjects, statObject, storedChecksum } from './read.ts';
import { resolveS3Settings, s3OptionsFromEnv, type S3EnvOptions, type S3Settings } from './options.ts';
import { probeS3Store, type S3StoreCapabilities } from './probe.ts';
import { describeS3Store } from './describe.ts';
import { chooseStrategy, serverChecksumGaps, type ChecksumMode, type WriteStrategy } from './write-strategy.ts';

export { mapS3Error } from './errors.ts';
export type { S3EnvOptions } from './options.ts';
export type { S3StoreCapabilities } from './probe.ts';
export type { WriteStrategy, ChecksumMode } from './write-strategy.ts';

/** What `cairn check` reports of an S3 store: what it does, and how cairn writes there. */
export interface S3StoreReport {
  mode: ChecksumMode;
  capabilities: S3StoreCapabilities;
  strategy: WriteStrategy;
}

export class S3Env implements BackupEnv {
  readonly url: string;
  readonly capabilities: EnvCapabilities;
  /** The SDK client (exposed for tests and diagnostics; cairn does not use it elsewhere). */
  readonly client: S3Client;
  readonly bucket: string;
  /** '' or the key prefix with a trailing '/'. */
  readonly prefix: string;
  readonly endpoint: string | undefined;
  private readonly settings: S3Settings;
  private readonly store: S3Store;
  private readonly uploader: S3Uploader;
  private readonly deleter: S3Deleter;
  private readonly leftovers: UploadLeftovers;
  private readonly retention: S3Retention;
  private prepared: Promise<void> | undefined;
  private probed: S3StoreCapabilities | undefined;

  constructor(url: URL | string, opts: S3EnvOptions = {}) {
    const loc = BucketLocation.parse(url, 's3');
    this.settings = resolveS3Settings(opts);
    this.store = new S3Store(loc, this.settings);
    this.leftovers = new UploadLeftovers(this.store);
    this.retention = new S3Retention(this.store, this.settings);
    this.uploader = new S3Uploader(this.store, this.settings, this.leftovers, this.retention);
    this.deleter = new S3Deleter(this.store, this.settings.concurrency, this.retention);
    this.url = loc.url;
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.client = this.store.client;
    this.endpoint = this.settings.endpoint;
    const { partSize, readPartSize, readConcurrency } = this.settings;
    this.capabilities = fillCapabilities(this, {
      atomicCreateOnly: true,
      preferredChunkSize: partSize,
      // write() copies each chunk into a part buffer before it asks for the next.
      writeRetainsNoChunk: true,
      ...(readConcurrency > 1 ? { parallelRanges: { partSize: readPartSize, concurrency: readConcurrency } } : {}),
    });
    // Final once prepare() has chosen the write strategy.
    const uploader = this.uploader;
    Object.defineProperty(this.capabilities, 'atomicCreateOnly', { enumerable: true, get: () => uploader.strategy.ifNoneMatch.put && uploader.strategy.ifNoneMatch.complete });
    Object.defineProperty(this.capabilities, 'serverChecksumGaps', { enumerable: true, get: () => serverChecksumGaps(uploader.strategy) });
  }

  /** How writes are made and checked: the CRC32C protocol until prepare() has chosen otherwise. */
  get writeStrategy(): WriteStrategy {
    return this.uploader.strategy;
  }

  /**
   * Asks the store what it supports (probe.ts), once, and chooses the write strategy; with
   * checksum 'crc32c' it asks nothing. A failed probe is asked again by the next caller.
   */
  prepare(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.settings.checksum === 'crc32c') return Promise.resolve();
    this.prepared ??= this.probe(opts.signal).then(
      (caps) => {
        this.uploader.strategy = chooseStrategy(this.settings.checksum as 'auto' | 'md5', caps, this.settings.sse);
      },
      (e: unknown) => {
        this.prepared = undefined;
        throw e;
      },
    );
    return this.prepared;
  }

  /** The store's capabilities (probed now unless known) and the strategy cairn uses there. */
  async storeReport(opts: { signal?: AbortSignal } = {}): Promise<S3StoreReport> {
    if (this.settings.checksum === 'crc32c') await this.probe(opts.signal);
    else await this.prepare(opts);
    return { mode: this.settings.checksum, capabilities: this.probed!, strategy: this.uploader.strategy };
  }

  async describeStore(opts: { signal?: AbortSignal } = {}): Promise<StoreDescription> {
    const r = await this.storeReport(opts);
    return describeS3Store(r.mode, r.capabilities, r.strategy);
  }

  private async probe(signal: AbortSignal | undefined): Promise<S3StoreCapabilities> {
    this.probed ??= await probeS3Store(this.store, signal);
    return this.probed;
  }

  list(prefix: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<FileInfo> {
    return listObjects(this.store, prefix, this.settings.listPageSize, opts.signal);
  }

  stat(name: string, opts: { signal?: AbortSignal } = {}): Promise<FileInfo | undefined> {
    return statObject(this.store, name, opts.signal);
  }

  openRead(name: string, opts: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    return readObject(this.store, name, opts);
  }

  async write(name: string, source: WriteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    if (this.settings.checksum !== 'crc32c') await this.prepare({ ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
    return await this.uploader.write(name, source, opts);
  }

  delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    return this.deleter.delete(names, opts.signal);
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

  serverChecksum(name: string, opts: { signal?: AbortSignal } = {}): Promise<StoredChecksum> {
    return storedChecksum(this.store, name, opts.signal);
  }

  async cleanupIncomplete(opts: { signal?: AbortSignal } = {}): Promise<number> {
    const aborted = await this.leftovers.cleanupIncomplete(opts.signal);
    // Object Lock buckets: versions no listing shows are leftovers too (they are not counted as uploads).
    await this.retention.sweepHiddenVersions(opts.signal);
    return aborted;
  }

  requestCounts(): Record<string, number> {
    return this.store.requests.snapshot();
  }

  async close(): Promise<void> {
    this.uploader.release();
    this.store.close();
  }
}

/** An S3 env for a URL: options given here win over CAIRN_S3_* variables (options.ts). */
export async function openS3Env(url: URL | string, opts: S3EnvOptions = {}): Promise<BackupEnv> {
  return new S3Env(url, { ...s3OptionsFromEnv(), ...opts });
}
