// The one retry policy of cairn's own loops (the cloud SDKs retry their requests themselves):
// exponential backoff with jitter, a sleep that ends at once when the signal aborts, and a
// predicate that says which errors are worth another try.
import { CairnError, throwIfAborted } from '../errors.ts';

export interface RetryOptions {
  /** Tries after the first one (default 3). */
  retries?: number;
  /** Delay before the first retry; doubled for each next one (default 100 ms). */
  baseDelayMs?: number;
  /** Upper bound of one delay (default 10 s). */
  maxDelayMs?: number;
  /** How much each delay grows over the previous one (default 2). */
  factor?: number;
  /** Whether `error` (thrown by try number `attempt`, 0-based) is worth another try. */
  retryable: (error: unknown, attempt: number) => boolean;
  signal?: AbortSignal;
}

/**
 * Waits `ms`; rejects with Aborted as soon as `signal` aborts (before or during the wait), so a
 * stopped command never sits out a backoff.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CairnError('Aborted', 'operation aborted', { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(t);
      reject(new CairnError('Aborted', 'operation aborted', { cause: signal?.reason }));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The delay before retry number `attempt` (0-based): base * factor^attempt, capped, with +-25% jitter. */
export function backoffDelay(attempt: number, baseDelayMs = 100, maxDelayMs = 10_000, factor = 2): number {
  const d = Math.min(maxDelayMs, baseDelayMs * factor ** attempt);
  return Math.round(d * (0.75 + Math.random() * 0.5));
}

/** Runs `fn` until it succeeds, throws an error `retryable` rejects, or the retries run out. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const retries = opts.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(opts.signal);
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= retries || opts.signal?.aborted || !opts.retryable(e, attempt)) throw e;
    }
    await abortableSleep(backoffDelay(attempt, opts.baseDelayMs, opts.maxDelayMs, opts.factor), opts.signal);
  }
}
