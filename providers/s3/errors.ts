// Maps what @aws-sdk/client-s3 throws (service exceptions, network errors, aborts, credential
// provider failures) to cairn's typed errors, with messages that name the bucket and key.
import { CairnError } from '../../src/errors.ts';
import { abortedError, errorFor } from '../object-store/errors.ts';

export interface S3ErrorInfo {
  /** The S3 error code (`<Code>` of the XML body, or the SDK's name for a body-less HEAD answer). */
  code: string;
  /** HTTP status, when a response was received. */
  status: number | undefined;
  /** How many attempts the SDK made (1 = no retry). */
  attempts: number;
  message: string;
}

export function s3ErrorInfo(e: unknown): S3ErrorInfo {
  const err = (e ?? {}) as {
    name?: unknown;
    Code?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: number; attempts?: number };
    $response?: { statusCode?: number };
  };
  const code =
    typeof err.Code === 'string' ? err.Code : typeof err.name === 'string' && err.name !== 'Error' ? err.name : typeof err.code === 'string' ? err.code : 'Unknown';
  return {
    code,
    status: err.$metadata?.httpStatusCode ?? err.$response?.statusCode,
    attempts: err.$metadata?.attempts ?? 1,
    message: typeof err.message === 'string' ? err.message : String(e),
  };
}

export const isStatus = (e: unknown, ...statuses: number[]) => {
  const s = s3ErrorInfo(e).status;
  return s !== undefined && statuses.includes(s);
};
export const isCode = (e: unknown, ...codes: string[]) => codes.includes(s3ErrorInfo(e).code);

/** 404 for an object (HEAD answers have no body, so the code is the SDK's `NotFound`). */
export const isNotFound = (e: unknown) => isCode(e, 'NoSuchKey', 'NotFound') || (isStatus(e, 404) && !isCode(e, 'NoSuchBucket', 'NoSuchUpload'));
export const isPreconditionFailed = (e: unknown) => isStatus(e, 412) || isCode(e, 'PreconditionFailed');

const CREDENTIALS_REJECTED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired', 'InvalidSecurity']);
const ACCESS_DENIED = new Set(['AccessDenied', 'Forbidden', 'AllAccessDisabled', 'AccountProblem', 'InvalidPayer', 'NotSignedUp']);
// BadDigest: S3/LocalStack (x-amz-checksum-* or Content-MD5 mismatch). MinIO answers a checksum
// mismatch with XAmzContentChecksumMismatch and a signed-payload mismatch with
// XAmzContentSHA256Mismatch; both mean the bytes received are not the bytes sent.
const CORRUPTION = new Set(['BadDigest', 'XAmzContentChecksumMismatch', 'XAmzContentSHA256Mismatch', 'InvalidDigest', 'IncompleteBody']);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

export interface ErrorWhere {
  /** The S3 operation or cairn verb, e.g. "PutObject". */
  op: string;
  bucket: string;
  key?: string;
  /** The cairn name (relative to the backup root) the error concerns. */
  file?: string;
  /** Endpoint used, for messages about unreachable servers. */
  endpoint?: string;
  signal?: AbortSignal;
}

export function locationOf(where: { bucket: string; key?: string }): string {
  return where.key === undefined ? `s3://${where.bucket}` : `s3://${where.bucket}/${where.key}`;
}

/** Converts anything thrown while talking to S3 into a CairnError. CairnErrors pass unchanged. */
export function mapS3Error(e: unknown, where: ErrorWhere): CairnError {
  if (e instanceof CairnError) return e;
  const loc = locationOf(where);
  const req = { op: where.op, where: loc, ...(where.file === undefined ? {} : { file: where.file }), ...(where.signal === undefined ? {} : { signal: where.signal }) };
  const aborted = abortedError(req, e);
  if (aborted) return aborted;
  const mk = errorFor(req, e);

  const info = s3ErrorInfo(e);
  const detail = `${info.code}${info.status === undefined ? '' : ` (HTTP ${info.status})`}: ${info.message}`;
  const errno = (e as { code?: unknown } | null)?.code;

  if (info.code === 'CredentialsProviderError' || /could not load credentials/i.test(info.message)) {
    return mk('PermissionDenied', `no usable AWS credentials for ${loc}: ${info.message}`);
  }
  if (/region is missing/i.test(info.message)) {
    return mk('InvalidArgument', `no AWS region configured for ${loc}: set AWS_REGION or pass region`);
  }
  if (info.code === 'NoSuchBucket') return mk('NotFound', `bucket ${where.bucket} does not exist (${where.op} ${loc})`);
  if (CREDENTIALS_REJECTED.has(info.code)) {
    return mk('PermissionDenied', `credentials rejected by the S3 server for ${loc} (${where.op}): ${detail}`);
  }
  if (info.code === 'InvalidObjectState') {
    // 403 too, but not a matter of permissions: the object is archived (a lifecycle rule moved
    // it to GLACIER or DEEP_ARCHIVE) and S3 serves it only after a restore request.
    return mk(
      'NotSupported',
      `${loc} is archived (GLACIER or DEEP_ARCHIVE storage class) and cannot be read until it is restored (aws s3api restore-object); cairn does not request that: ${detail}`,
    );
  }
  if (ACCESS_DENIED.has(info.code) || info.status === 403) {
    return mk('PermissionDenied', `access denied to ${loc} (${where.op}): ${detail}`);
  }
  if (info.code === 'NoSuchKey' || (info.code === 'NotFound' && info.status === 404)) return mk('NotFound', `${loc} does not exist (${where.op})`);
  if (CORRUPTION.has(info.code)) {
    return mk('Corruption', `the S3 server rejected the data sent to ${loc} (${where.op}) as corrupt, nothing was written by this request: ${detail}`);
  }
  if (info.code === 'NotImplemented' || info.status === 501) return mk('NotSupported', `the S3 server does not support ${where.op} (${loc}): ${detail}`);
  if (info.code === 'EntityTooLarge' || info.code === 'EntityTooSmall' || info.code === 'KeyTooLongError' || info.code === 'InvalidBucketName') {
    return mk('InvalidArgument', `${where.op} ${loc}: ${detail}`);
  }
  if (info.status === undefined && ((typeof errno === 'string' && NETWORK_CODES.has(errno)) || info.code === 'TimeoutError')) {
    return mk('IOError', `cannot talk to the S3 server${where.endpoint ? ` at ${where.endpoint}` : ''} (${where.op} ${loc}): ${typeof errno === 'string' ? errno : info.code}: ${info.message}`);
  }
  const tries = info.attempts > 1 ? ` after ${info.attempts} attempts` : '';
  return mk('IOError', `${where.op} ${loc} failed${tries}: ${detail}`);
}
