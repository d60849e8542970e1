// Fixed-size buffers handed out again and again. Uploads that allocate a fresh 8 MiB part per
// 8 MiB of data leave GiBs of dead external memory behind them, and V8 answers that with a full
// mark-compact every few parts; reused parts cost a memcpy instead and keep memory flat.
export class BufferPool {
  readonly size: number;
  private readonly keep: number;
  private free: Buffer[] = [];
  constructor(size: number, keep: number) {
    this.size = size;
    this.keep = keep;
  }
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }
  /** Only a buffer nobody will touch again (e.g. never one of a request that may still be sending). */
  give(b: Buffer): void {
    if (b.length === this.size && this.free.length < this.keep) this.free.push(b);
  }
  /** Drops the idle buffers (when no one is using the pool, so it holds no memory). */
  clear(): void {
    this.free = [];
  }
}
