// A byte-rate limiter shared by every parallel copy of one operation, like RocksDB's
// backup_rate_limit / restore_rate_limit: callers reserve bytes before passing them on and
// sleep until the budget allows, with a small burst so one large chunk does not stall.
import { setTimeout as sleep } from 'node:timers/promises';
import { throwIfAborted } from './errors.ts';

export class RateLimiter {
  readonly bytesPerSecond: number;
  private nextFreeMs = 0;
  private readonly burstMs = 50;

  constructor(bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError('rate limit must be > 0 bytes/s');
    this.bytesPerSecond = bytesPerSecond;
  }

  /** The largest chunk worth passing at once: about 1/20 s of budget, at least 4 KiB. */
  get chunkSize(): number {
    return Math.max(4096, Math.floor(this.bytesPerSecond / 20));
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const start = Math.max(now, this.nextFreeMs);
    this.nextFreeMs = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = this.nextFreeMs - now - this.burstMs;
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => throwIfAborted(signal));
    throwIfAborted(signal);
  }
}

/**
 * Passes `source` through, reserving each chunk's bytes first (a large chunk a slice at a time).
 * Chunks pass whole: a reader that reuses its buffers hands out chunks the consumer may only
 * hold until it asks for the next, and a small slice would look like one it may keep.
 */
export async function* rateLimited(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limiter: RateLimiter | undefined, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  if (!limiter) {
    yield* source;
    return;
  }
  const max = limiter.chunkSize;
  for await (const chunk of source) {
    for (let off = 0; off < chunk.length; off += max) await limiter.take(Math.min(max, chunk.length - off), signal);
    yield chunk;
  }
}
