// Writes every byte of some buffers at the file handle's position: writev may write fewer bytes
// than asked (a short write), and what is left is written again.
import type { FileHandle } from 'node:fs/promises';

export async function writeAll(fh: FileHandle, chunks: Uint8Array[]): Promise<void> {
  let bufs = chunks;
  while (bufs.length > 0) {
    const { bytesWritten } = await fh.writev(bufs);
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
