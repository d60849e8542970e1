// The @google-cloud/storage clients of one env and the helpers every GCS module shares: object
// handles, metadata (stat), the retry policy of cairn's own loops, error mapping, and the
// counting of requests by verb.
import { Storage, IdempotencyStrategy, type Bucket, type File, type FileMetadata, type StorageOptions } from '@google-cloud/storage';
import { notFound, throwIfAborted } from '../../src/errors.ts';
import { withRetry } from '../../src/io/retry.ts';
import type { BucketLocation } from '../object-store/location.ts';
import { RequestCounter } from '../object-store/request-counts.ts';
import { RawHttpClient } from '../object-store/raw-http.ts';
import { isMissingBucket, mapGcsError, statusOf } from './errors.ts';
import type { GcsEnvOptions, GcsSettings } from './options.ts';

export type Signal = AbortSignal | undefined;

/** The verb of a JSON API request as the library's interceptors see it. */
function verbOf(req: { method?: string; uri?: string; qs?: Record<string, unknown> }): string {
  const method = (req.method ?? 'GET').toUpperCase();
  if (method !== 'GET') return method;
  if (/\/b\/[^/]+\/o\/?$/.test((req.uri ?? '').split('?')[0]!)) return 'LIST';
  // A metadata read is GCS's HEAD (it answers with the object's JSON instead of headers).
  return req.qs?.alt === 'media' ? 'GET' : 'HEAD';
}

export class GcsStore {
  readonly loc: BucketLocation;
  readonly settings: GcsSettings;
  private raw: RawHttpClient | null | undefined;
  readonly storage: Storage;
  /**
   * Requests by verb. JSON API calls (single-request uploads included) are counted by the
   * library's request interceptors, once per call: retries inside the library are not seen.
   * Requests cairn sends itself (http.ts: resumable sessions, downloads) are counted where sent,
   * retries included.
   */
  readonly requests = new RequestCounter();
  /** IdempotencyStrategy.RetryConditional: every write is conditional on a generation. */
  readonly bucket: Bucket;
  /** Same endpoint and credentials, IdempotencyStrategy.RetryAlways: used only for unconditional deletes (see GcsEnv.delete). */
  readonly deleteBucket: Bucket;
  private readonly fileOpts: { kmsKeyName?: string; userProject?: string };

  constructor(loc: BucketLocation, opts: GcsEnvOptions, settings: GcsSettings) {
    this.loc = loc;
    this.settings = settings;
    const { retry, apiEndpoint } = settings;
    const base: StorageOptions = {
      projectId: opts.projectId,
      keyFilename: opts.keyFilename,
      credentials: opts.credentials,
      useAuthWithCustomEndpoint: opts.useAuthWithCustomEndpoint,
      ...(apiEndpoint ? { apiEndpoint } : {}),
    };
    const retryOptions = (strategy: IdempotencyStrategy) => ({
      // The library treats maxRetries 0 as "default": disabling goes through autoRetry.
      autoRetry: retry.maxRetries > 0,
      maxRetries: Math.max(1, retry.maxRetries),
      maxRetryDelay: retry.maxRetryDelay,
      retryDelayMultiplier: retry.retryDelayMultiplier,
      totalTimeout: retry.totalTimeout,
      idempotencyStrategy: strategy,
    });
    this.storage = new Storage({ ...base, retryOptions: retryOptions(IdempotencyStrategy.RetryConditional) });
    const deleteStorage = new Storage({ ...base, authClient: this.storage.authClient, retryOptions: retryOptions(IdempotencyStrategy.RetryAlways) });
    for (const st of [this.storage, deleteStorage]) {
      // With STORAGE_EMULATOR_HOST set, the library takes that variable verbatim as the JSON API
      // base URL (without /storage/v1) whatever apiEndpoint says; pin it to the endpoint in use.
      if (apiEndpoint) st.baseUrl = `${apiEndpoint}/storage/v1`;
      const count = <T extends object>(req: T): T => {
        // The library also calls interceptors without a request, to collect headers for uploads.
        if ((req as { uri?: unknown }).uri !== undefined) this.requests.add(verbOf(req as Parameters<typeof verbOf>[0]));
        return req;
      };
      st.interceptors.push({ request: count as never });
    }
    const bucketOpts = opts.userProject ? { userProject: opts.userProject } : {};
    this.bucket = this.storage.bucket(loc.bucket, bucketOpts);
    this.deleteBucket = deleteStorage.bucket(loc.bucket, bucketOpts);
    this.fileOpts = { ...(opts.kmsKeyName ? { kmsKeyName: opts.kmsKeyName } : {}), ...(opts.userProject ? { userProject: opts.userProject } : {}) };
  }

  /**
   * The client of the downloads cairn reads into reused buffers (object-store/raw-http.ts):
   * none where a proxy variable is set (that client speaks to the origin only; node:http's agents
   * honour the variables) or once the store answered a download it does not frame.
   */
  rawClient(): RawHttpClient | undefined {
    if (this.raw === undefined) {
      const origin = new URL(this.storage.apiEndpoint);
      const proxied = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((v) => process.env[v]);
      this.raw = proxied ? null : new RawHttpClient({ protocol: origin.protocol, hostname: origin.hostname, port: origin.port === '' ? undefined : Number(origin.port) }, { idleMs: this.settings.socketTimeout });
    }
    return this.raw ?? undefined;
  }

  /** Downloads go through node:http from now on. */
  stopRaw(): void {
    this.raw?.close();
    this.raw = null;
  }

  close(): void {
    this.raw?.close();
  }

  file(key: string, generation?: number): File {
    return this.bucket.file(key, { ...this.fileOpts, ...(generation === undefined ? {} : { generation }) });
  }

  /** The JSON API URL of an object (with the billed project, when there is one). */
  objectUrl(key: string): URL {
    const url = new URL(`${this.storage.apiEndpoint}/storage/v1/b/${encodeURIComponent(this.loc.bucket)}/o/${encodeURIComponent(key)}`);
    if (this.fileOpts.userProject) url.searchParams.set('userProject', this.fileOpts.userProject);
    return url;
  }

  /** The query parameters every upload of this env carries (KMS key, billed project). */
  uploadParams(): Record<string, string> {
    return { ...this.fileOpts };
  }

  /** Headers that authenticate a request cairn sends itself (none to an emulator, as the library does). */
  async authHeaders(): Promise<Record<string, string>> {
    if (this.storage.customEndpoint && !this.storage.useAuthWithCustomEndpoint) return {};
    const h: unknown = await this.storage.authClient.getRequestHeaders();
    return h instanceof Headers ? Object.fromEntries(h.entries()) : { ...(h as Record<string, string>) };
  }

  mapError(e: unknown, op: string, name: string | undefined, key?: string, signal?: Signal) {
    const where = this.loc.where(key ?? this.loc.prefix);
    return mapGcsError(e, { op, where, ...(name === undefined ? {} : { file: name }), ...(signal === undefined ? {} : { signal }) }, this.loc.bucket);
  }

  missingBucket(op: string, key: string, name: string | undefined, cause: unknown) {
    return notFound(`${op} ${this.loc.where(key)}: bucket ${this.loc.bucket} does not exist`, { ...(name === undefined ? {} : { file: name }), cause });
  }

  /** The object's metadata, or undefined when it does not exist. */
  async metadata(key: string, name: string, signal?: Signal): Promise<FileMetadata | undefined> {
    throwIfAborted(signal);
    try {
      const [md] = await this.file(key).getMetadata();
      return md;
    } catch (e) {
      if (isMissingBucket(e)) throw this.missingBucket('stat', key, name, e);
      if (statusOf(e) === 404) return undefined;
      throw this.mapError(e, 'stat', name, key, signal);
    }
  }

  /** Whether the library counts `e` as transient (429, 5xx, connection reset), and retries are on. */
  isRetryable(e: unknown): boolean {
    return this.settings.retry.maxRetries > 0 && this.storage.retryOptions.retryableErrorFn!(e as never);
  }

  /**
   * cairn's own retry loops (downloads, single-request uploads) under the env's retry options:
   * backoff from 1 s by retryDelayMultiplier up to maxRetryDelay, within totalTimeout; the wait
   * ends at once when `signal` aborts.
   */
  retry<T>(fn: (attempt: number) => Promise<T>, retryable: (e: unknown) => boolean, signal: Signal): Promise<T> {
    const { maxRetries, maxRetryDelay, retryDelayMultiplier, totalTimeout } = this.settings.retry;
    const started = Date.now();
    return withRetry(fn, {
      retries: maxRetries,
      baseDelayMs: 1000,
      factor: retryDelayMultiplier,
      maxDelayMs: maxRetryDelay * 1000,
      retryable: (e) => Date.now() - started < totalTimeout * 1000 && retryable(e),
      ...(signal === undefined ? {} : { signal }),
    });
  }
}
