// Reads a local file as a sequence of chunks with one read always in flight ahead of the
// consumer. With `reuse`, two buffers take turns: a chunk stays valid only until the consumer
// asks for the next one, and a copy of any size runs in ~2 chunk buffers of memory instead of
// leaving a trail of fresh 1 MiB buffers for the garbage collector (which roughly doubled RSS).
import * as fsp from 'node:fs/promises';
import { throwIfAborted } from '../errors.ts';
import { REUSABLE_CHUNK_MIN } from '../env.ts';

export const CHUNK_SIZE = 1 << 20;

export interface FileChunkOptions {
  /** First byte (default 0). */
  start?: number;
  /** Bytes to read from start (default: to the end of the file at open time). */
  length?: number;
  chunkSize?: number;
  /** Reuse two buffers: the consumer must be done with a chunk before asking for the next. */
  reuse?: boolean;
  signal?: AbortSignal;
}

/** A file's chunks; close() releases the file even when iteration never started. */
export interface FileChunks extends AsyncIterable<Uint8Array> {
  close(): Promise<void>;
}

/**
 * Opens `path` first (so a missing file fails before iteration) and returns its chunks. The file
 * is closed when an iteration ends; a consumer that may never iterate (a write that fails or is
 * stopped before it reads its source) calls close().
 */
export async function openFileChunks(path: string, opts: FileChunkOptions = {}): Promise<FileChunks> {
  const fh = await fsp.open(path, 'r');
  let size: number;
  try {
    size = opts.length ?? Math.max(0, (await fh.stat()).size - (opts.start ?? 0));
  } catch (e) {
    await fh.close();
    throw e;
  }
  let started = false;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  return {
    [Symbol.asyncIterator]() {
      if (started) throw new Error('file chunks can be iterated once');
      started = true;
      return fileChunks(fh, size, opts, close);
    },
    // An iteration closes the file in its own time (after its last read settles).
    close: async () => {
      if (!started) await close();
    },
  };
}

async function* fileChunks(fh: fsp.FileHandle, length: number, opts: FileChunkOptions, close: () => Promise<void>): AsyncGenerator<Uint8Array> {
  const chunkSize = Math.max(1, Math.min(opts.chunkSize ?? CHUNK_SIZE, length || 1));
  const pool = opts.reuse ? [takeBuffer(chunkSize), takeBuffer(chunkSize)] : undefined;
  let turn = 0;
  let pos = opts.start ?? 0;
  const end = pos + length;
  const readNext = (): Promise<Buffer | undefined> | undefined => {
    if (pos >= end) return undefined;
    const want = Math.min(chunkSize, end - pos);
    const buf = pool ? pool[turn++ & 1] : Buffer.allocUnsafe(want);
    const at = pos;
    pos += want;
    return fh.read(buf, 0, want, at).then(({ bytesRead }) => {
      // The file is shorter than asked: stop there; callers compare the length they got.
      if (bytesRead === 0) {
        pos = end;
        return undefined;
      }
      // A short read in the middle: read the rest of this chunk before going on.
      if (bytesRead < want) pos = at + bytesRead;
      return buf.subarray(0, bytesRead);
    });
  };
  let pending = readNext();
  try {
    while (pending) {
      throwIfAborted(opts.signal);
      const chunk = await pending;
      pending = readNext();
      if (!chunk) continue;
      // Small chunks (the tail of a file) are handed out as copies: the caller may keep them.
      yield pool && chunk.length < REUSABLE_CHUNK_MIN ? Buffer.from(chunk) : chunk;
    }
  } finally {
    // A read may still be in flight into a pool buffer if the consumer stopped early.
    await pending?.catch(() => undefined);
    await close();
    if (pool) for (const b of pool) giveBack(b);
  }
}

// Buffers of finished reads are kept for the next file: a restore of thousands of files then
// allocates a handful of buffers in all, not two per file.
const spare: Buffer[] = [];
const MAX_SPARE = 16;

function takeBuffer(size: number): Buffer {
  const i = spare.findIndex((b) => b.length === size);
  return i >= 0 ? spare.splice(i, 1)[0] : Buffer.allocUnsafeSlow(size);
}

function giveBack(b: Buffer): void {
  if (spare.length < MAX_SPARE) spare.push(b);
}
