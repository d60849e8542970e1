// Bounds-checked readers for RocksDB's encodings (util/coding.h): little-endian fixed
// ints, base-128 varints and varint32-length-prefixed slices. Every read returns
// undefined instead of throwing when the input ends early, so callers can turn a short
// read into a corruption error that names the field and the file.

export class Cursor {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /**
   * Like GetVarint32Ptr: at most 5 bytes; bits beyond 32 in the fifth byte are dropped,
   * as RocksDB drops them, so both sides agree on what a sloppy encoding means.
   */
  varint32(): number | undefined {
    let result = 0;
    for (let shift = 0, p = this.pos; shift <= 28 && p < this.end; shift += 7) {
      const byte = this.buf[p++];
      result = (result | ((byte & 0x7f) << shift)) >>> 0;
      if ((byte & 0x80) === 0) {
        this.pos = p;
        return result;
      }
    }
    return undefined;
  }

  /** Up to 10 bytes, as GetVarint64Ptr; bigint because file sizes and seqnos are u64. */
  varint64(): bigint | undefined {
    let result = 0n;
    for (let shift = 0n, p = this.pos; shift <= 63n && p < this.end; shift += 7n) {
      const byte = this.buf[p++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) {
        this.pos = p;
        return BigInt.asUintN(64, result);
      }
    }
    return undefined;
  }

  fixed32(): number | undefined {
    if (this.remaining < 4) return undefined;
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): bigint | undefined {
    if (this.remaining < 8) return undefined;
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(n: number): Buffer | undefined {
    if (n < 0 || this.remaining < n) return undefined;
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  lengthPrefixed(): Buffer | undefined {
    const save = this.pos;
    const len = this.varint32();
    if (len === undefined || this.remaining < len) {
      this.pos = save;
      return undefined;
    }
    return this.bytes(len);
  }
}

/** A u64 as a JS number, or undefined when it is not exactly representable. */
export function toSafeNumber(v: bigint): number | undefined {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}
