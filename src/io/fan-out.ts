// The one policy for running a batch of tasks in parallel: at most `concurrency` at a time; the
// first failure aborts the signal every other task was given, waits until every started task has
// settled (nothing keeps downloading after the caller has its answer), and is the error thrown.
// Errors that are consequences of that abort (Aborted, AbortError) never hide the cause.
import { CairnError, isAbortConsequence, throwIfAborted } from '../errors.ts';

export interface FanOutOptions {
  /** Tasks running at once (at least 1). */
  concurrency: number;
  /** Stops the batch: no new task starts, running ones see their signal abort. */
  signal?: AbortSignal;
}

export type FanOutTask<T, R> = (item: T, index: number, signal: AbortSignal) => Promise<R>;

/**
 * Calls `task` for every item (an array, an iterable, or an async iterable read lazily, so a
 * stream of millions of items is never held at once), `concurrency` at a time, and resolves when
 * all are done. Results are not kept: see fanOutMap for that.
 */
export async function fanOut<T>(items: Iterable<T> | AsyncIterable<T>, task: FanOutTask<T, unknown>, opts: FanOutOptions): Promise<void> {
  throwIfAborted(opts.signal);
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const it: Iterator<T> | AsyncIterator<T> =
    Symbol.asyncIterator in (items as object) ? (items as AsyncIterable<T>)[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]();
  let index = 0;
  let failure: { error: unknown } | undefined;
  const fail = (e: unknown) => {
    // The first real failure wins over aborts it caused (or an earlier abort by the caller).
    if (!failure || (isAbortConsequence(failure.error) && !isAbortConsequence(e))) failure = { error: e };
    ac.abort(e);
  };
  // Workers share one iterator; pulling from it is serialised so an async source is never asked
  // for two items at once.
  let pulling: Promise<unknown> = Promise.resolve();
  const pull = (): Promise<IteratorResult<T>> => {
    const p = pulling.then(() => it.next());
    pulling = p.catch(() => {});
    return p;
  };
  const worker = async () => {
    while (!ac.signal.aborted) {
      const r = await pull();
      if (r.done) return;
      const i = index++;
      await task(r.value, i, ac.signal);
    }
  };
  try {
    const n = Math.max(1, Math.floor(opts.concurrency) || 1);
    await Promise.all(Array.from({ length: n }, () => worker().catch(fail)));
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (failure || opts.signal?.aborted) await (it as AsyncIterator<T>).return?.();
  }
  if (opts.signal?.aborted && (!failure || isAbortConsequence(failure.error))) {
    throw new CairnError('Aborted', 'operation aborted', { cause: opts.signal.reason });
  }
  if (failure) throw failure.error;
}

/** fanOut that keeps each task's result, in the order of `items`. */
export async function fanOutMap<T, R>(items: Iterable<T> | AsyncIterable<T>, task: FanOutTask<T, R>, opts: FanOutOptions): Promise<R[]> {
  const out: R[] = [];
  await fanOut(items, async (item, i, signal) => {
    out[i] = await task(item, i, signal);
  }, opts);
  return out;
}
