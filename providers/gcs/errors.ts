// Maps what @google-cloud/storage throws (API errors with an HTTP status, stream errors, aborts)
// to cairn's typed errors, with messages that name the bucket and object.
import { CairnError } from '../../src/errors.ts';
import { abortedError, codeOfStatus, errorFor, type FailedRequest } from '../object-store/errors.ts';

/** The HTTP status of a library error, when there is one. */
export function statusOf(e: unknown): number | undefined {
  const c = (e as { code?: unknown })?.code;
  if (typeof c === 'number') return c;
  if (typeof c === 'string' && /^\d{3}$/.test(c)) return Number(c);
  const s = (e as { response?: { status?: unknown } })?.response?.status;
  return typeof s === 'number' ? s : undefined;
}

export function detailOf(e: unknown): string {
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

/**
 * GCS says "The specified bucket does not exist." for a missing bucket, "No such object" for a
 * missing object (fake-gcs-server says "Not Found" for both).
 */
export function isMissingBucket(e: unknown): boolean {
  return statusOf(e) === 404 && /bucket does not exist/i.test(detailOf(e));
}

/** Converts anything thrown while talking to GCS into a CairnError. CairnErrors pass unchanged. */
export function mapGcsError(e: unknown, req: FailedRequest, bucket: string): CairnError {
  if (e instanceof CairnError) return e;
  const aborted = abortedError(req, e);
  if (aborted) return aborted;
  const { op, where } = req;
  const mk = errorFor(req, e);
  const status = statusOf(e);
  const detail = detailOf(e);
  const code = (e as { code?: unknown })?.code;
  if (code === 'FILE_NO_UPLOAD' || code === 'CONTENT_DOWNLOAD_MISMATCH') return mk('Corruption', `${op} ${where}: checksum mismatch (${detail})`);
  switch (codeOfStatus(status)) {
    case 'NotFound':
      if (/bucket/i.test(detail) && !/object/i.test(detail)) return mk('NotFound', `${op} ${where}: bucket ${bucket} does not exist`);
      return mk('NotFound', `${op} ${where}: object does not exist`);
    case 'PermissionDenied':
      return mk('PermissionDenied', `${op} ${where}: permission denied (HTTP ${status}): ${detail}`);
    case 'AlreadyExists':
      return mk('AlreadyExists', `${op} ${where}: precondition failed, the object exists or was changed concurrently`);
  }
  if (status === 400) {
    if (/crc32c|md5|checksum|hash/i.test(detail)) return mk('Corruption', `${op} ${where}: the store rejected the data, checksum mismatch: ${detail}`);
    return mk('IOError', `${op} ${where}: bad request: ${detail}`);
  }
  return mk('IOError', `${op} ${where}: ${status !== undefined ? `HTTP ${status}: ` : ''}${detail}`);
}
