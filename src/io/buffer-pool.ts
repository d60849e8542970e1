// Buffers handed out again and again, within a MemoryBudget. Uploads that allocate a fresh 8 MiB
// part per 8 MiB of data leave GiBs of dead external memory behind them, and V8 answers that with
// a full mark-compact every few parts; reused parts cost a memcpy instead and keep memory flat.
// Idle buffers count against the budget too: what the pool holds, in use or kept, stays within it,
// with one allowance: a smaller buffer in use (a small file's, short-lived) does not make the pool
// let a returned buffer of its size go. Dropped, that buffer would be garbage until a full
// collection while the next part allocated a new one (at the end of every backup, whose last
// writes are small files); kept, the pool exceeds the budget by those small buffers at most.
import { MemoryBudget } from './memory-budget.ts';

export class BufferPool {
  /** The size of the buffers the pool keeps and reuses. */
  readonly size: number;
  readonly budget: MemoryBudget;
  private free: Buffer[] = [];
  /** Bytes of buffers smaller than `size` handed out and not yet given back or dropped. */
  private smallInUse = 0;

  constructor(size: number, budget: MemoryBudget) {
    if (!(Number.isSafeInteger(size) && size > 0)) throw new RangeError(`buffer size must be a positive integer, not ${size}`);
    this.size = size;
    this.budget = budget;
  }

  /**
   * A buffer of `bytes` (default: the pool's size), or an idle one of the pool's size when it is
   * larger, once the budget has room for it (see MemoryBudget.acquire: waits in turn, rejects
   * with Aborted when `signal` aborts).
   */
  async take(signal?: AbortSignal, bytes: number = this.size): Promise<Buffer> {
    // A smaller buffer (a small file's) while one of the pool's is idle: the idle one serves it,
    // whole (and counted whole), instead of a new allocation beside it; give() takes it back.
    if (bytes < this.size && this.free.length > 0) bytes = this.size;
    await this.budget.acquire(bytes, signal);
    if (bytes === this.size && this.free.length > 0) return this.free.pop()!;
    if (bytes < this.size) {
      this.smallInUse += bytes;
      return Buffer.allocUnsafeSlow(bytes);
    }
    // A new buffer of the pool's size or larger: the idle ones beyond the budget go.
    while (this.free.length > 0 && this.budget.inUse - this.smallInUse + this.free.length * this.size > this.budget.limit) this.free.pop();
    return Buffer.allocUnsafeSlow(bytes);
  }

  /** Gives a buffer back for reuse: only one nobody will touch again. */
  give(b: Buffer): void {
    // Kept before the release: a taker that was waiting for this memory finds the buffer.
    if (b.length < this.size) this.smallInUse -= b.length;
    else if (b.length === this.size && this.budget.inUse - this.smallInUse - b.length + (this.free.length + 1) * this.size <= this.budget.limit) this.free.push(b);
    this.budget.release(b.length);
  }

  /**
   * Returns a buffer's share of the budget without reusing it: a request that failed or was
   * aborted may still be reading it (it is garbage once that request lets go).
   */
  drop(b: Buffer): void {
    if (b.length < this.size) this.smallInUse -= b.length;
    this.budget.release(b.length);
  }

  /** Drops the idle buffers (when no one is using the pool, so it holds no memory). */
  clear(): void {
    this.free = [];
  }
}
