// What both object-store providers need to turn an SDK's failure into a CairnError naming the
// object: whether it was an abort, and the error code an HTTP status stands for when the SDK
// gives nothing more precise.
import { CairnError, type ErrorCode } from '../../src/errors.ts';

/** An abort, whichever layer reported it (DOM AbortError, Node's ABORT_ERR, cairn's Aborted). */
export function isAbortError(e: unknown): boolean {
  const err = e as { name?: unknown; code?: unknown } | null;
  return err?.name === 'AbortError' || err?.code === 'ABORT_ERR' || (e instanceof CairnError && e.code === 'Aborted');
}

/** The cairn error code of an HTTP status that means the same on every object store. */
export function codeOfStatus(status: number | undefined): ErrorCode | undefined {
  switch (status) {
    case 401:
    case 403:
      return 'PermissionDenied';
    case 404:
      return 'NotFound';
    case 412:
      return 'AlreadyExists';
    case 501:
      return 'NotSupported';
    default:
      return undefined;
  }
}

/** Where a failed request went, for its error. */
export interface FailedRequest {
  /** The store's operation or cairn's verb, e.g. "PutObject", "write". */
  op: string;
  /** The object or bucket as a URL. */
  where: string;
  /** The backup name concerned. */
  file?: string;
  signal?: AbortSignal;
}

/** Builds CairnErrors for one failed request, keeping the cause and the file. */
export function errorFor(req: FailedRequest, cause: unknown): (code: ErrorCode, message: string) => CairnError {
  return (code, message) => new CairnError(code, message, { cause, ...(req.file === undefined ? {} : { file: req.file }) });
}

/** The Aborted error of a request stopped by its signal, or undefined if it was not. */
export function abortedError(req: FailedRequest, cause: unknown): CairnError | undefined {
  if (!req.signal?.aborted && !isAbortError(cause)) return undefined;
  return errorFor(req, cause)('Aborted', `${req.op} ${req.where}: aborted`);
}
