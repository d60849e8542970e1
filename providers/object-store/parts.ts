// What S3 and GCS uploads share: cutting a source into parts copied into pooled buffers, the
// buffers one write holds, and a pool that lets its buffers go once no write has run for a while.
// Buffers come out of one MemoryBudget per env, so memory is one number whatever the thread count.
import type { WriteOptions, WriteSource } from '../../src/env.ts';
import { CairnError, ioError } from '../../src/errors.ts';
import { BufferPool } from '../../src/io/buffer-pool.ts';
import type { MemoryBudget } from '../../src/io/memory-budget.ts';
import type { WriteTally } from './write-checks.ts';

/** How long a part pool keeps its buffers once no write runs. */
const POOL_IDLE_MS = 2000;

/** A file this small (by its declared size) gets a buffer of its size, not a whole part's. */
export const SMALL_FILE = 1024 * 1024;

export interface Part {
  data: Buffer;
  last: boolean;
  /** The pool buffer behind `data`, to give back once the part is stored. */
  pooled?: Buffer;
}

/**
 * The part buffers one write holds. A buffer whose part was sent goes back to the pool; one whose
 * request failed is dropped at once (its memory goes back to the budget for the writes still
 * running; the buffer itself is not reused, as the request may still be reading it); whatever
 * the write still holds when it ends, by any path, is dropped too.
 */
export class HeldBuffers {
  private readonly held = new Set<Buffer>();
  readonly pool: BufferPool;
  constructor(pool: BufferPool) {
    this.pool = pool;
  }
  async take(signal: AbortSignal | undefined, bytes: number): Promise<Buffer> {
    const b = await this.pool.take(signal, bytes);
    this.held.add(b);
    return b;
  }
  give(b: Buffer | undefined): void {
    if (b !== undefined && this.held.delete(b)) this.pool.give(b);
  }
  drop(b: Buffer | undefined): void {
    if (b !== undefined && this.held.delete(b)) this.pool.drop(b);
  }
  dropAll(): void {
    for (const b of this.held) this.pool.drop(b);
    this.held.clear();
  }
}

/**
 * Cuts a byte source into parts of exactly `partSize` bytes, except the last, which has 1..partSize
 * bytes (0 only for an empty source). A part is emitted only once a byte beyond it has arrived, so
 * `last` is known when it is emitted. Nothing is read until the consumer asks for the next part.
 * Every chunk is counted by the tally (a source longer than declared fails at once) and copied
 * into a part buffer taken from the shared budget (waiting while it is spent) before the next
 * chunk is asked for, so the source may reuse its chunk buffers (writeRetainsNoChunk).
 */
async function* splitParts(source: WriteSource, partSize: number, tally: WriteTally, opts: WriteOptions, buffers: HeldBuffers): AsyncGenerator<Part, void, undefined> {
  const declared = opts.size;
  let want = declared !== undefined && declared < SMALL_FILE ? Math.max(1, declared) : partSize;
  let cur: Buffer | undefined;
  let filled = 0;
  for await (const chunk of source) {
    let c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    tally.add(c);
    while (c.length > 0) {
      if (cur !== undefined && filled === cur.length) {
        const full = cur;
        cur = undefined;
        yield { data: full, last: false, pooled: full };
      }
      if (cur === undefined) {
        cur = await buffers.take(opts.signal, want);
        want = partSize;
        filled = 0;
      }
      const k = Math.min(c.length, cur.length - filled);
      c.copy(cur, filled, 0, k);
      filled += k;
      c = c.subarray(k);
    }
  }
  if (cur === undefined) yield { data: Buffer.alloc(0), last: true };
  else yield { data: cur.subarray(0, filled), last: true, pooled: cur };
}

/**
 * The next part of `parts`, undefined after the last. A failure of the source (not one of cairn's
 * own checks) becomes an IOError that names the object being written.
 */
function readParts(parts: AsyncGenerator<Part, void, undefined>, where: string, name: string, signal: AbortSignal | undefined): () => Promise<Part | undefined> {
  return async () => {
    let r: IteratorResult<Part, void>;
    try {
      r = await parts.next();
    } catch (e) {
      if (e instanceof CairnError) throw e;
      if (signal?.aborted) throw new CairnError('Aborted', `write ${where}: aborted`, { cause: e, file: name });
      throw ioError(`reading the data for ${where} failed: ${(e as Error)?.message ?? e}`, { cause: e, file: name });
    }
    return r.done ? undefined : r.value;
  };
}

/**
 * Part buffers of the default size, reused across writes. Idle, the pool keeps no memory (between
 * the backups of a long-lived process), but not the moment no write runs: a backup ends with small
 * writes one after another (private files, the manifest), and emptying the pool before each made
 * every one of them allocate a fresh part, leaving the pool's buffers as garbage only a full
 * collection frees.
 */
export class PartPool {
  readonly pool: BufferPool;
  private active = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(partSize: number, budget: MemoryBudget) {
    this.pool = new BufferPool(partSize, budget);
  }

  /**
   * Runs one write on the parts of `source`, cut `partSize` bytes long (a size other than the
   * pool's gets buffers of its own, from the same budget): `use` gets a reader of the parts and the
   * buffers the write holds. When it ends, by any path, the source and whatever the write still
   * holds are let go.
   */
  async withParts<T>(
    source: WriteSource,
    partSize: number,
    tally: WriteTally,
    opts: WriteOptions,
    where: string,
    name: string,
    use: (next: () => Promise<Part | undefined>, buffers: HeldBuffers) => Promise<T>,
  ): Promise<T> {
    const buffers = new HeldBuffers(partSize === this.pool.size ? this.pool : new BufferPool(partSize, this.pool.budget));
    const parts = splitParts(source, partSize, tally, opts, buffers);
    this.active++;
    clearTimeout(this.idleTimer);
    try {
      return await use(readParts(parts, where, name, opts.signal), buffers);
    } finally {
      await parts.return(undefined).catch(() => {});
      buffers.dropAll();
      if (--this.active === 0) this.idleTimer = setTimeout(() => this.pool.clear(), POOL_IDLE_MS).unref();
    }
  }

  /** Lets the pooled buffers go now (the env is closing). */
  release(): void {
    clearTimeout(this.idleTimer);
    this.pool.clear();
  }
}
