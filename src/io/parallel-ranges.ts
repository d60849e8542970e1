// One object read as ranges (one for a small file), several at a time, each range handed to its
// sink as its bytes arrive, with the offset they belong at. Nothing waits for an earlier range:
// a restore writes every chunk in place at once (while it is still in the CPU cache) and keeps no
// range in memory; the whole file's CRC32C is folded from the ranges' CRCs at the end.
// (Delivering ranges in order instead meant holding every later range that had arrived, and
// writing every byte from a cold buffer.)
import { crc32cCombine, Crc32c } from '../crc32c.ts';
import { bytesStreamed } from '../gc-tuning.ts';
import { corruption, isCairnError } from '../errors.ts';
import { fanOut } from './fan-out.ts';
import { withRetry } from './retry.ts';

export type OpenRange = (offset: number, length: number, signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>;

export interface RangeSink {
  /** Called with each chunk of a range in order; `position` is the chunk's offset in the file. */
  chunk(position: number, data: Uint8Array): Promise<void> | void;
  /** Called once a range has delivered all its bytes (flush a batch, say). */
  rangeDone?(rangeIndex: number): Promise<void> | void;
}

export interface ParallelRangesOptions {
  /** The file's name, for messages. */
  name: string;
  size: number;
  partSize: number;
  concurrency: number;
  /** How often one range may be resumed after an IOError (connection lost mid-body); default 3. */
  resumes?: number;
  signal?: AbortSignal;
}

/**
 * The range size object stores read in by default. Every range costs a request and, in this
 * process, objects that outlive the young generation's collections; a range cut off midway is
 * resumed from its first missing byte, so a long range loses nothing to a failure. Measured
 * against 8 and 16 MiB in the README (Benchmark, round 8).
 */
export const DEFAULT_READ_PART_SIZE = 32 * 1024 * 1024;

const DEFAULT_RESUMES = 3;
const RESUME_DELAY_MS = 100;

/**
 * Reads bytes [0, size) through `open` as ranges of `partSize`, `concurrency` at a time; each
 * range gets its own sink from `sinkFor`. Returns the CRC32C of all the bytes. A range that
 * delivers more or fewer bytes than asked (a truncated or replaced object) fails the read with
 * Corruption; an IOError mid-range resumes that range (up to `resumes` times); the first failure
 * that remains stops the others.
 */
export async function readParallelRanges(open: OpenRange, sinkFor: (rangeIndex: number, start: number) => RangeSink, opts: ParallelRangesOptions): Promise<number> {
  const { size, partSize, concurrency } = opts;
  const count = Math.ceil(size / partSize);
  const crcs = new Array<number>(count);
  const resumes = opts.resumes ?? DEFAULT_RESUMES;
  const readOne = async (i: number, signal: AbortSignal) => {
    const start = i * partSize;
    const length = Math.min(partSize, size - start);
    const sink = sinkFor(i, start);
    const crc = new Crc32c();
    // A connection lost in the middle of a range costs only the rest of that range: it is asked
    // for again from the first byte not yet received (a range read is idempotent).
    await withRetry(
      async () => {
        for await (const c of await open(start + crc.length, length - crc.length, signal)) {
          if (crc.length + c.length > length) throw corruption(`${opts.name}: bytes ${start}-${start + length - 1} returned more than ${length} bytes`, { file: opts.name });
          const at = start + crc.length;
          crc.update(c);
          bytesStreamed(c.length);
          await sink.chunk(at, c);
        }
      },
      { retries: resumes, baseDelayMs: RESUME_DELAY_MS, retryable: (e) => isCairnError(e, 'IOError'), signal },
    );
    if (crc.length !== length) throw corruption(`${opts.name}: bytes ${start}-${start + length - 1} returned ${crc.length} bytes, expected ${length}`, { file: opts.name });
    await sink.rangeDone?.(i);
    crcs[i] = crc.value;
  };
  // The first failure is the one reported: the others it stops fail with an abort.
  await fanOut(Array.from({ length: count }, (_, i) => i), (i, _n, signal) => readOne(i, signal), { concurrency, ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
  let whole = 0;
  for (let i = 0; i < count; i++) whole = crc32cCombine(whole, crcs[i], Math.min(partSize, size - i * partSize));
  return whole;
}
