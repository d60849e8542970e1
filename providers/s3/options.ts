// S3 options: what a caller may pass, what a command-line user sets through CAIRN_S3_* variables,
// and the client settings both resolve to (with the AWS_* variables the SDK's users expect).
import type { S3ClientConfig, StorageClass } from '@aws-sdk/client-s3';
import { invalidArgument } from '../../src/errors.ts';
import { DEFAULT_MEMORY_BUDGET } from '../../src/io/memory-budget.ts';
import { DEFAULT_READ_PART_SIZE } from '../../src/io/parallel-ranges.ts';
import { envValue } from '../../src/env-var.ts';
import { parseObjectLockMode, type ObjectLockMode } from './object-lock.ts';
import { envBool, envByteSize, envFirst, envPositiveInt, envStorageClass, envString, isLoopbackUrl, optionsFromEnv, type Env, type EnvReader } from '../object-store/env-options.ts';

import { parseChecksumMode, type ChecksumMode } from './write-strategy.ts';

export { parseByteSize } from '../object-store/env-options.ts';

const KiB = 1024;
export const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** S3 limits: parts 5 MiB..5 GiB (the last may be smaller), at most 10,000 parts. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * GiB;
export const MAX_PARTS = 10_000;
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
  /** Ranged GETs in flight per large read (default 2: files are restored in parallel too) and their size (default 32 MiB). */
  readConcurrency?: number;
  readPartSize?: number;
  /** Parts in flight per file at most (default 4), within memoryBudget. */
  concurrency?: number;
  /**
   * Bytes of part buffers all writes in flight share (default 32 MiB: 4 parts of 8 MiB); a write
   * that needs a part while it is spent waits for one. Less than a part still writes, one part at
   * a time.
   */
  memoryBudget?: number;
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
  /**
   * Object Lock mode of writes with retainUntil (backup --retain): GOVERNANCE (default: a caller
   * allowed s3:BypassGovernanceRetention can still remove a backup kept by mistake) or COMPLIANCE
   * (nobody can, not even the root account, until the date).
   */
  objectLockMode?: ObjectLockMode;
  /**
   * How writes are checked (write-strategy.ts): 'auto' (default) asks the store what it supports
   * before the first write (probe.ts) and uses full-object CRC32Cs where it keeps them, else the
   * compatible path; 'crc32c' skips the probe; 'md5' forces Content-MD5 on every request.
   */
  checksum?: ChecksumMode;
  /**
   * Send HEADs (stat, verify --server-checksum, the checks after a write) as cairn's own SigV4
   * requests once the SDK has sent one to copy (direct-head.ts; default true). False: every HEAD
   * through the SDK.
   */
  directHead?: boolean;
  /**
   * Request ListObjectsV2 pages as cairn's own SigV4 requests, read without the SDK, once the SDK
   * has sent one to copy (direct-list.ts; default true). False: every page through the SDK.
   */
  directList?: boolean;
  /**
   * Object bodies read for restore and verify --checksum as cairn's own SigV4 GETs, read into
   * reused buffers, once the SDK has sent one to copy (direct-get.ts; default true). False:
   * every GET through the SDK.
   */
  directGet?: boolean;
}

export const S3_ENV_VARS = {
  storageClass: 'CAIRN_S3_STORAGE_CLASS',
  sse: 'CAIRN_S3_SSE',
  kmsKeyId: 'CAIRN_S3_SSE_KMS_KEY_ID',
  partSize: 'CAIRN_S3_PART_SIZE',
  concurrency: 'CAIRN_S3_CONCURRENCY',
  forcePathStyle: 'CAIRN_S3_FORCE_PATH_STYLE',
  objectLockMode: 'CAIRN_S3_OBJECT_LOCK_MODE',
  checksum: 'CAIRN_S3_CHECKSUM',
  directHead: 'CAIRN_S3_DIRECT_HEAD',
  directList: 'CAIRN_S3_DIRECT_LIST',
  directGet: 'CAIRN_S3_DIRECT_GET',
} as const;

const lockMode: EnvReader<ObjectLockMode> = (env, name) => {
  const v = envValue(env, name);
  if (v === undefined) return undefined;
  try {
    return parseObjectLockMode(v);
  } catch {
    throw invalidArgument(`${name}=${JSON.stringify(v)}: expected GOVERNANCE or COMPLIANCE`);
  }
};

const checksumMode: EnvReader<ChecksumMode> = (env, name) => {
  const v = envValue(env, name);
  return v === undefined ? undefined : parseChecksumMode(v.toLowerCase(), name);
};

// Classes whose objects cannot be read back without a restore request: cairn reads what it writes
// (after every write, and on restore), so they would make every backup unusable.
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

const s3StorageClass: EnvReader<StorageClass> = (env, name) => {
  const sc = envStorageClass(env, name, 'STANDARD_IA');
  if (sc !== undefined && ARCHIVE_CLASSES.has(sc)) throw invalidArgument(`${name}=${sc}: archived objects cannot be read back without a restore request; use STANDARD_IA, GLACIER_IR or a lifecycle rule`);
  return sc as StorageClass | undefined;
};

const sseKind: EnvReader<'AES256' | 'aws:kms'> = (env, name) => {
  const sse = envValue(env, name);
  if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms') throw invalidArgument(`${name}=${JSON.stringify(sse)}: expected AES256 or aws:kms`);
  return sse;
};

/** The write options a command-line user sets through CAIRN_S3_* variables. */
export function s3OptionsFromEnv(env: Env = process.env): S3EnvOptions {
  return optionsFromEnv<S3EnvOptions>(env, {
    storageClass: [S3_ENV_VARS.storageClass, s3StorageClass],
    sse: [S3_ENV_VARS.sse, sseKind],
    kmsKeyId: [S3_ENV_VARS.kmsKeyId, envString],
    partSize: [S3_ENV_VARS.partSize, envByteSize],
    concurrency: [S3_ENV_VARS.concurrency, envPositiveInt],
    objectLockMode: [S3_ENV_VARS.objectLockMode, lockMode],
    checksum: [S3_ENV_VARS.checksum, checksumMode],
    directHead: [S3_ENV_VARS.directHead, envBool],
    directList: [S3_ENV_VARS.directList, envBool],
    directGet: [S3_ENV_VARS.directGet, envBool],
  });
}

/** Options checked and completed with their defaults and the AWS_* variables. */
export interface S3Settings {
  region: string | undefined;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  credentials: S3ClientConfig['credentials'] | undefined;
  maxAttempts: number | undefined;
  unsignedPayload: boolean;
  partSize: number;
  concurrency: number;
  memoryBudget: number;
  readPartSize: number;
  readConcurrency: number;
  listPageSize: number | undefined;
  storageClass: StorageClass | undefined;
  sse: 'AES256' | 'aws:kms' | undefined;
  kmsKeyId: string | undefined;
  objectLockMode: ObjectLockMode;
  checksum: ChecksumMode;
  directHead: boolean;
  directList: boolean;
  directGet: boolean;
}

export function resolveS3Settings(opts: S3EnvOptions, env: Env = process.env): S3Settings {
  const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
    throw invalidArgument(`partSize must be an integer between 5 MiB and 5 GiB, not ${opts.partSize}`);
  }
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw invalidArgument(`concurrency must be a positive integer, not ${opts.concurrency}`);
  const memoryBudget = opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  if (!Number.isSafeInteger(memoryBudget) || memoryBudget < 1) throw invalidArgument(`memoryBudget must be a positive number of bytes, not ${opts.memoryBudget}`);
  if (opts.listPageSize !== undefined && !(Number.isSafeInteger(opts.listPageSize) && opts.listPageSize >= 1 && opts.listPageSize <= 1000)) {
    throw invalidArgument(`listPageSize must be 1..1000, not ${opts.listPageSize}`);
  }
  if (opts.sse !== 'aws:kms' && opts.kmsKeyId !== undefined) throw invalidArgument(`kmsKeyId needs sse: 'aws:kms'`);
  const endpoint = opts.endpoint ?? envFirst(env, 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL');
  const maxAttempts = opts.maxAttempts ?? (envValue(env, 'AWS_MAX_ATTEMPTS') !== undefined ? undefined : DEFAULT_MAX_ATTEMPTS);
  if (maxAttempts !== undefined && !(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1)) throw invalidArgument(`maxAttempts must be ≥ 1, not ${maxAttempts}`);
  return {
    region: opts.region ?? envFirst(env, 'AWS_REGION', 'AWS_DEFAULT_REGION') ?? (endpoint !== undefined ? 'us-east-1' : undefined),
    endpoint,
    forcePathStyle: opts.forcePathStyle ?? envBool(env, S3_ENV_VARS.forcePathStyle) ?? endpoint !== undefined,
    credentials: opts.credentials,
    maxAttempts,
    // Over TLS, or to a server on this machine, the body cannot be altered on the way, so hashing
    // every byte for the signature buys nothing the store's CRC32C check does not: unsigned by
    // default there, as AWS's own SDKs do for streamed uploads. Over plain http across a network
    // the signature keeps covering the body unless asked otherwise.
    unsignedPayload: opts.unsignedPayload ?? (endpoint === undefined || endpoint.startsWith('https:') || isLoopbackUrl(endpoint)),
    partSize,
    concurrency,
    memoryBudget,
    readPartSize: Math.max(MiB, opts.readPartSize ?? DEFAULT_READ_PART_SIZE),
    readConcurrency: Math.max(1, opts.readConcurrency ?? 2),
    listPageSize: opts.listPageSize,
    storageClass: opts.storageClass,
    sse: opts.sse,
    kmsKeyId: opts.kmsKeyId,
    objectLockMode: opts.objectLockMode === undefined ? 'GOVERNANCE' : parseObjectLockMode(opts.objectLockMode),
    checksum: opts.checksum === undefined ? 'auto' : parseChecksumMode(opts.checksum, 'checksum'),
    directHead: opts.directHead ?? true,
    directList: opts.directList ?? true,
    directGet: opts.directGet ?? true,
  };
}
