// A budget of bytes shared by everything a process has in flight (upload parts, buffered
// chunks), so that memory is one number whatever the thread count: a file that wants memory while
// the budget is spent waits, in turn, for some to come back. Every holder is sending or filling
// what it holds, so some always does.
import { CairnError } from '../errors.ts';

/** The default budget of a provider's upload buffers: with Node and an SDK, a backup within ~160 MiB. */
export const DEFAULT_MEMORY_BUDGET = 32 * 1024 * 1024;

interface Waiter {
  bytes: number;
  grant: () => void;
}

export class MemoryBudget {
  /** Bytes that may be held at once. */
  readonly limit: number;
  private used = 0;
  private readonly waiters: Waiter[] = [];

  constructor(limit: number) {
    if (!(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError(`a memory budget must be a positive number of bytes, not ${limit}`);
    this.limit = limit;
  }

  /** Bytes acquired and not released yet. */
  get inUse(): number {
    return this.used;
  }

  /**
   * Resolves once `bytes` fit in the budget (first come, first served). More than the whole
   * budget is granted when nothing else is held, so one large request cannot wait forever.
   * Rejects with Aborted as soon as `signal` aborts, holding nothing.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(aborted(signal));
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(aborted(signal!));
        // The one that left may have been first in line, holding back smaller requests.
        this.pump();
      };
      const w: Waiter = {
        bytes,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) throw new RangeError(`memory budget: released ${-this.used} bytes more than were acquired`);
    this.pump();
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].bytes)) {
      const w = this.waiters.shift()!;
      this.used += w.bytes;
      w.grant();
    }
  }
}

function aborted(signal: AbortSignal): CairnError {
  return new CairnError('Aborted', 'stopped while waiting for buffer memory', { cause: signal.reason });
}
