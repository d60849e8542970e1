// Writes every byte of some buffers at the file handle's position, or at `position`: writev may
// write fewer bytes than asked (a short write), and what is left is written again.
import type { FileHandle } from 'node:fs/promises';

export async function writeAll(fh: FileHandle, chunks: Uint8Array[], position?: number): Promise<void> {
  let bufs = chunks;
  let at = position;
  while (bufs.length > 0) {
    const { bytesWritten } = at === undefined ? await fh.writev(bufs) : await fh.writev(bufs, at);
    if (at !== undefined) at += bytesWritten;
    // A short write: drop what was written and retry the rest.
    let n = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of bufs) {
      if (n >= b.length) n -= b.length;
      else {
        rest.push(b.subarray(n));
        n = 0;
      }
    }
    bufs = rest;
  }
}
