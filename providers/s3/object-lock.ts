// S3 Object Lock primitives for immutable backups (backup --retain; S3Env uses them through
// retention.ts): check that a bucket has Object Lock, write objects under retention, read and
// extend retention, and delete an object version only where the lock allows it.
//
// What this has to respect (docs/retention.md has what each emulator enforces):
//   - Object Lock buckets are versioned. A DeleteObject without VersionId does not delete: it adds
//     a delete marker that hides the object from ListObjectsV2 while the locked bytes stay (and
//     stay billed). Deleting means deleting each version by id, which the lock refuses (403).
//   - A PUT carrying x-amz-object-lock-* headers must carry Content-MD5 or x-amz-sdk-checksum-algorithm
//     (AWS's documented rule, which moto enforces literally): a precomputed x-amz-checksum-crc32c
//     alone is refused, so send ChecksumAlgorithm CRC32C with the value.
//   - Retention is per object version. GOVERNANCE may be shortened or removed by a caller allowed
//     s3:BypassGovernanceRetention; COMPLIANCE only lengthened, by anyone, ever. Lengthening
//     never needs a bypass: extendRetention never shortens, so it never asks for one.
//   - A bucket without Object Lock refuses lock headers (InvalidRequest) only once the upload is
//     sent, and LocalStack accepts them (HEAD then reports the retention);
//     requireObjectLock answers before anything is written, on every server.
//   - A refused version delete is 403 AccessDenied on AWS, LocalStack and moto, 400 InvalidRequest
//     ("Object is WORM protected") on MinIO; GetObjectRetention cannot be parsed from moto, while
//     HeadObject's x-amz-object-lock-* headers work everywhere: use HEAD to read a lock.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { CairnError, invalidArgument } from '../../src/errors.ts';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { shiftByDuration, type RetentionDuration } from '../../src/backup/retention.ts';
import { isCode, isStatus, mapS3Error, s3ErrorInfo } from './errors.ts';

export type ObjectLockMode = 'GOVERNANCE' | 'COMPLIANCE';

export interface ObjectRetention {
  mode: ObjectLockMode;
  retainUntil: Date;
}

export interface BucketObjectLock {
  enabled: boolean;
  /** The bucket's default retention, applied by S3 to every new object version without lock headers. */
  defaultRetention?: { mode: ObjectLockMode; days?: number; years?: number };
}

interface Signalled {
  signal?: AbortSignal;
}

/** `CAIRN_S3_OBJECT_LOCK_MODE` and similar: GOVERNANCE or COMPLIANCE, any case. */
export function parseObjectLockMode(text: string): ObjectLockMode {
  const mode = text.trim().toUpperCase();
  if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') throw invalidArgument(`object lock mode must be GOVERNANCE or COMPLIANCE, got ${JSON.stringify(text)}`);
  return mode;
}

/** The retain-until date of `--retain DURATION` taken at `now`, on the local calendar (as retention.ts counts). */
export function retainUntilFrom(now: Date, duration: RetentionDuration): Date {
  return new Date(shiftByDuration(now.getTime(), duration, 1));
}

/** Creates a bucket with Object Lock (and so versioning) enabled. */
export async function createObjectLockBucket(client: S3Client, bucket: string, opts: Signalled = {}): Promise<void> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }), { abortSignal: opts.signal });
  } catch (e) {
    throw mapS3Error(e, { op: 'CreateBucket', bucket, signal: opts.signal });
  }
}

export async function bucketObjectLock(client: S3Client, bucket: string, opts: Signalled = {}): Promise<BucketObjectLock> {
  try {
    const out = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }), { abortSignal: opts.signal });
    const cfg = out.ObjectLockConfiguration;
    const rule = cfg?.Rule?.DefaultRetention;
    const res: BucketObjectLock = { enabled: cfg?.ObjectLockEnabled === 'Enabled' };
    if (rule?.Mode) {
      res.defaultRetention = { mode: rule.Mode as ObjectLockMode };
      if (rule.Days !== undefined) res.defaultRetention.days = rule.Days;
      if (rule.Years !== undefined) res.defaultRetention.years = rule.Years;
    }
    return res;
  } catch (e) {
    if (isCode(e, 'ObjectLockConfigurationNotFoundError')) return { enabled: false };
    throw mapS3Error(e, { op: 'GetObjectLockConfiguration', bucket, signal: opts.signal });
  }
}

/** Throws NotSupported, naming the bucket, unless Object Lock is enabled on it: call before uploading. */
export async function requireObjectLock(client: S3Client, bucket: string, opts: Signalled = {}): Promise<void> {
  if ((await bucketObjectLock(client, bucket, opts)).enabled) return;
  throw new CairnError(
    'NotSupported',
    `s3://${bucket} has no Object Lock, so --retain cannot protect what cairn writes there; use a bucket created with Object Lock enabled ` +
      '(aws s3api create-bucket --object-lock-enabled-for-bucket), or enable it on this versioned bucket (put-object-lock-configuration)',
  );
}

/** Parameters to spread into PutObject, CreateMultipartUpload or CopyObject. */
export function objectLockParams(r: ObjectRetention): { ObjectLockMode: ObjectLockMode; ObjectLockRetainUntilDate: Date } {
  return { ObjectLockMode: r.mode, ObjectLockRetainUntilDate: r.retainUntil };
}

/** PutObject under retention, with the x-amz-checksum-crc32c the lock headers require. */
export async function putObjectWithRetention(
  client: S3Client,
  bucket: string,
  key: string,
  body: Uint8Array,
  retention: ObjectRetention,
  opts: Signalled = {},
): Promise<{ versionId?: string }> {
  try {
    const out = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ChecksumAlgorithm: 'CRC32C',
        ChecksumCRC32C: crc32cToBase64(crc32c(body)),
        ...objectLockParams(retention),
      }),
      { abortSignal: opts.signal },
    );
    return out.VersionId === undefined ? {} : { versionId: out.VersionId };
  } catch (e) {
    throw mapS3Error(e, { op: 'PutObject', bucket, key, signal: opts.signal });
  }
}

/** The retention of an object version (the current one without versionId); undefined if it has none. */
export async function getObjectRetention(client: S3Client, bucket: string, key: string, opts: Signalled & { versionId?: string } = {}): Promise<ObjectRetention | undefined> {
  try {
    const out = await client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: opts.versionId }), { abortSignal: opts.signal });
    const r = out.Retention;
    if (!r?.Mode || !r.RetainUntilDate) return undefined;
    return { mode: r.Mode as ObjectLockMode, retainUntil: new Date(r.RetainUntilDate) };
  } catch (e) {
    if (isCode(e, 'NoSuchObjectLockConfiguration')) return undefined;
    throw mapS3Error(e, { op: 'GetObjectRetention', bucket, key, signal: opts.signal });
  }
}

export interface ObjectLockState {
  retention?: ObjectRetention;
  legalHold: boolean;
}

/** The lock on an object version as HeadObject reports it (retention and legal hold). */
export async function headObjectLock(client: S3Client, bucket: string, key: string, opts: Signalled & { versionId?: string } = {}): Promise<ObjectLockState> {
  try {
    const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: opts.versionId }), { abortSignal: opts.signal });
    const state: ObjectLockState = { legalHold: out.ObjectLockLegalHoldStatus === 'ON' };
    if (out.ObjectLockMode && out.ObjectLockRetainUntilDate) state.retention = { mode: out.ObjectLockMode as ObjectLockMode, retainUntil: new Date(out.ObjectLockRetainUntilDate) };
    return state;
  } catch (e) {
    throw mapS3Error(e, { op: 'HeadObject', bucket, key, signal: opts.signal });
  }
}

/**
 * Makes the version retained at least until `wanted.retainUntil`, never shortening it: a shared
 * file keeps the latest date any backup using it asked for. A COMPLIANCE lock stays COMPLIANCE
 * (it cannot be weakened); GOVERNANCE becomes COMPLIANCE when asked, which S3 allows.
 * Returns the retention in force afterwards.
 */
export async function extendRetention(
  client: S3Client,
  bucket: string,
  key: string,
  wanted: ObjectRetention,
  opts: Signalled & { versionId?: string } = {},
): Promise<ObjectRetention> {
  const current = (await headObjectLock(client, bucket, key, opts)).retention;
  const mode: ObjectLockMode = current?.mode === 'COMPLIANCE' ? 'COMPLIANCE' : wanted.mode;
  const until = current && current.retainUntil > wanted.retainUntil ? current.retainUntil : wanted.retainUntil;
  if (current && current.mode === mode && current.retainUntil.getTime() === until.getTime()) return current;
  try {
    await client.send(
      new PutObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: opts.versionId, Retention: { Mode: mode, RetainUntilDate: until } }),
      { abortSignal: opts.signal },
    );
  } catch (e) {
    throw mapS3Error(e, { op: 'PutObjectRetention', bucket, key, signal: opts.signal });
  }
  return { mode, retainUntil: until };
}

export type DeleteVersionResult = { deleted: true } | { deleted: false; lock: ObjectLockState; reason: string };

/**
 * Deletes one object version unless Object Lock protects it: a refusal by the lock is an answer
 * (which retention, until when, or a legal hold), not an error, so purge can report it and keep
 * the backup. A refusal with no lock in force (missing permission) is an error.
 */
export async function deleteVersionUnlessLocked(
  client: S3Client,
  bucket: string,
  key: string,
  versionId: string,
  opts: Signalled & { now?: Date } = {},
): Promise<DeleteVersionResult> {
  try {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal: opts.signal });
    return { deleted: true };
  } catch (e) {
    const mapped = mapS3Error(e, { op: 'DeleteObject', bucket, key, signal: opts.signal });
    if (!isStatus(e, 403) && !isCode(e, 'InvalidRequest')) throw mapped;
    const lock = await headObjectLock(client, bucket, key, { versionId, signal: opts.signal });
    const now = opts.now ?? new Date();
    if (lock.legalHold || (lock.retention && lock.retention.retainUntil > now)) return { deleted: false, lock, reason: s3ErrorInfo(e).message };
    throw mapped;
  }
}
