// BackupEnv on Amazon S3 and S3-compatible stores (MinIO, LocalStack, ...): s3://bucket/prefix.
//
// Integrity protocol: cairn computes the CRC32C of every byte it sends, in the same pass that
// reads them, and hands it to the store, which recomputes it and refuses the write on a mismatch
// before anything becomes visible:
//   - up to one part size: PutObject with x-amz-checksum-crc32c;
//   - larger: CreateMultipartUpload{CRC32C, FULL_OBJECT}, UploadPart with each part's CRC32C,
//     CompleteMultipartUpload{FULL_OBJECT, CRC32C of the whole file}.
// After the write, HeadObject(ChecksumMode=ENABLED) must return that same full-object CRC32C:
// it is what serverChecksum() later answers without downloading.
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';
import type { BackupEnv, EnvCapabilities, FileInfo, ReadOptions, StoredChecksum, WriteOptions, WriteResult, WriteSource } from '../../src/env.ts';
import { CairnError, corruption, invalidArgument, ioError, notFound, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64, crc32cToBase64, crc32cUpdate } from '../../src/crc32c.ts';
import { assertSafeName } from '../../src/names.ts';
import { orderedRangedRead } from '../../src/io/ranged-read.ts';
import { BufferPool } from '../../src/io/buffer-pool.ts';
import { OffThreadSha256 } from './sha256.ts';
import { s3OptionsFromEnv } from './env-options.ts';
import { isCode, isNotFound, isPreconditionFailed, isStatus, locationOf, mapS3Error, s3ErrorInfo } from './errors.ts';

export { mapS3Error } from './errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** S3 limits: parts 5 MiB..5 GiB (the last may be smaller), at most 10,000 parts, PUT/copy ≤ 5 GiB. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * GiB;
export const MAX_PARTS = 10_000;
export const MAX_SINGLE_COPY = 5 * GiB;
export const DEFAULT_PART_SIZE = 8 * MiB;
export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_MAX_ATTEMPTS = 5;

export interface S3EnvOptions {
  /** Default: AWS_REGION / AWS_DEFAULT_REGION / shared config; us-east-1 with a custom endpoint. */
  region?: string;
  /** Default: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL; none means AWS itself. */
  endpoint?: string;
  /** Default: CAIRN_S3_FORCE_PATH_STYLE (true/false), else true exactly when an endpoint is set. */
  forcePathStyle?: boolean;
  /** Default: the SDK's default provider chain (env, shared files, SSO, web identity, IMDS/ECS). */
  credentials?: S3ClientConfig['credentials'];
  /** Storage class of new objects (e.g. STANDARD_IA); default: the bucket's. */
  storageClass?: StorageClass;
  /** Server-side encryption of new objects. */
  sse?: 'AES256' | 'aws:kms';
  /** KMS key for sse 'aws:kms' (default: the account's aws/s3 key). */
  kmsKeyId?: string;
  /** Multipart part size in bytes (≥ 5 MiB, default 8 MiB); raised for files that would need > 10,000 parts. Files up to one part size are written with a single PUT. */
  partSize?: number;
  /** Ranged GETs in flight per large read (default 2: files are restored in parallel too) and their size (default 8 MiB). */
  readConcurrency?: number;
  readPartSize?: number;
  /** Parts in flight per file (default 4). Memory per write ≤ concurrency × partSize. */
  concurrency?: number;
  /** Attempts per request, including the first (SDK standard retry mode with backoff; default 5, or AWS_MAX_ATTEMPTS). */
  maxAttempts?: number;
  /**
   * Sign requests with UNSIGNED-PAYLOAD instead of the body's SHA-256 (saves hashing every byte
   * twice). The CRC32C still protects the body; over plain http the signature then no longer does.
   * Default: true over https (AWS itself, an https endpoint) and to a loopback endpoint, false
   * over plain http to another host.
   */
  unsignedPayload?: boolean;
  /** Keys per ListObjectsV2 page (1..1000, default 1000). */
  listPageSize?: number;
  /** Objects larger than this are copied with UploadPartCopy (default and maximum 5 GiB). */
  multipartCopyThreshold?: number;
  /** Part size for UploadPartCopy (default 512 MiB; raised to stay ≤ 10,000 parts). */
  copyPartSize?: number;
}

/** An S3 env for a URL: options given here win over CAIRN_S3_* variables (env-options.ts). */
export async function openS3Env(url: URL | string, opts: S3EnvOptions = {}): Promise<BackupEnv> {
  return new S3Env(url, { ...s3OptionsFromEnv(), ...opts });
}

interface Part {
  data: Buffer;
  last: boolean;
  /** The pool buffer behind `data`, to give back once the part is stored. */
  pooled?: Buffer;
}

/**
 * Cuts a byte source into parts of exactly `partSize` bytes, except the last, which has 1..partSize
 * bytes (0 only for an empty source). A part is emitted only once a byte beyond it has arrived, so
 * `last` is known when it is emitted. Nothing is read until the consumer asks for the next part.
 * Every chunk is copied into a part buffer from `pool` before the next chunk is asked for, so the
 * source may reuse its chunk buffers (writeRetainsNoChunk), and part buffers are reused in turn.
 */
async function* splitParts(source: WriteSource, partSize: number, pool: BufferPool): AsyncGenerator<Part, void, undefined> {
  let cur: Buffer | undefined;
  let filled = 0;
  for await (const chunk of source) {
    let c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (c.length > 0) {
      if (cur !== undefined && filled === partSize) {
        yield { data: cur, last: false, pooled: cur };
        cur = undefined;
      }
      if (cur === undefined) {
        cur = pool.take();
        filled = 0;
      }
      const k = Math.min(c.length, partSize - filled);
      c.copy(cur, filled, 0, k);
      filled += k;
      c = c.subarray(k);
    }
  }
  if (cur === undefined) yield { data: Buffer.alloc(0), last: true };
  else yield { data: cur.subarray(0, filled), last: true, pooled: cur };
}

function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return host === 'localhost' || host === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

function isSafePrefix(prefix: string): boolean {
  try {
    assertSafeName(prefix);
    return true;
  } catch {
    return false;
  }
}

function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw invalidArgument(`CAIRN_S3_FORCE_PATH_STYLE must be true or false, not "${v}"`);
}

/** URL-encodes a key for x-amz-copy-source, keeping the '/' separators. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
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
  private readonly opts: S3EnvOptions;
  private readonly partSize: number;
  private readonly readPartSize: number;
  private readonly readConcurrency: number;
  private readonly concurrency: number;
  /** Default-size part buffers, reused across writes; emptied whenever no write runs. */
  private readonly partPool: BufferPool;
  private activeWrites = 0;
  private readonly listPageSize: number | undefined;
  private readonly copyThreshold: number;
  private readonly copyPartSize: number;
  private batchDeleteUnsupported = false;
  /** Uploads this env failed to abort (uploadId → key): cleanupIncomplete retries them first. */
  private readonly unaborted = new Map<string, string>();
  private bucketKnownToExist = false;

  constructor(url: URL | string, opts: S3EnvOptions = {}) {
    const u = typeof url === 'string' ? new URL(url) : url;
    if (u.protocol !== 's3:') throw invalidArgument(`not an s3:// URL: ${u.href}`);
    const bucket = u.hostname;
    if (!bucket) throw invalidArgument(`no bucket in ${u.href} (expected s3://bucket/prefix)`);
    if (u.search || u.hash) throw invalidArgument(`unexpected query or fragment in ${u.href}`);
    let prefix: string;
    try {
      prefix = decodeURIComponent(u.pathname).replace(/^\/+/, '').replace(/\/+$/, '');
    } catch {
      throw invalidArgument(`invalid prefix in ${u.href}`);
    }
    if (prefix !== '' && !isSafePrefix(prefix)) throw invalidArgument(`invalid prefix in ${u.href}`);
    this.bucket = bucket;
    this.prefix = prefix === '' ? '' : `${prefix}/`;
    this.url = prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`;
    this.opts = opts;

    const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw invalidArgument(`partSize must be an integer between 5 MiB and 5 GiB, not ${opts.partSize}`);
    }
    this.partSize = partSize;
    this.readPartSize = Math.max(MiB, opts.readPartSize ?? DEFAULT_PART_SIZE);
    this.readConcurrency = Math.max(1, opts.readConcurrency ?? 2);
    this.capabilities = {
      serverChecksum: true,
      atomicCreateOnly: true,
      preferredChunkSize: partSize,
      // write() copies each chunk into a part buffer before it asks for the next.
      writeRetainsNoChunk: true,
      ...(this.readConcurrency > 1 ? { parallelRanges: { partSize: this.readPartSize, concurrency: this.readConcurrency } } : {}),
    };
    const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw invalidArgument(`concurrency must be a positive integer, not ${opts.concurrency}`);
    this.concurrency = concurrency;
    // Enough for `concurrency` parts in flight plus the one filling, for four files at once.
    this.partPool = new BufferPool(partSize, 4 * (concurrency + 1));
    if (opts.listPageSize !== undefined && !(Number.isSafeInteger(opts.listPageSize) && opts.listPageSize >= 1 && opts.listPageSize <= 1000)) {
      throw invalidArgument(`listPageSize must be 1..1000, not ${opts.listPageSize}`);
    }
    this.listPageSize = opts.listPageSize;
    this.copyThreshold = Math.min(opts.multipartCopyThreshold ?? MAX_SINGLE_COPY, MAX_SINGLE_COPY);
    this.copyPartSize = opts.copyPartSize ?? 512 * MiB;
    if (this.copyPartSize < MIN_PART_SIZE || this.copyPartSize > MAX_PART_SIZE) throw invalidArgument(`copyPartSize must be between 5 MiB and 5 GiB`);
    if (opts.sse === 'aws:kms' ? false : opts.kmsKeyId !== undefined) throw invalidArgument(`kmsKeyId needs sse: 'aws:kms'`);

    const endpoint = opts.endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || undefined) ?? (process.env.AWS_ENDPOINT_URL || undefined);
    this.endpoint = endpoint;
    const forcePathStyle = opts.forcePathStyle ?? parseBool(process.env.CAIRN_S3_FORCE_PATH_STYLE) ?? endpoint !== undefined;
    const region = opts.region ?? (process.env.AWS_REGION || undefined) ?? (process.env.AWS_DEFAULT_REGION || undefined) ?? (endpoint !== undefined ? 'us-east-1' : undefined);
    const maxAttempts = opts.maxAttempts ?? (process.env.AWS_MAX_ATTEMPTS ? undefined : DEFAULT_MAX_ATTEMPTS);
    if (maxAttempts !== undefined && !(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1)) throw invalidArgument(`maxAttempts must be ≥ 1, not ${maxAttempts}`);

    this.client = new S3Client({
      ...(region === undefined ? {} : { region }),
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
      forcePathStyle,
      followRegionRedirects: true,
      // cairn sends its own CRC32C on every upload and checks what the store kept; the SDK's
      // default (a CRC32 of its own, sent as an aws-chunked trailer) is neither comparable with
      // RocksDB's CRC32C nor understood by every S3-compatible server.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      retryMode: 'standard',
      sha256: OffThreadSha256,
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
    });
    // Over TLS, or to a server on this machine, the body cannot be altered on the way, so hashing
    // every byte for the signature (1.5 s of CPU per GiB here) buys nothing the store's CRC32C
    // check does not: unsigned by default there, as AWS's own SDKs do for streamed uploads. Over
    // plain http across a network the signature keeps covering the body unless asked otherwise.
    if (opts.unsignedPayload ?? (endpoint === undefined || endpoint.startsWith('https:') || isLoopbackUrl(endpoint))) {
      this.client.middlewareStack.add(
        (next, context) => async (args) => {
          const req = args.request as { headers?: Record<string, string> } | undefined;
          if (req?.headers && (context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand')) {
            req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          }
          return next(args);
        },
        { step: 'build', name: 'cairnUnsignedPayload' },
      );
    }
  }

  private key(name: string): string {
    assertSafeName(name);
    return this.prefix + name;
  }

  private where(op: string, key: string | undefined, signal: AbortSignal | undefined, file?: string) {
    return {
      op,
      bucket: this.bucket,
      ...(key === undefined ? {} : { key }),
      ...(file === undefined ? {} : { file }),
      ...(this.endpoint === undefined ? {} : { endpoint: this.endpoint }),
      ...(signal === undefined ? {} : { signal }),
    };
  }

  /** Runs one SDK call, converting whatever it throws. */
  private async call<T>(op: string, key: string | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>, file?: string): Promise<T> {
    throwIfAborted(signal);
    try {
      return await fn();
    } catch (e) {
      throw mapS3Error(e, this.where(op, key, signal, file));
    }
  }

  private sendOpts(signal: AbortSignal | undefined) {
    return signal === undefined ? {} : { abortSignal: signal };
  }

  private encryption() {
    return {
      ...(this.opts.storageClass === undefined ? {} : { StorageClass: this.opts.storageClass }),
      ...(this.opts.sse === undefined ? {} : { ServerSideEncryption: this.opts.sse }),
      ...(this.opts.kmsKeyId === undefined ? {} : { SSEKMSKeyId: this.opts.kmsKeyId }),
    };
  }

  /** A 404 on HEAD does not say whether the key or the bucket is missing: ask once. */
  private async checkBucket(signal: AbortSignal | undefined): Promise<void> {
    if (this.bucketKnownToExist) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), this.sendOpts(signal));
      this.bucketKnownToExist = true;
    } catch (e) {
      if (isStatus(e, 404) || isCode(e, 'NoSuchBucket', 'NotFound')) {
        throw new CairnError('NotFound', `bucket ${this.bucket} does not exist (${this.url})`, { cause: e });
      }
      // 403 and friends: HeadBucket needs s3:ListBucket, which object-level policies may lack. Unknown.
    }
  }

  private async head(key: string, signal: AbortSignal | undefined, op: string, file?: string): Promise<HeadObjectCommandOutput | undefined> {
    throwIfAborted(signal);
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: 'ENABLED' }), this.sendOpts(signal));
    } catch (e) {
      if (isNotFound(e)) {
        await this.checkBucket(signal);
        return undefined;
      }
      throw mapS3Error(e, this.where(op, key, signal, file));
    }
  }

  async *list(prefix: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<FileInfo> {
    const signal = opts.signal;
    if (prefix.includes('\0') || prefix.startsWith('/')) throw invalidArgument(`bad list prefix ${JSON.stringify(prefix)}`);
    const full = this.prefix + prefix;
    let token: string | undefined;
    for (;;) {
      const page = await this.call('ListObjectsV2', full, signal, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: full,
            ...(token === undefined ? {} : { ContinuationToken: token }),
            ...(this.listPageSize === undefined ? {} : { MaxKeys: this.listPageSize }),
          }),
          this.sendOpts(signal),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.prefix) || o.Key.endsWith('/')) continue; // skip "folder" markers
        yield { name: o.Key.slice(this.prefix.length), size: o.Size ?? 0 };
      }
      if (!page.IsTruncated) return;
      if (!page.NextContinuationToken || page.NextContinuationToken === token) {
        throw ioError(`ListObjectsV2 ${locationOf({ bucket: this.bucket, key: full })}: truncated page without a new continuation token`);
      }
      token = page.NextContinuationToken;
    }
  }

  async stat(name: string, opts: { signal?: AbortSignal } = {}): Promise<FileInfo | undefined> {
    const h = await this.head(this.key(name), opts.signal, 'HeadObject', name);
    return h === undefined ? undefined : { name, size: h.ContentLength ?? 0 };
  }

  async openRead(name: string, opts: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    // A read whose length the caller knows (restore and verify know every file's size) and that
    // spans several parts is fetched as parallel ranged GETs; anything else as one GET.
    const { offset = 0, length, signal } = opts;
    if (length !== undefined && length >= 2 * this.readPartSize && Number.isSafeInteger(offset) && offset >= 0) {
      const key = this.key(name);
      if ((await this.head(key, signal, 'HeadObject', name)) === undefined) throw notFound(`${locationOf({ bucket: this.bucket, key })} does not exist`, { file: name });
      return orderedRangedRead((o, l, sig) => this.getRange(name, { offset: o, length: l, signal: sig }), offset, offset + length, this.readPartSize, this.readConcurrency, signal);
    }
    return this.getRange(name, opts);
  }

  private async getRange(name: string, opts: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    const key = this.key(name);
    const { signal } = opts;
    const offset = opts.offset ?? 0;
    const length = opts.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
      throw invalidArgument(`invalid range offset=${opts.offset} length=${opts.length} for ${name}`);
    }
    const empty = async (): Promise<AsyncIterable<Uint8Array>> => {
      if ((await this.head(key, signal, 'HeadObject', name)) === undefined) throw notFound(`${locationOf({ bucket: this.bucket, key })} does not exist`, { file: name });
      return (async function* (): AsyncGenerator<Uint8Array> {})();
    };
    if (length === 0) return await empty();
    const range = offset > 0 || length !== undefined ? `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` : undefined;
    let body: Readable;
    try {
      throwIfAborted(signal);
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range === undefined ? {} : { Range: range }) }),
        this.sendOpts(signal),
      );
      body = res.Body as Readable;
    } catch (e) {
      // 416: offset at or past the end; a local file reads as empty there.
      if (isStatus(e, 416) || isCode(e, 'InvalidRange')) return await empty();
      throw mapS3Error(e, this.where('GetObject', key, signal, name));
    }
    const where = this.where('GetObject', key, signal, name);
    // Errors while streaming the body (connection lost, abort) become CairnErrors too. Leaving the
    // loop early (break, throw) destroys the body and frees the connection.
    async function* guarded(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of body) yield chunk as Buffer;
      } catch (e) {
        const m = mapS3Error(e, where);
        throw m.code !== 'IOError' ? m : ioError(`reading ${locationOf(where)} failed: ${(e as Error).message}`, { cause: e, file: name });
      } finally {
        body.destroy();
      }
    }
    return guarded();
  }

  /** Part size for a file of `size` bytes (unknown: the configured one). */
  partSizeFor(size: number | undefined): number {
    let p = this.partSize;
    if (size !== undefined && Math.ceil(size / p) > MAX_PARTS) p = Math.ceil(size / MAX_PARTS / MiB) * MiB;
    return p;
  }

  async write(name: string, source: WriteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const key = this.key(name);
    const { signal, size: declared, expectedCrc32c, createOnly } = opts;
    throwIfAborted(signal);
    if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) throw invalidArgument(`invalid size ${declared} for ${name}`);
    const partSize = this.partSizeFor(declared);
    const loc = locationOf({ bucket: this.bucket, key });
    const pool = this.partPool.size === partSize ? this.partPool : new BufferPool(partSize, 0);
    const parts = splitParts(source, partSize, pool);
    this.activeWrites++;
    let crc = 0;
    let total = 0;
    const next = async (): Promise<Part | undefined> => {
      let r: IteratorResult<Part>;
      try {
        r = await parts.next();
      } catch (e) {
        if (e instanceof CairnError) throw e;
        if (signal?.aborted) throw new CairnError('Aborted', `write ${loc}: aborted`, { cause: e, file: name });
        throw ioError(`reading the data for ${loc} failed: ${(e as Error)?.message ?? e}`, { cause: e, file: name });
      }
      if (r.done) return undefined;
      crc = crc32cUpdate(crc, r.value.data);
      total += r.value.data.length;
      if (declared !== undefined && total > declared) throw corruption(`${name}: the source delivered more than the declared ${declared} bytes; nothing was written`, { file: name });
      return r.value;
    };
    const checkEnd = () => {
      if (declared !== undefined && total !== declared) {
        throw corruption(`${name}: the source delivered ${total} bytes, ${declared} were declared; nothing was written`, { file: name });
      }
      if (expectedCrc32c !== undefined && expectedCrc32c >>> 0 !== crc) {
        throw corruption(`${name}: the data has crc32c ${crc} but ${expectedCrc32c >>> 0} was expected; nothing was written to ${loc}`, { file: name });
      }
    };
    try {
      const first = (await next())!;
      if (first.last) {
        checkEnd();
        await this.putSingle(name, key, first.data, crc, opts);
        if (first.pooled) pool.give(first.pooled);
      } else {
        await this.putMultipart(name, key, first, next, () => ({ crc, size: total }), checkEnd, opts, pool);
      }
    } finally {
      await parts.return(undefined).catch(() => {});
      // Idle: the pool keeps no memory between backups.
      if (--this.activeWrites === 0) this.partPool.clear();
    }
    // Not abortable: the object is published at this point, an abort could only hide the result.
    await this.verifyStored(name, key, total, crc, undefined);
    return { size: total, crc32c: crc };
  }

  private async putSingle(name: string, key: string, data: Buffer, crc: number, opts: WriteOptions): Promise<void> {
    const { signal, createOnly } = opts;
    throwIfAborted(signal);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: data,
          ContentLength: data.length,
          ContentType: 'application/octet-stream',
          // With the value precomputed, the SDK computes nothing; the algorithm header
          // (x-amz-sdk-checksum-algorithm) tells servers such as moto which checksum to keep.
          ChecksumAlgorithm: 'CRC32C',
          ChecksumCRC32C: crc32cToBase64(crc),
          ...(createOnly ? { IfNoneMatch: '*' } : {}),
          ...this.encryption(),
        }),
        this.sendOpts(signal),
      );
    } catch (e) {
      if (createOnly && isPreconditionFailed(e)) {
        // A retried PUT whose first attempt did land finds "its own" object: not a conflict.
        if (s3ErrorInfo(e).attempts > 1 && (await this.isSame(key, data.length, crc, signal))) return;
        throw this.alreadyExists(name, key, e);
      }
      throw mapS3Error(e, this.where('PutObject', key, signal, name));
    }
  }

  private alreadyExists(name: string, key: string, cause: unknown): CairnError {
    return new CairnError('AlreadyExists', `${locationOf({ bucket: this.bucket, key })} already exists (createOnly)`, { ...(cause === undefined ? {} : { cause }), file: name });
  }

  private async isSame(key: string, size: number, crc: number, signal: AbortSignal | undefined): Promise<boolean> {
    const h = await this.head(key, signal, 'HeadObject');
    return h !== undefined && h.ContentLength === size && h.ChecksumCRC32C !== undefined && crc32cFromBase64(h.ChecksumCRC32C) === crc;
  }

  // Multipart upload, driven by hand rather than with @aws-sdk/lib-storage's Upload: Upload spreads
  // the same parameters into every request, so it cannot send the whole-file CRC32C on
  // CompleteMultipartUpload only (a whole-file ChecksumCRC32C would go out with every part and be
  // rejected, SDK issue 6742). Without that value on Complete the store cannot refuse a file whose
  // parts are each intact but wrong as a whole (e.g. a part uploaded twice, a buffer reused).
  // Driving the calls also lets an AbortSignal cancel the part requests in flight.
  private async putMultipart(
    name: string,
    key: string,
    first: Part,
    next: () => Promise<Part | undefined>,
    sent: () => { crc: number; size: number },
    checkEnd: () => void,
    opts: WriteOptions,
    pool: BufferPool,
  ): Promise<void> {
    const { signal, createOnly } = opts;
    // Cheap early refusal before uploading every part; IfNoneMatch on Complete stays the real guard.
    if (createOnly && (await this.head(key, signal, 'HeadObject', name)) !== undefined) throw this.alreadyExists(name, key, undefined);
    const created = await this.call(
      'CreateMultipartUpload',
      key,
      signal,
      () =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            ContentType: 'application/octet-stream',
            ChecksumAlgorithm: 'CRC32C',
            ChecksumType: 'FULL_OBJECT',
            ...this.encryption(),
          }),
          this.sendOpts(signal),
        ),
      name,
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw ioError(`CreateMultipartUpload ${locationOf({ bucket: this.bucket, key })}: no UploadId in the answer`, { file: name });

    // One failed part cancels the others.
    const stopParts = new AbortController();
    const partSignal = signal === undefined ? stopParts.signal : AbortSignal.any([signal, stopParts.signal]);
    const completed: CompletedPart[] = [];
    const inflight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let partNumber = 0;
    try {
      let part: Part | undefined = first;
      while (part !== undefined) {
        partNumber++;
        if (partNumber > MAX_PARTS) {
          throw invalidArgument(`${name} needs more than ${MAX_PARTS} parts of ${part.data.length} bytes: pass its size (or a larger partSize)`, { file: name });
        }
        const pn = partNumber;
        const data = part.data;
        const pooled = part.pooled;
        const partCrc = crc32cToBase64(crc32cUpdate(0, data));
        const task: Promise<void> = this.client
          .send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: pn,
              Body: data,
              ContentLength: data.length,
              ChecksumAlgorithm: 'CRC32C',
              ChecksumCRC32C: partCrc,
            }),
            { abortSignal: partSignal },
          )
          .then((res) => {
            if (!res.ETag) throw ioError(`UploadPart ${pn} of ${locationOf({ bucket: this.bucket, key })}: no ETag in the answer`, { file: name });
            completed[pn - 1] = { PartNumber: pn, ETag: res.ETag, ChecksumCRC32C: partCrc };
            // Sent and answered: its buffer is free. (A failed or aborted part's buffer is
            // dropped, not reused: its request may still be reading it.)
            if (pooled) pool.give(pooled);
          })
          .catch((e: unknown) => {
            if (failure === undefined) failure = { error: mapS3Error(e, this.where(`UploadPart ${pn}`, key, signal, name)) };
            stopParts.abort();
          })
          .finally(() => inflight.delete(task));
        inflight.add(task);
        if (part.last) break;
        // Bounded memory: read the next part only when fewer than `concurrency` are in flight.
        while (inflight.size >= this.concurrency && failure === undefined) await Promise.race(inflight);
        if (failure !== undefined) break;
        throwIfAborted(signal);
        part = await next();
      }
      await Promise.all(inflight);
      if (failure !== undefined) throw failure.error;
      throwIfAborted(signal);
      checkEnd();

      try {
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: completed },
            ChecksumType: 'FULL_OBJECT',
            ChecksumCRC32C: crc32cToBase64(sent().crc),
            ...(createOnly ? { IfNoneMatch: '*' } : {}),
          }),
          this.sendOpts(signal),
        );
      } catch (e) {
        const attempts = s3ErrorInfo(e).attempts;
        // A Complete retried after a lost answer may find its upload already completed.
        if (attempts > 1 && (isCode(e, 'NoSuchUpload') || (createOnly && isPreconditionFailed(e)))) {
          if (await this.isSame(key, sent().size, sent().crc, undefined)) return;
        }
        if (createOnly && isPreconditionFailed(e)) throw this.alreadyExists(name, key, e);
        throw mapS3Error(e, this.where('CompleteMultipartUpload', key, signal, name));
      }
    } catch (e) {
      stopParts.abort();
      await Promise.allSettled([...inflight]);
      await this.abortUpload(key, uploadId);
      if (e instanceof CairnError) throw e;
      throw mapS3Error(e, this.where('multipart upload', key, signal, name));
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    // Not with the caller's signal: it may be the reason we are here.
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch (e) {
      // Best effort: cleanupIncomplete() removes what is left (it retries this one first, which
      // matters on servers such as MinIO that cannot list uploads by prefix).
      if (!isCode(e, 'NoSuchUpload')) this.unaborted.set(uploadId, key);
    }
  }

  /** After a write: the store must hold our CRC32C as the object's full-object checksum. */
  private async verifyStored(name: string, key: string, size: number, crc: number, signal: AbortSignal | undefined): Promise<void> {
    const loc = locationOf({ bucket: this.bucket, key });
    const h = await this.head(key, signal, 'HeadObject', name);
    if (h === undefined) throw ioError(`${loc} is missing right after it was written (deleted concurrently?)`, { file: name });
    const stored = h.ChecksumCRC32C;
    if (stored === undefined) {
      throw new CairnError(
        'NotSupported',
        `the S3 server at ${this.endpoint ?? 'AWS'} returned no CRC32C for ${loc} after the write (HeadObject with ChecksumMode ENABLED): cairn needs a store that keeps x-amz-checksum-crc32c. The object was published.`,
        { file: name },
      );
    }
    if (h.ChecksumType === 'COMPOSITE' || stored.includes('-')) {
      throw new CairnError(
        'NotSupported',
        `the S3 server at ${this.endpoint ?? 'AWS'} stored a composite checksum (${stored}) for ${loc}: it does not support FULL_OBJECT multipart checksums. The object was published.`,
        { file: name },
      );
    }
    const got = crc32cFromBase64(stored);
    if (got !== crc || (h.ContentLength !== undefined && h.ContentLength !== size)) {
      throw corruption(
        `${loc} was published but the store reports crc32c ${got} and ${h.ContentLength} bytes, while cairn sent crc32c ${crc} and ${size} bytes: do not trust this object`,
        { file: name },
      );
    }
  }

  async delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = opts;
    const keys = [...new Set(names.map((n) => this.key(n)))];
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      if (batch.length === 1 || this.batchDeleteUnsupported) {
        await this.deleteOneByOne(batch, signal);
        continue;
      }
      let res;
      try {
        throwIfAborted(signal);
        res = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          this.sendOpts(signal),
        );
      } catch (e) {
        // Servers without multi-object delete (or that insist on Content-MD5) → one by one.
        if (isStatus(e, 501, 405) || isCode(e, 'NotImplemented', 'MethodNotAllowed', 'MissingContentMD5')) {
          this.batchDeleteUnsupported = true;
          await this.deleteOneByOne(batch, signal);
          continue;
        }
        throw mapS3Error(e, this.where('DeleteObjects', `${this.prefix}…`, signal));
      }
      const errors = (res.Errors ?? []).filter((er) => er.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const list = errors.slice(0, 5).map((er) => `${er.Key}: ${er.Code} ${er.Message ?? ''}`.trim()).join('; ');
        const denied = errors.every((er) => er.Code === 'AccessDenied');
        throw new CairnError(denied ? 'PermissionDenied' : 'IOError', `DeleteObjects in s3://${this.bucket}: ${errors.length} of ${batch.length} keys not deleted (${list}${errors.length > 5 ? '; …' : ''})`, {
          file: errors[0]!.Key?.slice(this.prefix.length) ?? '',
        });
      }
    }
  }

  private async deleteOneByOne(keys: string[], signal: AbortSignal | undefined): Promise<void> {
    let i = 0;
    const worker = async () => {
      while (i < keys.length) {
        const key = keys[i++]!;
        await this.call('DeleteObject', key, signal, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), this.sendOpts(signal)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, keys.length) }, worker));
  }

  async copy(from: string, to: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = opts;
    const src = this.key(from);
    const dst = this.key(to);
    const h = await this.head(src, signal, 'HeadObject', from);
    if (h === undefined) throw notFound(`copy source ${locationOf({ bucket: this.bucket, key: src })} does not exist`, { file: from });
    const size = h.ContentLength ?? 0;
    const copySource = `${this.bucket}/${encodeKey(src)}`;
    if (size <= this.copyThreshold) {
      await this.call(
        'CopyObject',
        dst,
        signal,
        () =>
          this.client.send(
            new CopyObjectCommand({
              Bucket: this.bucket,
              Key: dst,
              CopySource: copySource,
              ...(h.ETag ? { CopySourceIfMatch: h.ETag } : {}),
              // Have the store (re)compute a full-object CRC32C for the copy.
              ChecksumAlgorithm: 'CRC32C',
              ...this.encryption(),
            }),
            this.sendOpts(signal),
          ),
        to,
      );
      return;
    }
    await this.multipartCopy(from, to, dst, copySource, size, h, signal);
  }

  private async multipartCopy(from: string, to: string, dst: string, copySource: string, size: number, h: HeadObjectCommandOutput, signal: AbortSignal | undefined): Promise<void> {
    const partSize = Math.max(this.copyPartSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(size / partSize);
    const srcCrc = h.ChecksumCRC32C !== undefined && h.ChecksumType !== 'COMPOSITE' && !h.ChecksumCRC32C.includes('-') ? h.ChecksumCRC32C : undefined;
    const created = await this.call(
      'CreateMultipartUpload',
      dst,
      signal,
      () =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: dst,
            ContentType: h.ContentType ?? 'application/octet-stream',
            ChecksumAlgorithm: 'CRC32C',
            ChecksumType: 'FULL_OBJECT',
            ...this.encryption(),
          }),
          this.sendOpts(signal),
        ),
      to,
    );
    const uploadId = created.UploadId!;
    const parts: CompletedPart[] = [];
    const stop = new AbortController();
    const partSignal = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
    let nextPart = 0;
    let firstError: { error: unknown } | undefined;
    try {
      const worker = async () => {
        while (nextPart < count) {
          const i = nextPart++;
          const start = i * partSize;
          const end = Math.min(size, start + partSize) - 1;
          const res = await this.call(
            `UploadPartCopy ${i + 1}`,
            dst,
            signal,
            () =>
              this.client.send(
                new UploadPartCopyCommand({
                  Bucket: this.bucket,
                  Key: dst,
                  UploadId: uploadId,
                  PartNumber: i + 1,
                  CopySource: copySource,
                  CopySourceRange: `bytes=${start}-${end}`,
                  ...(h.ETag ? { CopySourceIfMatch: h.ETag } : {}),
                }),
                { abortSignal: partSignal },
              ),
            to,
          ).catch((e: unknown) => {
            firstError ??= { error: e };
            stop.abort();
            throw e;
          });
          const r = res.CopyPartResult;
          if (!r?.ETag) throw ioError(`UploadPartCopy ${i + 1} of ${locationOf({ bucket: this.bucket, key: dst })}: no ETag in the answer`, { file: to });
          parts[i] = { PartNumber: i + 1, ETag: r.ETag, ...(r.ChecksumCRC32C ? { ChecksumCRC32C: r.ChecksumCRC32C } : {}) };
        }
      };
      const results = await Promise.allSettled(Array.from({ length: Math.min(this.concurrency, count) }, worker));
      if (firstError !== undefined) throw firstError.error;
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      await this.call(
        'CompleteMultipartUpload',
        dst,
        signal,
        () =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: dst,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
              ChecksumType: 'FULL_OBJECT',
              ...(srcCrc === undefined ? {} : { ChecksumCRC32C: srcCrc }),
            }),
            this.sendOpts(signal),
          ),
        to,
      );
    } catch (e) {
      stop.abort();
      await this.abortUpload(dst, uploadId);
      // MinIO refuses UploadPartCopy into an upload that declared CRC32C ("checksum missing"): it
      // does not compute part checksums for copies. Copy through this process instead, checked
      // against the source's CRC32C.
      const cause = e instanceof CairnError ? e.cause : e;
      if (!signal?.aborted && isStatus(cause, 400, 501) && !isCode(cause, 'NoSuchKey', 'NoSuchBucket', 'NoSuchUpload')) {
        await this.streamCopy(from, to, size, srcCrc, signal);
        return;
      }
      throw mapS3Error(e, this.where('multipart copy', dst, signal, to));
    }
  }

  private async streamCopy(from: string, to: string, size: number, srcCrc: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const expected = srcCrc === undefined ? undefined : crc32cFromBase64(srcCrc);
    const body = await this.openRead(from, signal === undefined ? {} : { signal });
    await this.write(to, body, { size, ...(expected === undefined ? {} : { expectedCrc32c: expected }), ...(signal === undefined ? {} : { signal }) });
  }

  async rename(from: string, to: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.key(from) === this.key(to)) return;
    await this.copy(from, to, opts);
    await this.delete([from], opts);
  }

  async serverChecksum(name: string, opts: { signal?: AbortSignal } = {}): Promise<StoredChecksum> {
    const key = this.key(name);
    const h = await this.head(key, opts.signal, 'HeadObject', name);
    if (h === undefined) throw notFound(`${locationOf({ bucket: this.bucket, key })} does not exist`, { file: name });
    const v = h.ChecksumCRC32C;
    // A composite (per-part) checksum is not the file's CRC32C: nothing to compare.
    const full = v !== undefined && h.ChecksumType !== 'COMPOSITE' && !v.includes('-');
    return { size: h.ContentLength ?? 0, crc32c: full ? crc32cFromBase64(v) : undefined };
  }

  async cleanupIncomplete(opts: { signal?: AbortSignal } = {}): Promise<number> {
    const { signal } = opts;
    let removed = 0;
    for (const [uploadId, key] of [...this.unaborted]) {
      try {
        throwIfAborted(signal);
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), this.sendOpts(signal));
        removed++;
      } catch (e) {
        if (!(isCode(e, 'NoSuchUpload') || isStatus(e, 404))) throw mapS3Error(e, this.where('AbortMultipartUpload', key, signal));
      }
      this.unaborted.delete(uploadId);
    }
    // Note: MinIO answers ListMultipartUploads only for an exact key, so this finds nothing there
    // (MinIO expires stale uploads itself, after 24 h by default: api stale_uploads_expiry).
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call('ListMultipartUploads', this.prefix, signal, () =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            ...(this.prefix === '' ? {} : { Prefix: this.prefix }),
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
          this.sendOpts(signal),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(this.prefix)) continue;
        try {
          throwIfAborted(signal);
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }), this.sendOpts(signal));
          removed++;
        } catch (e) {
          if (isCode(e, 'NoSuchUpload') || isStatus(e, 404)) continue; // finished or aborted meanwhile
          throw mapS3Error(e, this.where('AbortMultipartUpload', u.Key, signal));
        }
      }
      if (!page.IsTruncated) return removed;
      if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
        throw ioError(`ListMultipartUploads s3://${this.bucket}/${this.prefix}: truncated page without new markers`);
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
