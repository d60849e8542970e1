// Google Cloud Storage BackupEnv, on @google-cloud/storage.
//
// gs://bucket/prefix: backup names map to objects `<prefix>/<name>` (or `<name>` without a prefix).
//
// Checksum protocol (see docs/gcs.md):
//  - cairn computes the CRC32C of every byte it sends, in the same pass that sends it.
//  - Small files (< resumableThreshold) are buffered, hashed, and sent in one multipart upload whose
//    metadata declares `crc32c`: GCS recomputes it and rejects a mismatch (400) before anything is
//    visible. A known `expectedCrc32c` that differs from the bytes is refused locally: nothing is sent.
//  - Large files go through a resumable upload, streamed (memory: one chunk). The library, as called
//    through File#createWriteStream, cannot declare a CRC32C computed during the upload (it sends no
//    X-Goog-Hash header on the last chunk on this path), so:
//      * when the caller gives `expectedCrc32c`, it is declared in the metadata of the session's
//        initiation request: GCS validates it when the upload is finalized, before the object is
//        visible;
//      * in all cases, when the source is exhausted cairn compares its own CRC32C (and size) with
//        what is expected *before* ending the stream: on a mismatch the stream is destroyed, the upload
//        is never completed (the last chunk is not sent), the session is cancelled, nothing is published;
//      * after the upload, the object's stored crc32c (returned in the final response) is compared
//        with cairn's: on a mismatch (bytes altered in flight with no expectedCrc32c declared) the
//        object is deleted - conditionally on its generation, so a later writer is never hit - and
//        the write fails with Corruption. This is validation after the fact: the bad object existed
//        for the time of one request.
//  - Every write is conditional (ifGenerationMatch: 0 for createOnly, the current generation - or
//    0 when absent - for a replace), which is what lets the library retry uploads
//    (IdempotencyStrategy.RetryConditional).
import { Readable, Transform, addAbortSignal, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage, IdempotencyStrategy, type File, type Bucket, type FileMetadata, type StorageOptions } from '@google-cloud/storage';
import PQueue from 'p-queue';
import type { BackupEnv, EnvCapabilities, FileInfo, ReadOptions, StoredChecksum, WriteOptions, WriteResult } from '../../src/env.ts';
import { CairnError, corruption, invalidArgument, ioError, notFound, throwIfAborted } from '../../src/errors.ts';
import { orderedRangedRead } from '../../src/io/ranged-read.ts';
import { assertSafeName } from '../../src/names.ts';
import { envValue } from '../../src/env-var.ts';
import { crc32c as crc32cOf, crc32cFromBase64, crc32cToBase64, crc32cUpdate } from '../../src/crc32c.ts';

const MiB = 1024 * 1024;

export interface GcsRetryOptions {
  /** Retries of a retryable failure (429, 5xx, connection reset). 0 disables retries. Default 3. */
  maxRetries?: number;
  /** Upper bound on one retry delay, seconds (at least 1). Default 32. */
  maxRetryDelay?: number;
  /** Exponential backoff factor. Default 2. */
  retryDelayMultiplier?: number;
  /** Give up retrying after this many seconds in all. Default 600. */
  totalTimeout?: number;
}

export interface GcsEnvOptions {
  /** Google Cloud project; optional for object operations (ADC supplies one). */
  projectId?: string;
  /**
   * Endpoint of an emulator or a private endpoint, e.g. http://127.0.0.1:4443. Default:
   * CAIRN_GCS_ENDPOINT, then STORAGE_EMULATOR_HOST, then the public GCS endpoint. With an explicit
   * endpoint no credentials are used (set useAuthWithCustomEndpoint for a private endpoint).
   */
  apiEndpoint?: string;
  useAuthWithCustomEndpoint?: boolean;
  /** Service-account key file; default: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server). */
  keyFilename?: string;
  /** Inline service-account credentials. */
  credentials?: StorageOptions['credentials'];
  /** Storage class of new objects (STANDARD, NEARLINE, ...); default: the bucket's. */
  storageClass?: string;
  /** Cloud KMS key for new objects; default: the bucket's default encryption. */
  kmsKeyName?: string;
  /** Bill requests to this project (requester-pays buckets). */
  userProject?: string;
  /** Files of at least this many bytes use a resumable upload; smaller ones a single request. Default 8 MiB. */
  resumableThreshold?: number;
  /**
   * Resumable uploads send chunks of this size (a multiple of 256 KiB), each kept in memory until
   * acknowledged so a failed chunk can be re-sent. 0: one streaming request (less memory, weaker
   * retries). Default 16 MiB.
   */
  chunkSize?: number;
  /** Parallel requests of delete(). Default 16. */
  deleteConcurrency?: number;
  /** Parallel ranged requests of one large openRead(). 1 disables. Default 4. */
  readConcurrency?: number;
  /** Range size of a parallel read; reads shorter than 2 ranges use one request. Default 16 MiB. */
  readPartSize?: number;
  /** Objects per list request (max 1000). Default 1000. */
  listPageSize?: number;
  retry?: GcsRetryOptions;
  /** Check at open time that the bucket exists (one list request). Default true. */
  verifyBucket?: boolean;
}

interface ParsedGsUrl {
  bucket: string;
  prefix: string;
}

export function parseGsUrl(url: URL | string): ParsedGsUrl {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'gs:') throw invalidArgument(`not a gs:// URL: ${u.href}`);
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) throw invalidArgument(`invalid GCS bucket name in ${u.href}`);
  if (u.search || u.hash) throw invalidArgument(`gs:// URL must not have a query or fragment: ${u.href}`);
  const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  if (prefix !== '') {
    try {
      assertSafeName(prefix);
    } catch {
      throw invalidArgument(`invalid prefix in ${u.href}`);
    }
  }
  return { bucket, prefix };
}

function normalizeEndpoint(ep: string): string {
  let e = ep.trim().replace(/\/+$/, '');
  if (!/^[a-z]+:\/\//i.test(e)) {
    const local = /^(localhost|127\.|\[::1\])/.test(e);
    e = `${local ? 'http' : 'https'}://${e}`;
  }
  return e;
}

/** The HTTP status of a library error, when there is one. */
function statusOf(e: unknown): number | undefined {
  const c = (e as { code?: unknown })?.code;
  if (typeof c === 'number') return c;
  if (typeof c === 'string' && /^\d{3}$/.test(c)) return Number(c);
  const s = (e as { response?: { status?: unknown } })?.response?.status;
  return typeof s === 'number' ? s : undefined;
}

function detailOf(e: unknown): string {
  const err = e as { message?: string; errors?: unknown };
  let s = err?.message ?? String(e);
  if (err?.errors !== undefined) {
    try {
      s += ' ' + JSON.stringify(err.errors);
    } catch {
      /* ignore */
    }
  }
  return s;
}

function isAbortError(e: unknown): boolean {
  const n = (e as { name?: string; code?: string })?.name;
  const c = (e as { code?: string })?.code;
  return n === 'AbortError' || c === 'ABORT_ERR';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A Readable that yields `first` and then the rest of `it`. */
function concatChunks(first: Uint8Array[], it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      for (const c of first) yield c;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    },
  };
}

export class GcsEnv implements BackupEnv {
  readonly url: string;
  readonly capabilities: EnvCapabilities;
  readonly bucketName: string;
  readonly prefix: string;
  readonly storage: Storage;
  private readonly bucket: Bucket;
  /** Same endpoint and credentials, IdempotencyStrategy.RetryAlways: used only for unconditional deletes (see delete()). */
  private readonly deleteBucket: Bucket;
  /**
   * Same endpoint and credentials, library retries off: used for downloads, which cairn retries
   * itself. (The library's own retry of a download that got a retryable status throws
   * ERR_STREAM_UNABLE_TO_PIPE from an event handler - an uncaught exception - in
   * @google-cloud/storage 8.4 / teeny-request 11.)
   */
  private readonly readBucket: Bucket;
  private readonly opts: GcsEnvOptions;
  private readonly resumableThreshold: number;
  private readonly chunkSize: number | undefined;
  private readonly retry: Required<GcsRetryOptions>;

  constructor(url: URL | string, opts: GcsEnvOptions = {}) {
    const { bucket, prefix } = parseGsUrl(url);
    this.bucketName = bucket;
    this.prefix = prefix;
    this.url = `gs://${bucket}${prefix ? '/' + prefix : ''}`;
    this.opts = opts;
    const readConcurrency = opts.readConcurrency ?? 4;
    this.capabilities = {
      serverChecksum: true,
      listsChecksums: true,
      atomicCreateOnly: true,
      ...(readConcurrency > 1 ? { parallelRanges: { partSize: opts.readPartSize ?? 8 * MiB, concurrency: readConcurrency } } : {}),
    };
    this.resumableThreshold = opts.resumableThreshold ?? 8 * MiB;
    const chunk = opts.chunkSize ?? 16 * MiB;
    if (chunk !== 0 && chunk % (256 * 1024) !== 0) throw invalidArgument(`GCS chunkSize must be a multiple of 256 KiB, got ${chunk}`);
    this.chunkSize = chunk === 0 ? undefined : chunk;
    this.retry = {
      maxRetries: opts.retry?.maxRetries ?? 3,
      // The library's retry helper needs at least its 1 s initial delay here.
      maxRetryDelay: Math.max(1, opts.retry?.maxRetryDelay ?? 32),
      retryDelayMultiplier: opts.retry?.retryDelayMultiplier ?? 2,
      totalTimeout: opts.retry?.totalTimeout ?? 600,
    };

    const envEndpoint = process.env.CAIRN_GCS_ENDPOINT || process.env.STORAGE_EMULATOR_HOST;
    const endpoint = opts.apiEndpoint ?? (envEndpoint ? envEndpoint : undefined);
    const base: StorageOptions = {
      projectId: opts.projectId,
      keyFilename: opts.keyFilename,
      credentials: opts.credentials,
      useAuthWithCustomEndpoint: opts.useAuthWithCustomEndpoint,
    };
    const apiEndpoint = endpoint ? normalizeEndpoint(endpoint) : undefined;
    if (apiEndpoint) base.apiEndpoint = apiEndpoint;
    const retryOptions = (strategy: IdempotencyStrategy) => ({
      // The library treats maxRetries 0 as "default": disabling goes through autoRetry.
      autoRetry: this.retry.maxRetries > 0,
      maxRetries: Math.max(1, this.retry.maxRetries),
      maxRetryDelay: this.retry.maxRetryDelay,
      retryDelayMultiplier: this.retry.retryDelayMultiplier,
      totalTimeout: this.retry.totalTimeout,
      idempotencyStrategy: strategy,
    });
    this.storage = new Storage({ ...base, retryOptions: retryOptions(IdempotencyStrategy.RetryConditional) });
    const deleteStorage = new Storage({
      ...base,
      authClient: this.storage.authClient,
      retryOptions: retryOptions(IdempotencyStrategy.RetryAlways),
    });
    const readStorage = new Storage({
      ...base,
      authClient: this.storage.authClient,
      retryOptions: { ...retryOptions(IdempotencyStrategy.RetryConditional), autoRetry: false },
    });
    if (apiEndpoint) {
      // With STORAGE_EMULATOR_HOST set, the library takes that variable verbatim as the JSON API
      // base URL (without /storage/v1) whatever apiEndpoint says; pin it to the endpoint in use.
      for (const st of [this.storage, deleteStorage, readStorage]) st.baseUrl = `${apiEndpoint}/storage/v1`;
    }
    const bucketOpts = opts.userProject ? { userProject: opts.userProject } : {};
    this.bucket = this.storage.bucket(bucket, bucketOpts);
    this.deleteBucket = deleteStorage.bucket(bucket, bucketOpts);
    this.readBucket = readStorage.bucket(bucket, bucketOpts);
  }

  // ---- names and errors ----

  private key(name: string): string {
    assertSafeName(name);
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  private where(key: string): string {
    return `gs://${this.bucketName}/${key}`;
  }

  private file(key: string, generation?: number, bucket: Bucket = this.bucket): File {
    const o: { kmsKeyName?: string; generation?: number; userProject?: string } = {};
    if (this.opts.kmsKeyName) o.kmsKeyName = this.opts.kmsKeyName;
    if (generation !== undefined) o.generation = generation;
    if (this.opts.userProject) o.userProject = this.opts.userProject;
    return bucket.file(key, o);
  }

  /** Maps a library / HTTP error to a CairnError naming the bucket and object. */
  private mapError(e: unknown, op: string, name: string | undefined, key?: string, signal?: AbortSignal): CairnError {
    if (e instanceof CairnError) return e;
    const where = key !== undefined ? this.where(key) : `gs://${this.bucketName}/${this.prefix}`;
    const ctx = { file: name, cause: e };
    if (signal?.aborted || isAbortError(e)) return new CairnError('Aborted', `${op} ${where}: aborted`, ctx);
    const status = statusOf(e);
    const detail = detailOf(e);
    if ((e as { code?: unknown })?.code === 'FILE_NO_UPLOAD' || (e as { code?: unknown })?.code === 'CONTENT_DOWNLOAD_MISMATCH') {
      return corruption(`${op} ${where}: checksum mismatch (${detail})`, ctx);
    }
    switch (status) {
      case 404:
        if (/bucket/i.test(detail) && !/object/i.test(detail)) {
          return notFound(`${op} ${where}: bucket ${this.bucketName} does not exist`, ctx);
        }
        return notFound(`${op} ${where}: object does not exist`, ctx);
      case 401:
      case 403:
        return new CairnError('PermissionDenied', `${op} ${where}: permission denied (HTTP ${status}): ${detail}`, ctx);
      case 412:
        return new CairnError('AlreadyExists', `${op} ${where}: precondition failed, the object exists or was changed concurrently`, ctx);
      case 400:
        if (/crc32c|md5|checksum|hash/i.test(detail)) return corruption(`${op} ${where}: the store rejected the data, checksum mismatch: ${detail}`, ctx);
        return ioError(`${op} ${where}: bad request: ${detail}`, ctx);
    }
    return ioError(`${op} ${where}: ${status !== undefined ? `HTTP ${status}: ` : ''}${detail}`, ctx);
  }

  /** Resolves when the bucket is listable; NotFound naming the bucket when it does not exist. */
  async verifyBucket(): Promise<void> {
    try {
      await this.bucket.getFiles({ prefix: this.prefix ? this.prefix + '/' : '', maxResults: 1, autoPaginate: false });
    } catch (e) {
      if (statusOf(e) === 404) throw notFound(`bucket ${this.bucketName} does not exist (${this.url})`, { cause: e });
      throw this.mapError(e, 'open', undefined);
    }
  }

  private async metadata(key: string, name: string, signal?: AbortSignal): Promise<FileMetadata | undefined> {
    throwIfAborted(signal);
    try {
      const [md] = await this.file(key).getMetadata();
      return md;
    } catch (e) {
      // GCS says "The specified bucket does not exist." for a missing bucket, "No such object" for a
      // missing object (fake-gcs-server says "Not Found" for both).
      if (statusOf(e) === 404 && /bucket does not exist/i.test(detailOf(e))) throw notFound(`stat ${this.where(key)}: bucket ${this.bucketName} does not exist`, { file: name, cause: e });
      if (statusOf(e) === 404) return undefined;
      throw this.mapError(e, 'stat', name, key, signal);
    }
  }

  // ---- BackupEnv ----

  async *list(prefix: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<FileInfo> {
    if (prefix.includes('\0') || prefix.startsWith('/')) throw invalidArgument(`bad list prefix ${JSON.stringify(prefix)}`);
    const root = this.prefix ? this.prefix + '/' : '';
    const full = root + prefix;
    let pageToken: string | undefined;
    do {
      throwIfAborted(opts.signal);
      // With `fields`, the library returns the raw items ({name, size, crc32c}) instead of File objects.
      let files: Array<{ name: string; size?: string | number; crc32c?: string; metadata?: { size?: string | number; crc32c?: string } }>;
      let next: { pageToken?: string } | undefined;
      try {
        const res = await this.bucket.getFiles({
          prefix: full,
          autoPaginate: false,
          maxResults: this.opts.listPageSize ?? 1000,
          pageToken,
          fields: 'items(name,size,crc32c),nextPageToken',
        });
        files = res[0] as unknown as typeof files;
        next = res[1] as { pageToken?: string } | undefined;
      } catch (e) {
        if (statusOf(e) === 404) throw notFound(`list gs://${this.bucketName}/${full}: bucket ${this.bucketName} does not exist`, { cause: e });
        throw this.mapError(e, 'list', prefix, full, opts.signal);
      }
      for (const f of files) {
        if (!f.name.startsWith(root)) continue;
        const name = f.name.slice(root.length);
        // Objects cairn could never have written (folder placeholders "x/", "a//b") are not files.
        if (name.endsWith('/') || name.split('/').some((s) => s === '' || s === '.' || s === '..')) continue;
        const crc = f.metadata?.crc32c ?? f.crc32c;
        yield { name, size: Number(f.metadata?.size ?? f.size ?? 0), ...(typeof crc === 'string' ? { crc32c: crc32cFromBase64(crc) } : {}) };
      }
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async stat(name: string, opts: { signal?: AbortSignal } = {}): Promise<FileInfo | undefined> {
    const key = this.key(name);
    const md = await this.metadata(key, name, opts.signal);
    return md ? { name, size: Number(md.size ?? 0) } : undefined;
  }

  async serverChecksum(name: string, opts: { signal?: AbortSignal } = {}): Promise<StoredChecksum> {
    const key = this.key(name);
    const md = await this.metadata(key, name, opts.signal);
    if (!md) throw notFound(`checksum ${this.where(key)}: object does not exist`, { file: name });
    return { size: Number(md.size ?? 0), crc32c: typeof md.crc32c === 'string' ? crc32cFromBase64(md.crc32c) : undefined };
  }

  async openRead(name: string, opts: ReadOptions = {}): Promise<Readable> {
    const key = this.key(name);
    const signal = opts.signal;
    throwIfAborted(signal);
    const offset = opts.offset ?? 0;
    if (offset < 0 || (opts.length !== undefined && opts.length < 0)) throw invalidArgument(`read ${this.where(key)}: negative offset or length`, { file: name });
    if (opts.length === 0) {
      if (!(await this.metadata(key, name, signal))) throw notFound(`read ${this.where(key)}: object does not exist`, { file: name });
      return Readable.from([]);
    }
    const conc = this.opts.readConcurrency ?? 4;
    const part = this.opts.readPartSize ?? 8 * MiB;
    if (conc > 1 && (opts.length === undefined || opts.length >= 2 * part)) {
      const md = await this.metadata(key, name, signal);
      if (!md) throw notFound(`read ${this.where(key)}: object does not exist`, { file: name });
      const size = Number(md.size ?? 0);
      const end = opts.length === undefined ? size : Math.min(size, offset + opts.length);
      if (end - offset >= 2 * part) return this.parallelRead(key, name, md, offset, end, part, conc, signal);
      // Small after all: one request pinned to the generation just seen.
      return this.singleRead(key, name, offset, opts.length, signal, Number(md.generation));
    }
    return this.singleRead(key, name, offset, opts.length, signal);
  }

  /**
   * One GET (ranged or not); resolves once the response headers arrived, so a missing object
   * rejects here. A retryable failure before the response (429, 5xx, connection reset) is retried;
   * a failure in the middle of the body reaches the reader as an error.
   */
  private async singleRead(key: string, name: string, offset: number, length: number | undefined, signal?: AbortSignal, generation?: number): Promise<Readable> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.singleReadOnce(key, name, offset, length, signal, generation);
      } catch (e) {
        const cause = e instanceof CairnError ? e.cause : e;
        if (e instanceof CairnError && e.code !== 'IOError') throw e;
        if (!this.isRetryable(cause) || attempt >= this.retry.maxRetries || Date.now() - started > this.retry.totalTimeout * 1000) throw e;
        await sleep(this.retryDelayMs(attempt));
        throwIfAborted(signal);
      }
    }
  }

  private isRetryable(e: unknown): boolean {
    return this.retry.maxRetries > 0 && this.storage.retryOptions.retryableErrorFn!(e as never);
  }

  private async singleReadOnce(key: string, name: string, offset: number, length: number | undefined, signal?: AbortSignal, generation?: number): Promise<Readable> {
    const whole = offset === 0 && length === undefined;
    const file = this.file(key, generation, this.readBucket);
    // Library validation is off: it only runs when the server sends x-goog-stored-content-encoding,
    // which emulators may omit. cairn checks whole-object reads itself below.
    const rs = file.createReadStream({
      validation: false,
      decompress: false,
      ...(whole ? {} : { start: offset, ...(length !== undefined ? { end: offset + length - 1 } : {}) }),
    });
    let headers: Record<string, string | string[] | undefined> = {};
    // The library pipes the response into `rs` when the response arrives, and that pipe throws
    // (uncaught, ERR_STREAM_UNABLE_TO_PIPE) if `rs` was destroyed before: so a stream aborted
    // while its request is in flight is destroyed only once the response has come.
    let responded = false;
    let abortedEarly = false;
    const destroyWhenSafe = () => {
      if (responded) rs.destroy();
      else abortedEarly = true;
    };
    rs.once('response', () => {
      responded = true;
      if (abortedEarly) setImmediate(() => rs.destroy());
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          destroyWhenSafe();
          reject(new CairnError('Aborted', `read ${this.where(key)}: aborted`, { file: name, cause: signal?.reason }));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        rs.once('response', (res: { statusCode?: number; status?: number; headers?: Record<string, string | string[] | undefined> }) => {
          const status = res.statusCode ?? res.status ?? 0;
          if (status >= 200 && status < 300) {
            headers = res.headers ?? {};
            signal?.removeEventListener('abort', onAbort);
            resolve();
          }
          // Otherwise the library reads the error body and emits 'error'.
        });
        rs.once('error', (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        });
        // The library sends the request on the first read.
        rs.read(0);
      });
    } catch (e) {
      destroyWhenSafe();
      if (statusOf(e) === 416) return Readable.from([]); // offset at or past the end
      throw this.mapError(e, 'read', name, key, signal);
    }
    let out: Readable = rs;
    if (whole) {
      const hashHeader = headers['x-goog-hash'];
      const m = /(?:^|,)\s*crc32c=([^,]+)/.exec(Array.isArray(hashHeader) ? hashHeader.join(',') : (hashHeader ?? ''));
      const expected = m ? crc32cFromBase64(m[1].trim()) : undefined;
      const encoding = headers['content-encoding'];
      if (expected !== undefined && (encoding === undefined || encoding === 'identity')) {
        out = this.verifying(rs, expected, key, name);
      }
    }
    out.on('error', () => rs.destroy());
    if (signal) addAbortSignal(signal, out);
    return out;
  }

  /** Passes bytes through and fails with Corruption at the end if their CRC32C is not `expected`. */
  private verifying(src: Readable, expected: number, key: string, name: string): Readable {
    let crc = 0;
    const where = this.where(key);
    const t = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        crc = crc32cUpdate(crc, chunk);
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        if (crc !== expected) cb(corruption(`read ${where}: received bytes have crc32c ${crc}, the object's is ${expected}`, { file: name }));
        else cb();
      },
    });
    src.on('error', (e) => t.destroy(e));
    src.pipe(t);
    return t;
  }

  /**
   * A large read as `conc` parallel ranged GETs of `part` bytes, pinned to one generation, yielded
   * in order (memory: conc × part). A whole-object read is checked against the object's crc32c.
   */
  private parallelRead(key: string, name: string, md: FileMetadata, start: number, end: number, part: number, conc: number, signal?: AbortSignal): Readable {
    const generation = Number(md.generation);
    const wholeCrc = start === 0 && end === Number(md.size) && typeof md.crc32c === 'string' ? crc32cFromBase64(md.crc32c) : undefined;
    const fetchRange = (offset: number, length: number, sig: AbortSignal) => this.singleRead(key, name, offset, length, sig, generation);
    const self = this;
    async function* gen(): AsyncGenerator<Uint8Array> {
      let crc = 0;
      try {
        for await (const buf of orderedRangedRead(fetchRange, start, end, part, conc, signal)) {
          if (wholeCrc !== undefined) crc = crc32cUpdate(crc, buf);
          yield buf;
        }
        if (wholeCrc !== undefined && crc !== wholeCrc) {
          throw corruption(`read ${self.where(key)}: received bytes have crc32c ${crc}, the object's is ${wholeCrc}`, { file: name });
        }
      } catch (e) {
        throw self.mapError(e, 'read', name, key, signal);
      }
    }
    const r = Readable.from(gen(), { objectMode: false });
    if (signal) addAbortSignal(signal, r);
    return r;
  }

  async write(name: string, source: AsyncIterable<Uint8Array>, opts: WriteOptions = {}): Promise<WriteResult> {
    const key = this.key(name);
    const signal = opts.signal;
    throwIfAborted(signal);
    // Like `for await`, accept a plain (sync) iterable too, such as [buffer].
    const anySource = source as AsyncIterable<Uint8Array> & Partial<Iterable<Uint8Array>>;
    const it: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
      typeof anySource[Symbol.asyncIterator] === 'function' ? anySource[Symbol.asyncIterator]() : anySource[Symbol.iterator]!();
    // Read up to the threshold: a source that ends before it is sent in one request.
    const head: Uint8Array[] = [];
    let headLen = 0;
    let ended = false;
    try {
      while (headLen < this.resumableThreshold) {
        const r = await it.next();
        throwIfAborted(signal);
        if (r.done) {
          ended = true;
          break;
        }
        head.push(r.value);
        headLen += r.value.length;
      }
    } catch (e) {
      try {
        await it.return?.();
      } catch {
        /* ignore */
      }
      throw this.mapError(e, 'write', name, key, signal);
    }
    if (ended) return this.simpleWrite(key, name, Buffer.concat(head.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)), headLen), opts);
    try {
      return await this.resumableWrite(key, name, concatChunks(head, it), opts);
    } catch (e) {
      // Release the source (close its file) when the upload failed before reading it all.
      try {
        await it.return?.();
      } catch {
        /* ignore */
      }
      throw e;
    }
  }

  private checkExpected(key: string, name: string, size: number, crc: number, opts: WriteOptions): void {
    if (opts.size !== undefined && size !== opts.size) {
      throw corruption(`write ${this.where(key)}: source delivered ${size} bytes, expected ${opts.size}`, { file: name });
    }
    if (opts.expectedCrc32c !== undefined && crc !== opts.expectedCrc32c >>> 0) {
      throw corruption(`write ${this.where(key)}: crc32c ${crc} of the data does not match the expected ${opts.expectedCrc32c >>> 0}; nothing written`, { file: name });
    }
  }

  private async generationFor(key: string, name: string, opts: WriteOptions): Promise<number> {
    if (opts.createOnly) return 0;
    const md = await this.metadata(key, name, opts.signal);
    return md ? Number(md.generation) : 0;
  }

  private baseMetadata(): FileMetadata {
    const md: FileMetadata = { contentType: 'application/octet-stream' };
    if (this.opts.storageClass) md.storageClass = this.opts.storageClass;
    return md;
  }

  /**
   * After an upload: the object GCS stored must have cairn's CRC32C and size. Otherwise it is
   * deleted (only that generation) and the write fails.
   */
  private async checkStored(key: string, name: string, md: FileMetadata | undefined, size: number, crc: number): Promise<void> {
    const stored = typeof md?.crc32c === 'string' ? crc32cFromBase64(md.crc32c) : undefined;
    const storedSize = md?.size !== undefined ? Number(md.size) : undefined;
    if (stored === crc && storedSize === size) return;
    const gen = md?.generation !== undefined ? Number(md.generation) : undefined;
    if (gen !== undefined) {
      await this.file(key)
        .delete({ ifGenerationMatch: gen })
        .catch(() => {});
    }
    throw corruption(
      `write ${this.where(key)}: the stored object has crc32c ${stored} and size ${storedSize}, cairn sent ${crc} and ${size} bytes; ` +
        (gen !== undefined ? `generation ${gen} deleted` : 'nothing published'),
      { file: name },
    );
  }

  private retryDelayMs(attempt: number): number {
    const d = Math.pow(this.retry.retryDelayMultiplier, attempt) * 1000 + Math.random() * 1000;
    return Math.min(d, this.retry.maxRetryDelay * 1000);
  }

  /** One multipart upload of a buffered file, with the CRC32C declared so GCS rejects a mismatch. */
  private async simpleWrite(key: string, name: string, data: Buffer, opts: WriteOptions): Promise<WriteResult> {
    const signal = opts.signal;
    const crc = crc32cOf(data);
    this.checkExpected(key, name, data.length, crc, opts);
    const crcB64 = crc32cToBase64(crc);
    let generation = await this.generationFor(key, name, opts);
    const started = Date.now();
    let raced = 0;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      const file = this.file(key);
      try {
        await new Promise<void>((resolve, reject) => {
          const ws = file.createWriteStream({
            resumable: false,
            validation: false,
            metadata: { ...this.baseMetadata(), crc32c: crcB64 },
            preconditionOpts: { ifGenerationMatch: generation },
          });
          ws.once('error', reject);
          ws.once('finish', () => resolve());
          ws.end(data);
        });
      } catch (e) {
        const status = statusOf(e);
        if (status === 412) {
          if (attempt > 0) {
            // Our own earlier attempt may have succeeded with its response lost: that is success.
            const md = await this.metadata(key, name, signal);
            if (md && md.crc32c === crcB64 && Number(md.size) === data.length) return { size: data.length, crc32c: crc };
          }
          if (!opts.createOnly && raced < 3) {
            // A concurrent writer replaced the object between our stat and our upload: last writer wins.
            raced++;
            generation = await this.generationFor(key, name, opts);
            continue;
          }
          if (opts.createOnly) throw new CairnError('AlreadyExists', `write ${this.where(key)}: already exists`, { file: name, cause: e });
        }
        if (status === 404) throw notFound(`write ${this.where(key)}: bucket ${this.bucketName} does not exist`, { file: name, cause: e });
        if (this.isRetryable(e) && attempt < this.retry.maxRetries && Date.now() - started < this.retry.totalTimeout * 1000) {
          await sleep(this.retryDelayMs(attempt));
          continue;
        }
        throw this.mapError(e, 'write', name, key, signal);
      }
      await this.checkStored(key, name, file.metadata, data.length, crc);
      return { size: data.length, crc32c: crc };
    }
  }

  /** A streamed resumable upload; see the protocol at the top of this file. */
  private async resumableWrite(key: string, name: string, source: AsyncIterable<Uint8Array>, opts: WriteOptions): Promise<WriteResult> {
    const signal = opts.signal;
    const generation = await this.generationFor(key, name, opts);
    const metadata: FileMetadata = this.baseMetadata();
    if (opts.expectedCrc32c !== undefined) metadata.crc32c = crc32cToBase64(opts.expectedCrc32c);
    const file = this.file(key);
    const ws = file.createWriteStream({
      resumable: true,
      validation: false,
      metadata,
      preconditionOpts: { ifGenerationMatch: generation },
      ...(this.chunkSize ? { chunkSize: this.chunkSize } : {}),
    });
    let sessionUri: string | undefined;
    ws.on('uri', (u: string) => (sessionUri = u));
    let crc = 0;
    let size = 0;
    const self = this;
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const c of source) {
        crc = crc32cUpdate(crc, c);
        size += c.length;
        yield Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      }
      // Before the stream ends, so that on a mismatch the last chunk is never sent.
      self.checkExpected(key, name, size, crc, opts);
    }
    try {
      await pipeline(Readable.from(hashed()), ws, signal ? { signal } : {});
    } catch (e) {
      if (sessionUri) void this.cancelSession(sessionUri);
      if (statusOf(e) === 412 && opts.createOnly) throw new CairnError('AlreadyExists', `write ${this.where(key)}: already exists`, { file: name, cause: e });
      if (statusOf(e) === 412) throw ioError(`write ${this.where(key)}: the object was replaced concurrently; not overwritten`, { file: name, cause: e });
      if (statusOf(e) === 404 && !sessionUri) throw notFound(`write ${this.where(key)}: bucket ${this.bucketName} does not exist`, { file: name, cause: e });
      throw this.mapError(e, 'write', name, key, signal);
    }
    await this.checkStored(key, name, file.metadata, size, crc);
    return { size, crc32c: crc };
  }

  /** Best effort: DELETE on a resumable session URI cancels it (the URI is its own credential). */
  private async cancelSession(uri: string): Promise<void> {
    try {
      await fetch(uri, { method: 'DELETE', signal: AbortSignal.timeout(10_000) });
    } catch {
      /* the session expires by itself within a week */
    }
  }

  async delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    const keys = names.map((n) => [n, this.key(n)] as const);
    const q = new PQueue({ concurrency: this.opts.deleteConcurrency ?? 16 });
    let failure: unknown;
    for (const [name, key] of keys) {
      void q.add(async () => {
        if (failure !== undefined || opts.signal?.aborted) return;
        try {
          // Unconditional deletes go through a client whose strategy is RetryAlways: with
          // RetryConditional the library would switch retries off client-wide for the duration of
          // each delete. Deleting twice is harmless here (404 is success).
          await this.deleteBucket.file(key).delete({ ignoreNotFound: true });
        } catch (e) {
          if (statusOf(e) !== 404) failure ??= this.mapError(e, 'delete', name, key, opts.signal);
        }
      });
    }
    await q.onIdle();
    throwIfAborted(opts.signal);
    if (failure !== undefined) throw failure;
  }

  /** Server-side copy (rewrite) of one generation, conditional on the destination's generation. */
  private async copyKeys(from: string, to: string, fromKey: string, toKey: string, signal?: AbortSignal): Promise<number> {
    const src = await this.metadata(fromKey, from, signal);
    if (!src) throw notFound(`copy ${this.where(fromKey)}: object does not exist`, { file: from });
    const srcGen = Number(src.generation);
    for (let raced = 0; ; raced++) {
      throwIfAborted(signal);
      const dst = await this.metadata(toKey, to, signal);
      const dstGen = dst ? Number(dst.generation) : 0;
      try {
        const [copied] = await this.file(fromKey, srcGen).copy(this.file(toKey), { preconditionOpts: { ifGenerationMatch: dstGen } });
        const md = copied.metadata;
        if (md?.crc32c !== undefined && src.crc32c !== undefined && md.crc32c !== src.crc32c) {
          throw corruption(`copy ${this.where(fromKey)} → ${this.where(toKey)}: copy has crc32c ${md.crc32c}, source ${src.crc32c}`, { file: to });
        }
        return srcGen;
      } catch (e) {
        if (statusOf(e) === 412 && raced < 3) continue;
        if (statusOf(e) === 404) throw notFound(`copy ${this.where(fromKey)}: source object does not exist (or bucket ${this.bucketName} is missing)`, { file: from, cause: e });
        throw this.mapError(e, 'copy', to, toKey, signal);
      }
    }
  }

  async copy(from: string, to: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.copyKeys(from, to, this.key(from), this.key(to), opts.signal);
  }

  async rename(from: string, to: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const fromKey = this.key(from);
    const gen = await this.copyKeys(from, to, fromKey, this.key(to), opts.signal);
    try {
      // Only the generation that was copied: a newer one written meanwhile stays.
      await this.file(fromKey).delete({ ifGenerationMatch: gen });
    } catch (e) {
      const s = statusOf(e);
      if (s !== 404 && s !== 412) throw this.mapError(e, 'rename', from, fromKey, opts.signal);
    }
  }

  /**
   * GCS resumable sessions of interrupted writes are invisible to listing, hold no object and
   * expire by themselves (one week); there is no API to enumerate them. cairn cancels the session
   * of a write that fails when it can, so there is nothing to do here.
   */
  async cleanupIncomplete(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}

/**
 * Options a command-line user sets through the environment (or .env): the --backup-dir URL names
 * a place, not how to write there. Options given in code win.
 */
export function gcsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): GcsEnvOptions {
  const get = (k: string) => envValue(env, k);
  const o: GcsEnvOptions = {};
  const sc = get('CAIRN_GCS_STORAGE_CLASS');
  if (sc !== undefined) {
    if (!/^[A-Z_]+$/.test(sc)) throw invalidArgument(`CAIRN_GCS_STORAGE_CLASS=${JSON.stringify(sc)}: expected a storage class such as NEARLINE`);
    o.storageClass = sc;
  }
  const kms = get('CAIRN_GCS_KMS_KEY_NAME');
  if (kms !== undefined) o.kmsKeyName = kms;
  const up = get('CAIRN_GCS_USER_PROJECT');
  if (up !== undefined) o.userProject = up;
  return o;
}

/** Opens `gs://bucket[/prefix]`: options given here win over CAIRN_GCS_* variables. */
export async function openGcsEnv(url: URL, opts: GcsEnvOptions = {}): Promise<BackupEnv> {
  const env = new GcsEnv(url, { ...gcsOptionsFromEnv(), ...opts });
  if (opts.verifyBucket ?? true) await env.verifyBucket();
  return env;
}
