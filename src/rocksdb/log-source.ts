// Where the log reader (log-reader.ts) gets its bytes: a Buffer holding the whole log (the
// MANIFEST, already in memory), or a file read through a window of whole blocks, so that a WAL
// of any size is read with a fixed amount of memory. The reader only ever asks for bytes inside
// one 32 KiB block at a time, which a window of whole blocks always holds.
//
// The file source reads synchronously (fs.readSync) because the reader is a synchronous
// generator shared with the MANIFEST replay; each read is one window, and the checksums the
// reader computes over the same bytes were synchronous already.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ioError } from '../errors.ts';

export const LOG_BLOCK_SIZE = 32768;
/** Default window of a file source: whole blocks, few reads, a fixed 1 MiB of memory. */
export const DEFAULT_LOG_WINDOW = 1 << 20;

const ZEROS = Buffer.alloc(LOG_BLOCK_SIZE);

export interface LogSource {
  /** Bytes in the log. */
  readonly length: number;
  /**
   * True when a view stays valid for as long as the source lives; false when a later call
   * (of view or allZeroFrom) may overwrite it, so that the reader must copy what it keeps.
   */
  readonly stable: boolean;
  /** Bytes [start, end), which lie inside one log block. */
  view(start: number, end: number): Buffer;
  /** True when every byte from `from` to the end of the log is zero. */
  allZeroFrom(from: number): boolean;
}

function blockEnd(pos: number): number {
  return (Math.floor(pos / LOG_BLOCK_SIZE) + 1) * LOG_BLOCK_SIZE;
}

/** Block by block, so that a windowed source never needs more than one block at a time. */
function allZeroFrom(src: LogSource, from: number): boolean {
  for (let p = from; p < src.length; ) {
    const end = Math.min(blockEnd(p), src.length);
    if (!src.view(p, end).equals(ZEROS.subarray(0, end - p))) return false;
    p = end;
  }
  return true;
}

export class BufferLogSource implements LogSource {
  readonly stable = true;
  readonly data: Buffer;
  constructor(data: Buffer) {
    this.data = data;
  }
  get length(): number {
    return this.data.length;
  }
  view(start: number, end: number): Buffer {
    return this.data.subarray(start, end);
  }
  allZeroFrom(from: number): boolean {
    return allZeroFrom(this, from);
  }
}

export interface FileLogSourceOptions {
  /** Read no further than this (a WAL is backed up up to its size when pinned). */
  size?: number;
  /** Bytes read at once: a positive multiple of the block size (default 1 MiB). */
  windowBytes?: number;
}

/** A log file read through a window of whole blocks. Close it when done. */
export class FileLogSource implements LogSource {
  readonly stable = false;
  readonly length: number;
  readonly file: string;
  /** How many windows were read, and the most bytes any view handed out (for tests). */
  loads = 0;
  largestView = 0;
  private fd: number | undefined;
  private readonly window: Buffer;
  private windowStart = 0;
  private windowLength = 0;

  constructor(file: string, opts: FileLogSourceOptions = {}) {
    const windowBytes = opts.windowBytes ?? DEFAULT_LOG_WINDOW;
    if (!Number.isInteger(windowBytes) || windowBytes < LOG_BLOCK_SIZE || windowBytes % LOG_BLOCK_SIZE !== 0) {
      throw new RangeError(`log window of ${windowBytes} bytes is not a positive multiple of ${LOG_BLOCK_SIZE}`);
    }
    this.file = file;
    try {
      this.fd = openSync(file, 'r');
      const size = fstatSync(this.fd).size;
      this.length = Math.min(size, opts.size ?? size);
    } catch (e) {
      this.close();
      throw ioError(`open ${file}: ${(e as Error).message}`, { file, cause: e });
    }
    // A small log gets a small window: never more than its own size rounded up to a block.
    this.window = Buffer.allocUnsafe(Math.max(LOG_BLOCK_SIZE, Math.min(windowBytes, blockEnd(this.length - 1))));
  }

  /** The window's size: all the memory this source holds, whatever the size of the log. */
  get windowBytes(): number {
    return this.window.length;
  }

  view(start: number, end: number): Buffer {
    if (start < this.windowStart || end > this.windowStart + this.windowLength) {
      this.load(start - (start % LOG_BLOCK_SIZE));
    }
    if (end - start > this.largestView) this.largestView = end - start;
    return this.window.subarray(start - this.windowStart, end - this.windowStart);
  }

  allZeroFrom(from: number): boolean {
    return allZeroFrom(this, from);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private load(start: number): void {
    if (this.fd === undefined) throw new Error(`${this.file}: log source used after close`);
    const want = Math.min(this.window.length, this.length - start);
    let got = 0;
    try {
      while (got < want) {
        const n = readSync(this.fd, this.window, got, want - got, start + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw ioError(`read ${this.file}: ${(e as Error).message}`, { file: this.file, cause: e });
    }
    if (got < want) throw ioError(`${this.file} shrank below ${this.length} bytes while being read`, { file: this.file });
    this.windowStart = start;
    this.windowLength = want;
    this.loads++;
  }
}
