// Writers for RocksDB encodings, used by the tests to build inputs that the installed
// tools cannot produce (corruptions, recycled logs, future tags, atomic groups...).
// They follow db/log_writer.cc and db/version_edit.cc, independently of the readers.
import { fileURLToPath } from 'node:url';
import { crc32c, maskCrc } from '../../src/crc32c.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/rocksdb/', import.meta.url));

export function varint(v: number | bigint): Buffer {
  let n = BigInt(v);
  const out: number[] = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}

export function lengthPrefixed(b: Buffer | string): Buffer {
  const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  return Buffer.concat([varint(buf.length), buf]);
}

export function fixed32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

export function fixed64(v: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

export const BLOCK = 32768;

/** Builds a log file record by record, like log::Writer (optionally recyclable). */
export class LogWriter {
  parts: Buffer[] = [];
  offset = 0;
  recycleLogNumber: number | undefined;

  constructor(recycleLogNumber?: number) {
    this.recycleLogNumber = recycleLogNumber;
  }

  get headerSize(): number {
    return this.recycleLogNumber === undefined ? 7 : 11;
  }

  physical(type: number, payload: Buffer, opts: { badCrc?: boolean; logNumber?: number } = {}): void {
    const recyclable = (type >= 5 && type <= 8) || type === 11 || type === 131;
    const header = Buffer.alloc(recyclable ? 11 : 7);
    header.writeUInt16LE(payload.length, 4);
    header[6] = type;
    if (recyclable) header.writeUInt32LE((opts.logNumber ?? this.recycleLogNumber ?? 0) >>> 0, 7);
    let crc = maskCrc(crc32c(Buffer.concat([header.subarray(6), payload])));
    if (opts.badCrc) crc = (crc + 1) >>> 0;
    header.writeUInt32LE(crc, 0);
    this.push(header);
    this.push(payload);
  }

  push(b: Buffer): void {
    this.parts.push(b);
    this.offset += b.length;
  }

  /** Adds one logical record, fragmenting it across blocks as the writer does. */
  add(record: Buffer): void {
    const r = this.recycleLogNumber !== undefined ? 4 : 0;
    let left = record.length;
    let pos = 0;
    let begin = true;
    do {
      const leftover = BLOCK - (this.offset % BLOCK);
      if (leftover < this.headerSize) {
        this.push(Buffer.alloc(leftover));
      }
      const avail = BLOCK - (this.offset % BLOCK) - this.headerSize;
      const n = Math.min(left, avail);
      const end = n === left;
      const type = begin && end ? 1 : begin ? 2 : end ? 4 : 3;
      this.physical(type + r, record.subarray(pos, pos + n));
      pos += n;
      left -= n;
      begin = false;
    } while (left > 0);
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function logOf(records: Buffer[], recycleLogNumber?: number): Buffer {
  const w = new LogWriter(recycleLogNumber);
  for (const r of records) w.add(r);
  return w.build();
}

/** An internal key: user key + (seq << 8 | type) as fixed64. */
export function ikey(user: string, seq = 1, type = 1): Buffer {
  return Buffer.concat([Buffer.from(user), fixed64((BigInt(seq) << 8n) | BigInt(type))]);
}

/** VersionEdit encoder: `tag(n)` plus raw fields, mirroring VersionEdit::EncodeTo. */
export class EditBuilder {
  parts: Buffer[] = [];

  raw(...b: Buffer[]): this {
    this.parts.push(...b);
    return this;
  }
  tag(t: number): this {
    return this.raw(varint(t));
  }
  comparator(name: string): this {
    return this.tag(1).raw(lengthPrefixed(name));
  }
  logNumber(n: number): this {
    return this.tag(2).raw(varint(n));
  }
  nextFile(n: number): this {
    return this.tag(3).raw(varint(n));
  }
  lastSequence(n: number): this {
    return this.tag(4).raw(varint(n));
  }
  prevLogNumber(n: number): this {
    return this.tag(9).raw(varint(n));
  }
  minLogNumberToKeep(n: number): this {
    return this.tag(10).raw(varint(n));
  }
  deleteFile(level: number, n: number): this {
    return this.tag(6).raw(varint(level), varint(n));
  }
  /** kNewFile4 with the fields RocksDB always writes, plus `custom` (tag, bytes) pairs. */
  newFile4(level: number, n: number, size: number, custom: [number, Buffer][] = []): this {
    this.tag(103).raw(varint(level), varint(n), varint(size), lengthPrefixed(ikey('a')), lengthPrefixed(ikey('z')));
    this.raw(varint(1), varint(9)); // smallest and largest seqno
    for (const [t, v] of [[5, varint(0)], [6, varint(0)], [13, varint(1)], ...custom] as [number, Buffer][]) {
      this.raw(varint(t), lengthPrefixed(v));
    }
    return this.raw(varint(1));
  }
  blobAddition(n: number, count: number, bytes: number): this {
    return this.tag(400).raw(varint(n), varint(count), varint(bytes), lengthPrefixed(''), lengthPrefixed(''), varint(0));
  }
  blobGarbage(n: number, count: number, bytes: number): this {
    return this.tag(401).raw(varint(n), varint(count), varint(bytes), varint(0));
  }
  columnFamily(id: number): this {
    return this.tag(200).raw(varint(id));
  }
  addColumnFamily(name: string): this {
    return this.tag(201).raw(lengthPrefixed(name));
  }
  dropColumnFamily(): this {
    return this.tag(202);
  }
  maxColumnFamily(n: number): this {
    return this.tag(203).raw(varint(n));
  }
  atomicGroup(remaining: number): this {
    return this.tag(300).raw(varint(remaining));
  }
  dbId(id: string): this {
    return this.tag(8193).raw(lengthPrefixed(id));
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export const edit = (): EditBuilder => new EditBuilder();

/** The minimal first edits of a MANIFEST, as DBImpl::NewDB writes them. */
export function newDbEdits(): Buffer[] {
  return [edit().comparator('leveldb.BytewiseComparator').logNumber(0).nextFile(2).lastSequence(0).build()];
}

/** A block in the standard format: prefix-compressed keys, restart array, packed count. */
export function buildBlock(entries: [string, Buffer][], restartInterval = 16): Buffer {
  const parts: Buffer[] = [];
  const restarts: number[] = [];
  let size = 0;
  let prev = Buffer.alloc(0);
  entries.forEach(([k, v], i) => {
    const key = Buffer.from(k, 'latin1');
    let shared = 0;
    if (i % restartInterval === 0) restarts.push(size);
    else while (shared < prev.length && shared < key.length && prev[shared] === key[shared]) shared++;
    const entry = Buffer.concat([varint(shared), varint(key.length - shared), varint(v.length), key.subarray(shared), v]);
    parts.push(entry);
    size += entry.length;
    prev = key;
  });
  if (restarts.length === 0) restarts.push(0);
  return Buffer.concat([...parts, ...restarts.map(fixed32), fixed32(restarts.length)]);
}

export function blockModifier(base: number, offset: number): number {
  if (base === 0) return 0;
  return (base ^ (((offset % 2 ** 32) + Math.floor(offset / 2 ** 32)) >>> 0)) >>> 0;
}

/** Block + trailer (compression type, checksum) as BlockBasedTableBuilder writes it. */
export function withTrailer(block: Buffer, offset: number, opts: { checksumType?: number; base?: number; compression?: number } = {}): Buffer {
  const type = Buffer.from([opts.compression ?? 0]);
  const ck = opts.checksumType ?? 1;
  const sum = ck === 1 ? maskCrc(crc32c(Buffer.concat([block, type]))) : 0;
  return Buffer.concat([block, type, fixed32((sum + blockModifier(opts.base ?? 0, offset)) >>> 0)]);
}

export const BBT_MAGIC = 0x88e241b785f4cff7n;

/**
 * A minimal block-based table: no data, just a properties block, a metaindex naming it
 * and a footer of the given format version (>= 6 uses the newer footer layout).
 */
export function syntheticSst(
  props: [string, Buffer][],
  opts: { formatVersion?: number; base?: number; propertiesBlockName?: string; reserved?: number } = {},
): Buffer {
  const fv = opts.formatVersion ?? 6;
  const base = fv >= 6 ? (opts.base ?? 0x1234abcd) : 0;
  const padding = Buffer.from('data blocks would be here');
  const propsBlock = buildBlock(props);
  const propsOffset = padding.length;
  const propsWithTrailer = withTrailer(propsBlock, propsOffset, { base });
  const handle = Buffer.concat([varint(propsOffset), varint(propsBlock.length)]);
  const metaBlock = buildBlock([[opts.propertiesBlockName ?? 'rocksdb.properties', handle]], 1);
  const metaOffset = propsOffset + propsWithTrailer.length;
  const metaWithTrailer = withTrailer(metaBlock, metaOffset, { base });
  const footerOffset = metaOffset + metaWithTrailer.length;
  const footer = Buffer.alloc(53);
  footer[0] = 1; // crc32c
  if (fv >= 6) {
    Buffer.from([0x3e, 0x00, 0x7a, 0x00]).copy(footer, 1);
    footer.writeUInt32LE(base, 9);
    footer.writeUInt32LE(metaBlock.length, 13);
    if (opts.reserved) footer[40] = opts.reserved;
  } else {
    Buffer.concat([varint(metaOffset), varint(metaBlock.length), varint(0), varint(0)]).copy(footer, 1);
  }
  footer.writeUInt32LE(fv, 41);
  footer.writeBigUInt64LE(BBT_MAGIC, 45);
  if (fv >= 6) {
    const sum = (maskCrc(crc32c(footer)) + blockModifier(base, footerOffset)) >>> 0;
    footer.writeUInt32LE(sum, 5);
  }
  return Buffer.concat([padding, propsWithTrailer, metaWithTrailer, footer]);
}
