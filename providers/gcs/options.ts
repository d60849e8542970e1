// GCS options: what a caller may pass, what a command-line user sets through CAIRN_GCS_*
// variables, and the settings both resolve to (with the endpoint variables emulators use).
import type { StorageOptions } from '@google-cloud/storage';
import { invalidArgument } from '../../src/errors.ts';
import { DEFAULT_MEMORY_BUDGET } from '../../src/io/memory-budget.ts';
import { DEFAULT_READ_PART_SIZE } from '../../src/io/parallel-ranges.ts';
import { envFirst, envStorageClass, envString, optionsFromEnv, type Env, type EnvReader } from '../object-store/env-options.ts';

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
  /**
   * Object retention mode of writes with retainUntil (backup --retain): Unlocked (default) or
   * Locked. Default: CAIRN_GCS_RETENTION_MODE.
   */
  retentionMode?: 'Unlocked' | 'Locked';
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
  /**
   * Files of at least this many bytes, or larger than one chunk, use a resumable upload; smaller
   * ones a single request. Default 8 MiB.
   */
  resumableThreshold?: number;
  /**
   * Resumable uploads send chunks of this size (a multiple of 256 KiB), each held in one buffer of
   * the memory budget until GCS acknowledges it, so a failed chunk can be re-sent. Default 8 MiB:
   * four uploads at once within the default memory budget.
   */
  chunkSize?: number;
  /**
   * Bytes all uploads in flight may buffer together (default 32 MiB): a resumable upload holds one
   * chunk, a small file its size. An upload that does not fit waits for one to finish.
   */
  memoryBudget?: number;
  /** Parallel requests of delete(). Default 16. */
  deleteConcurrency?: number;
  /** Parallel ranged requests per large file read by restore and verify. 1 disables. Default 4. */
  readConcurrency?: number;
  /** Range size of those reads. Default 32 MiB. */
  readPartSize?: number;
  /** Objects per list request (max 1000). Default 1000. */
  listPageSize?: number;
  retry?: GcsRetryOptions;
  /**
   * Milliseconds a connection of an upload chunk or a download may stay silent before it is
   * dropped and the request retried (a download resumes from the bytes it has). Default 120000.
   */
  socketTimeout?: number;
  /** Check at open time that the bucket exists (one list request). Default true. */
  verifyBucket?: boolean;
}

export const GCS_ENV_VARS = {
  storageClass: 'CAIRN_GCS_STORAGE_CLASS',
  kmsKeyName: 'CAIRN_GCS_KMS_KEY_NAME',
  userProject: 'CAIRN_GCS_USER_PROJECT',
  endpoint: 'CAIRN_GCS_ENDPOINT',
  retentionMode: 'CAIRN_GCS_RETENTION_MODE',
} as const;

const retentionMode: EnvReader<'Unlocked' | 'Locked'> = (env, name) => {
  const v = envString(env, name);
  if (v === undefined) return undefined;
  if (/^unlocked$/i.test(v)) return 'Unlocked';
  if (/^locked$/i.test(v)) return 'Locked';
  throw invalidArgument(`${name}=${JSON.stringify(v)}: expected Unlocked or Locked`);
};

/** The write options a command-line user sets through CAIRN_GCS_* variables. */
export function gcsOptionsFromEnv(env: Env = process.env): GcsEnvOptions {
  return optionsFromEnv<GcsEnvOptions>(env, {
    storageClass: [GCS_ENV_VARS.storageClass, (e, name) => envStorageClass(e, name, 'NEARLINE')],
    kmsKeyName: [GCS_ENV_VARS.kmsKeyName, envString],
    userProject: [GCS_ENV_VARS.userProject, envString],
    retentionMode: [GCS_ENV_VARS.retentionMode, retentionMode],
  });
}

/** Options checked and completed with their defaults and the endpoint variables. */
export interface GcsSettings {
  /** The endpoint as a URL (scheme added), when not the public one. */
  apiEndpoint: string | undefined;
  resumableThreshold: number;
  chunkSize: number;
  memoryBudget: number;
  deleteConcurrency: number;
  readConcurrency: number;
  readPartSize: number;
  listPageSize: number;
  socketTimeout: number;
  retry: Required<GcsRetryOptions>;
}

function normalizeEndpoint(ep: string): string {
  let e = ep.trim().replace(/\/+$/, '');
  if (!/^[a-z]+:\/\//i.test(e)) {
    const local = /^(localhost|127\.|\[::1\])/.test(e);
    e = `${local ? 'http' : 'https'}://${e}`;
  }
  return e;
}

export function resolveGcsSettings(opts: GcsEnvOptions, env: Env = process.env): GcsSettings {
  const chunk = opts.chunkSize ?? 8 * MiB;
  // 0 once meant one streaming request per upload: it saved a chunk of memory when the library
  // kept chunks of its own, and no longer saves anything.
  if (!(Number.isSafeInteger(chunk) && chunk > 0 && chunk % (256 * 1024) === 0)) throw invalidArgument(`GCS chunkSize must be a positive multiple of 256 KiB, got ${chunk}`);
  const endpoint = opts.apiEndpoint ?? envFirst(env, GCS_ENV_VARS.endpoint, 'STORAGE_EMULATOR_HOST');
  const memoryBudget = opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  if (opts.socketTimeout !== undefined && !(Number.isSafeInteger(opts.socketTimeout) && opts.socketTimeout > 0)) throw invalidArgument(`GCS socketTimeout must be a positive number of milliseconds, not ${opts.socketTimeout}`);
  if (!Number.isSafeInteger(memoryBudget) || memoryBudget < 1) throw invalidArgument(`memoryBudget must be a positive number of bytes, not ${opts.memoryBudget}`);
  return {
    apiEndpoint: endpoint ? normalizeEndpoint(endpoint) : undefined,
    resumableThreshold: opts.resumableThreshold ?? 8 * MiB,
    chunkSize: chunk,
    memoryBudget,
    deleteConcurrency: opts.deleteConcurrency ?? 16,
    readConcurrency: opts.readConcurrency ?? 4,
    readPartSize: opts.readPartSize ?? DEFAULT_READ_PART_SIZE,
    listPageSize: opts.listPageSize ?? 1000,
    socketTimeout: opts.socketTimeout ?? 120_000,
    retry: {
      maxRetries: opts.retry?.maxRetries ?? 3,
      // The library's retry helper needs at least its 1 s initial delay here.
      maxRetryDelay: Math.max(1, opts.retry?.maxRetryDelay ?? 32),
      retryDelayMultiplier: opts.retry?.retryDelayMultiplier ?? 2,
      totalTimeout: opts.retry?.totalTimeout ?? 600,
    },
  };
}
