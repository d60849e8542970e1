// The footer at the end of every SST (table/format.cc Footer::DecodeFrom). It names the
// table format through its magic number and locates the metaindex block, from which the
// other meta blocks (properties among them) are found.
import { crc32c, maskCrc } from '../crc32c.ts';
import { CairnError, corruption } from '../errors.ts';
import { Cursor, toSafeNumber } from './coding.ts';

export const BLOCK_BASED_MAGIC = 0x88e241b785f4cff7n;
// Block-based tables of format_version 0 (footer without checksum type or version).
export const LEGACY_BLOCK_BASED_MAGIC = 0xdb4775248b80fb57n;
const PLAIN_MAGIC = 0x8242229663bf9564n;
const LEGACY_PLAIN_MAGIC = 0x4f3418eb7a8f13b8n;
const CUCKOO_MAGIC = 0x926789d0c5f17873n;

export const LEGACY_FOOTER_SIZE = 48; // two padded handles (40) + magic (8)
export const FOOTER_SIZE = 53; // checksum type (1) + part2 (40) + version (4) + magic (8)
export const BLOCK_TRAILER_SIZE = 5; // compression type (1) + checksum (4)
export const LATEST_FORMAT_VERSION = 7;
const EXTENDED_MAGIC = Buffer.from([0x3e, 0x00, 0x7a, 0x00]);

export const ChecksumType = { none: 0, crc32c: 1, xxHash: 2, xxHash64: 3, xxh3: 4 } as const;

export interface BlockHandle {
  offset: number;
  size: number;
}

export interface Footer {
  formatVersion: number;
  checksumType: number;
  /** fv >= 6: mixed into every block checksum with the block's offset. 0 before. */
  baseContextChecksum: number;
  metaindex: BlockHandle;
  /** Absent for fv >= 6, where the index is found through the metaindex. */
  index?: BlockHandle;
  /** Where the footer starts; blocks must end (trailer included) at or before it. */
  footerOffset: number;
}

/**
 * ChecksumModifierForContext: since format_version 6 a block's stored checksum has this
 * added, so a block copied to another offset (or another file) fails verification.
 */
export function checksumModifier(baseContextChecksum: number, offset: number): number {
  if (baseContextChecksum === 0) return 0;
  const lower = offset % 2 ** 32;
  const upper = Math.floor(offset / 2 ** 32);
  return (baseContextChecksum ^ ((lower + upper) >>> 0)) >>> 0;
}

/** A BlockHandle: varint64 offset and size; undefined when truncated or out of range. */
export function readHandle(c: Cursor): BlockHandle | undefined {
  const off = c.varint64();
  const size = c.varint64();
  if (off === undefined || size === undefined) return undefined;
  const o = toSafeNumber(off);
  const s = toSafeNumber(size);
  return o === undefined || s === undefined ? undefined : { offset: o, size: s };
}

/**
 * Decodes the footer from the file's last bytes. `tail` holds the last
 * min(fileSize, FOOTER_SIZE) bytes of a file of `fileSize` bytes.
 */
export function decodeFooter(tail: Buffer, fileSize: number, file?: string): Footer {
  const where = file ?? 'SST';
  function fail(msg: string): never {
    throw corruption(`${where}: ${msg}`, { file });
  }
  if (tail.length < LEGACY_FOOTER_SIZE) fail(`file is too short (${fileSize} bytes) to be an SST`);
  const magic = tail.readBigUInt64LE(tail.length - 8);

  if (magic === PLAIN_MAGIC || magic === LEGACY_PLAIN_MAGIC) fail('not a block-based table (plain table format)');
  if (magic === CUCKOO_MAGIC) fail('not a block-based table (cuckoo table format)');

  if (magic === LEGACY_BLOCK_BASED_MAGIC) {
    const footerOffset = fileSize - LEGACY_FOOTER_SIZE;
    const c = new Cursor(tail, tail.length - LEGACY_FOOTER_SIZE);
    const metaindex = readHandle(c) ?? fail('bad metaindex block handle in footer');
    const index = readHandle(c) ?? fail('bad index block handle in footer');
    return { formatVersion: 0, checksumType: ChecksumType.crc32c, baseContextChecksum: 0, metaindex, index, footerOffset };
  }
  if (magic !== BLOCK_BASED_MAGIC) fail(`bad table magic number 0x${magic.toString(16)}`);

  const formatVersion = tail.readUInt32LE(tail.length - 12);
  if (formatVersion < 1 || formatVersion > LATEST_FORMAT_VERSION) {
    fail(`corrupt or unsupported format_version ${formatVersion}`);
  }
  if (tail.length < FOOTER_SIZE) fail('input is too short to be an SST file');
  const footer = tail.subarray(tail.length - FOOTER_SIZE);
  const footerOffset = fileSize - FOOTER_SIZE;
  const checksumType = footer[0];
  if (checksumType > ChecksumType.xxh3) fail(`corrupt or unsupported checksum type ${checksumType}`);

  if (formatVersion < 6) {
    const c = new Cursor(footer, 1);
    const metaindex = readHandle(c) ?? fail('bad metaindex block handle in footer');
    const index = readHandle(c) ?? fail('bad index block handle in footer');
    return { formatVersion, checksumType, baseContextChecksum: 0, metaindex, index, footerOffset };
  }

  // format_version >= 6: the handles are gone; the metaindex sits right before the
  // footer and only its size is stored, and the footer carries its own checksum.
  if (!footer.subarray(1, 5).equals(EXTENDED_MAGIC)) fail('bad extended magic number in footer');
  const stored = footer.readUInt32LE(5);
  const baseContextChecksum = footer.readUInt32LE(9);
  if (baseContextChecksum === 0) fail('invalid base context checksum in footer');
  // xxHash variants cannot be computed here (no implementation at hand); crc32c and
  // "none" (checksum 0 plus the context modifier) can.
  if (checksumType === ChecksumType.crc32c || checksumType === ChecksumType.none) {
    const copy = Buffer.from(footer);
    copy.writeUInt32LE(0, 5);
    const base = checksumType === ChecksumType.crc32c ? maskCrc(crc32c(copy)) : 0;
    const computed = (base + checksumModifier(baseContextChecksum, footerOffset)) >>> 0;
    if (computed !== stored) fail(`footer at ${footerOffset} checksum mismatch`);
  }
  const metaindexSize = footer.readUInt32LE(13);
  if (footer.readBigUInt64LE(33) !== 0n) {
    throw new CairnError('NotSupported', `${where}: SST uses a future feature not supported`, { file });
  }
  const metaindexEnd = footerOffset - BLOCK_TRAILER_SIZE;
  if (metaindexEnd - metaindexSize < 0) fail('metaindex block size beyond the start of the file');
  return {
    formatVersion,
    checksumType,
    baseContextChecksum,
    metaindex: { offset: metaindexEnd - metaindexSize, size: metaindexSize },
    footerOffset,
  };
}
