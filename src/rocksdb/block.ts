// Entries of an uncompressed block in the standard block format (block_builder.cc,
// block.cc): each entry stores how many leading bytes it shares with the previous key,
// the rest of the key and the value; a restart array and a packed u32 footer close the
// block. Enough to walk the metaindex and properties blocks, which are never compressed
// and never use the data-block-only features (hash index, separated values).
import { crc32c, maskCrc } from '../crc32c.ts';
import { CairnError, corruption } from '../errors.ts';
import { Cursor } from './coding.ts';
import { BLOCK_TRAILER_SIZE, ChecksumType, checksumModifier } from './table-footer.ts';

export interface BlockEntry {
  key: Buffer;
  value: Buffer;
  /** Offset of the value inside the block. */
  valueOffset: number;
}

const HASH_INDEX_BIT = 0x80000000;
const UNIFORM_KEYS_BIT = 1 << 29;
const SEPARATED_KV_BIT = 1 << 28;
const MAX_NUM_RESTARTS = (1 << 28) - 1;

export function parseBlockEntries(block: Buffer, what: string, file?: string): BlockEntry[] {
  function fail(msg: string): never {
    throw corruption(`${file ?? 'SST'}: ${what} block: ${msg}`, { file });
  }
  if (block.length < 8) fail('bad block contents (too small)');
  let packed = block.readUInt32LE(block.length - 4);
  if (packed & HASH_INDEX_BIT || packed & SEPARATED_KV_BIT) {
    throw new CairnError('NotSupported', `${file ?? 'SST'}: ${what} block uses a data-block-only layout`, { file });
  }
  packed &= ~UNIFORM_KEYS_BIT;
  if (packed > MAX_NUM_RESTARTS) fail('unrecognized feature in block footer (reserved bits set)');
  const numRestarts = packed;
  const restartOffset = block.length - 4 - numRestarts * 4;
  if (restartOffset < 0) fail(`too small for ${numRestarts} restarts`);

  const entries: BlockEntry[] = [];
  let prevKey = Buffer.alloc(0);
  const c = new Cursor(block, 0, restartOffset);
  while (c.remaining > 0) {
    const start = c.pos;
    const shared = c.varint32();
    const nonShared = c.varint32();
    const valueLength = c.varint32();
    if (shared === undefined || nonShared === undefined || valueLength === undefined) {
      fail(`bad entry at offset ${start}`);
    }
    if (shared > prevKey.length) fail(`entry at offset ${start} shares more than the previous key`);
    const delta = c.bytes(nonShared) ?? fail(`key of entry at offset ${start} overruns the block`);
    const valueOffset = c.pos;
    const value = c.bytes(valueLength) ?? fail(`value of entry at offset ${start} overruns the block`);
    const key = Buffer.concat([prevKey.subarray(0, shared), delta]);
    entries.push({ key, value, valueOffset });
    prevKey = key;
  }
  return entries;
}

/**
 * Checks a block's trailer checksum. `withTrailer` is the block followed by its 5-byte
 * trailer; returns false on a mismatch, undefined when the checksum type is one of the
 * xxHash family, which cairn does not compute.
 */
export function verifyBlockChecksum(
  withTrailer: Buffer,
  checksumType: number,
  baseContextChecksum: number,
  offset: number,
): boolean | undefined {
  const len = withTrailer.length - BLOCK_TRAILER_SIZE + 1; // the compression byte is covered
  let computed: number;
  if (checksumType === ChecksumType.crc32c) computed = maskCrc(crc32c(withTrailer.subarray(0, len)));
  else if (checksumType === ChecksumType.none) computed = 0;
  else return undefined;
  const stored = (withTrailer.readUInt32LE(len) - checksumModifier(baseContextChecksum, offset)) >>> 0;
  return stored === computed;
}
