// Typed errors: every failure a caller may want to react to carries a code and,
// where one is involved, the file or backup it concerns.

export type ErrorCode =
  | 'NotFound'
  | 'Corruption'
  | 'InvalidArgument'
  | 'Incomplete'
  | 'IOError'
  | 'Aborted'
  | 'PermissionDenied'
  | 'AlreadyExists'
  | 'NotSupported'
  /** Another writer holds the backup directory's lock (or took this writer's for stale). */
  | 'Locked'
  /** The store keeps the files under retention (S3 Object Lock): they cannot be deleted yet. */
  | 'Retained';

export interface ErrorContext {
  file?: string;
  backupId?: number;
  cause?: unknown;
}

export class CairnError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly backupId?: number;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = `CairnError(${code})`;
    this.code = code;
    if (ctx.file !== undefined) this.file = ctx.file;
    if (ctx.backupId !== undefined) this.backupId = ctx.backupId;
  }
}

export const notFound = (msg: string, ctx?: ErrorContext) => new CairnError('NotFound', msg, ctx);
export const corruption = (msg: string, ctx?: ErrorContext) => new CairnError('Corruption', msg, ctx);
export const invalidArgument = (msg: string, ctx?: ErrorContext) => new CairnError('InvalidArgument', msg, ctx);
export const ioError = (msg: string, ctx?: ErrorContext) => new CairnError('IOError', msg, ctx);
export const incomplete = (msg: string, ctx?: ErrorContext) => new CairnError('Incomplete', msg, ctx);

export function isCairnError(e: unknown, code?: ErrorCode): e is CairnError {
  return e instanceof CairnError && (code === undefined || e.code === code);
}

/** Throws an Aborted error if the signal fired; call between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CairnError('Aborted', 'operation aborted', { cause: signal.reason });
}

/**
 * The failure that caused a batch of parallel tasks to fail: when one task fails the others are
 * aborted, so their Aborted errors are consequences, not the cause.
 */
export function firstFailure(results: PromiseSettledResult<unknown>[]): PromiseRejectedResult | undefined {
  const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return rejected.find((r) => !isAbortConsequence(r.reason)) ?? rejected[0];
}

/** An error that only says the work was stopped (by the caller, or because another task failed). */
export function isAbortConsequence(e: unknown): boolean {
  return isCairnError(e, 'Aborted') || (e as Error | undefined)?.name === 'AbortError';
}
