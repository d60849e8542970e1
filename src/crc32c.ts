// The one place cairn computes CRC32C (Castagnoli). Backed by @node-rs/crc32: SIMD,
// prebuilt N-API binaries, ~6 GB/s here (sse4_crc32 is faster but compiles with node-gyp;
// the wasm and pure-JS ones measured 3-60x slower). See bench/crc32c.ts.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** Extends `crc` (0 for a fresh start) with `data`; returns the unmasked CRC32C as uint32. */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  if (data.length === 0) return crc >>> 0;
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return nativeCrc32c(buf, crc >>> 0) >>> 0;
}

export function crc32c(data: Uint8Array): number {
  return crc32cUpdate(0, data);
}

/** Incremental hasher, for one pass while copying. */
export class Crc32c {
  value = 0;
  length = 0;
  update(chunk: Uint8Array): this {
    this.value = crc32cUpdate(this.value, chunk);
    this.length += chunk.length;
    return this;
  }
}

// RocksDB stores CRCs inside its own files (log records, blocks) "masked" so that a CRC of
// data that itself contains CRCs stays well distributed.
const MASK_DELTA = 0xa282ead8;
export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** Base64 of the big-endian 4 bytes: the form S3 (x-amz-checksum-crc32c) and GCS use. */
export function crc32cToBase64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}
export function crc32cFromBase64(s: string): number | undefined {
  const b = Buffer.from(s, 'base64');
  return b.length === 4 ? b.readUInt32BE(0) : undefined;
}
