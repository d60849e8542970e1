// The one place cairn computes CRC32C (Castagnoli). Backed by @node-rs/crc32: SIMD, prebuilt
// N-API binaries (sse4_crc32 is faster but compiles with node-gyp; the wasm and pure-JS ones are
// much slower). Figures: bench/crc32c.ts and the README.
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

// CRC32C of a concatenation from the CRCs of its parts (zlib's crc32_combine, for the Castagnoli
// polynomial): lets ranges of one file be read in parallel and checked as a whole. @node-rs/crc32
// has no combine, and none of the CRC32C packages measured for this module offers one.
const POLY_REFLECTED = 0x82f63b78;

/** a·b modulo the CRC polynomial, in the reflected bit order CRC32C uses. */
function mulModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY_REFLECTED : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial. */
const X2N: number[] = (() => {
  const t = [0x40000000]; // x^1
  for (let k = 1; k < 64; k++) t.push(mulModP(t[k - 1], t[k - 1]));
  return t;
})();

/** x^(8·bytes) modulo the polynomial: the factor that shifts a CRC past `bytes` zero bytes. */
function shiftFactor(bytes: number): number {
  let p = 0x80000000; // x^0
  let k = 3; // 8·bytes = bytes·2^3
  for (let n = bytes; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) p = mulModP(X2N[k % 64], p);
  }
  return p;
}

/** crc32c(a ‖ b) from crc32c(a), crc32c(b) and b's length in bytes. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (!Number.isSafeInteger(lengthB) || lengthB < 0) throw new RangeError(`invalid length ${lengthB}`);
  return (mulModP(shiftFactor(lengthB), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}
