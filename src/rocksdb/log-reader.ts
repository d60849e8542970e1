// Reader for RocksDB's log format (db/log_format.h, db/log_reader.cc), shared by the
// MANIFEST and the WAL: the file is cut into 32 KiB blocks; each block holds physical
// records (header + payload) and a logical record too big for one block is split into
// FIRST/MIDDLE/LAST fragments. A block never starts a header it cannot fit: the writer
// pads the last < header-size bytes with zeros, which the reader skips.
import { basename } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { crc32c, unmaskCrc } from '../crc32c.ts';
import { CairnError, corruption } from '../errors.ts';
import { parseDbFileName } from './filename.ts';

export const LOG_BLOCK_SIZE = 32768;
export const LOG_HEADER_SIZE = 7; // masked crc32c u32, length u16, type u8
export const LOG_RECYCLABLE_HEADER_SIZE = 11; // ... plus the low 32 bits of the log number

const ZERO = 0;
const FULL = 1;
const FIRST = 2;
const MIDDLE = 3;
const LAST = 4;
const RECYCLABLE_FULL = 5;
const RECYCLABLE_FIRST = 6;
const RECYCLABLE_MIDDLE = 7;
const RECYCLABLE_LAST = 8;
const SET_COMPRESSION = 9;
const UDT_SIZE = 10;
const RECYCLABLE_UDT_SIZE = 11;
const PREDECESSOR_WAL_INFO = 130;
const RECYCLABLE_PREDECESSOR_WAL_INFO = 131;
const SAFE_IGNORE_MASK = 0x80;
const ZSTD = 0x07; // the only streaming compression RocksDB supports for WALs

export interface LogReadOptions {
  /** Named in errors; for a WAL also the default for `logNumber`. */
  file?: string;
  /**
   * A torn end (last record cut short, zero-filled or lost mid-fragment) ends the
   * iteration quietly instead of throwing: what a crash or a file still being written
   * leaves behind. Default true, like RocksDB's kTolerateCorruptedTailRecords.
   */
  tolerateTail?: boolean;
  /**
   * Number of the log being read, used to recognise leftovers of an older log in a
   * recycled file. Defaults to the number in `file` when it is a WAL name, else to the
   * number in the first recyclable record.
   */
  logNumber?: number;
}

/** What the generator returns once done. */
export interface LogEnd {
  /** Offset just past the last physical record that belongs to a complete logical record. */
  validEnd: number;
  /** Why reading stopped before the end of the data, when it did. */
  tail?: string;
}

function isRecyclable(type: number): boolean {
  return (
    (type >= RECYCLABLE_FULL && type <= RECYCLABLE_LAST) ||
    type === RECYCLABLE_UDT_SIZE ||
    type === RECYCLABLE_PREDECESSOR_WAL_INFO
  );
}

function allZero(data: Buffer, from: number): boolean {
  for (let i = from; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

export function* readLogRecords(data: Buffer, opts: LogReadOptions = {}): Generator<Buffer, LogEnd, undefined> {
  const file = opts.file;
  const tolerateTail = opts.tolerateTail ?? true;
  const where = file ?? 'log';
  let expectedLogNumber: number | undefined;
  if (opts.logNumber !== undefined) expectedLogNumber = opts.logNumber % 2 ** 32;
  else if (file !== undefined) {
    const parsed = parseDbFileName(basename(file));
    if (parsed?.type === 'wal') expectedLogNumber = parsed.number % 2 ** 32;
  }

  const fail = (msg: string, offset: number): CairnError =>
    corruption(`${where}: ${msg} at offset ${offset}`, { file });

  let pos = 0;
  let validEnd = 0;
  let fragments: Buffer[] | undefined; // set while inside a FIRST..LAST sequence
  let fragmentStart = 0;
  let recycled = false;
  let firstRecordRead = false;
  let compressed = false;
  let compressionRecordRead = false;

  // Only called where the damage runs to the end of the data (a record or header cut
  // short, or zeros up to the end): the marks of a crash or of a file still being written.
  // Damage followed by more data is a corruption in the middle and throws regardless.
  const tail = (msg: string, offset: number): LogEnd => {
    if (!tolerateTail) throw fail(msg, offset);
    return { validEnd, tail: `${msg} at offset ${offset}` };
  };

  const deliver = (payload: Buffer, offset: number): Buffer => {
    if (!compressed) return payload;
    try {
      return zstdDecompressSync(payload);
    } catch (e) {
      throw corruption(`${where}: cannot decompress WAL record at offset ${offset}`, { file, cause: e });
    }
  };

  for (;;) {
    if (pos >= data.length) {
      if (fragments !== undefined) return tail('log ends inside a fragmented record', fragmentStart);
      return { validEnd };
    }
    const blockEnd = (Math.floor(pos / LOG_BLOCK_SIZE) + 1) * LOG_BLOCK_SIZE;
    const blockComplete = blockEnd <= data.length;
    const avail = Math.min(blockEnd, data.length) - pos;

    if (avail < LOG_HEADER_SIZE) {
      if (blockComplete) {
        pos = blockEnd; // block trailer
        continue;
      }
      if (fragments === undefined && allZero(data, pos)) return { validEnd };
      return tail('truncated record header', pos);
    }

    const type = data[pos + 6];
    const length = data.readUInt16LE(pos + 4);
    let headerSize = LOG_HEADER_SIZE;
    if (isRecyclable(type)) {
      headerSize = LOG_RECYCLABLE_HEADER_SIZE;
      if (firstRecordRead && !recycled) throw fail('recyclable record in a log that did not start recycled', pos);
      recycled = true;
      if (avail < LOG_RECYCLABLE_HEADER_SIZE) {
        if (blockComplete) {
          pos = blockEnd;
          continue;
        }
        return tail('truncated record header', pos);
      }
    }

    if (type === ZERO && length === 0) {
      // Preallocated space or zero padding: RocksDB skips the rest of the block.
      if (fragments !== undefined) {
        if (allZero(data, pos)) return tail('log ends inside a fragmented record', fragmentStart);
        throw fail('zero-filled record inside a fragmented record', pos);
      }
      pos = blockEnd;
      continue;
    }

    if (headerSize + length > avail) {
      if (!blockComplete) return tail('truncated record', pos);
      throw fail(`bad record length ${length}`, pos);
    }

    if (headerSize === LOG_RECYCLABLE_HEADER_SIZE) {
      const logNumber = data.readUInt32LE(pos + 7);
      if (expectedLogNumber === undefined) expectedLogNumber = logNumber;
      else if (logNumber !== expectedLogNumber) {
        // Leftover of the log this file was recycled from: the real log ends here.
        if (fragments !== undefined) return tail('log ends inside a fragmented record', fragmentStart);
        return { validEnd, tail: `record of older log ${logNumber} at offset ${pos}` };
      }
    }

    const stored = unmaskCrc(data.readUInt32LE(pos));
    const actual = crc32c(data.subarray(pos + 6, pos + headerSize + length));
    if (stored !== actual) {
      // In a recycled file, garbage from the previous log can follow the last record.
      if (recycled && tolerateTail) return { validEnd, tail: `checksum mismatch at offset ${pos}` };
      throw fail('checksum mismatch', pos);
    }

    const recordStart = pos;
    const payload = data.subarray(pos + headerSize, pos + headerSize + length);
    pos += headerSize + length;

    switch (type) {
      case FULL:
      case RECYCLABLE_FULL:
      case FIRST:
      case RECYCLABLE_FIRST: {
        // An empty FIRST at a block end followed by a new record was an old writer bug.
        if (fragments !== undefined && fragments.some((f) => f.length > 0)) {
          throw fail('partial record without end', fragmentStart);
        }
        if (type === FULL || type === RECYCLABLE_FULL) {
          fragments = undefined;
          firstRecordRead = true;
          validEnd = pos;
          yield deliver(payload, recordStart);
        } else {
          fragments = [payload];
          fragmentStart = recordStart;
        }
        break;
      }
      case MIDDLE:
      case RECYCLABLE_MIDDLE:
        if (fragments === undefined) throw fail('missing start of fragmented record', recordStart);
        fragments.push(payload);
        break;
      case LAST:
      case RECYCLABLE_LAST: {
        if (fragments === undefined) throw fail('missing start of fragmented record', recordStart);
        fragments.push(payload);
        const record = Buffer.concat(fragments);
        fragments = undefined;
        firstRecordRead = true;
        validEnd = pos;
        yield deliver(record, fragmentStart);
        break;
      }
      case SET_COMPRESSION: {
        if (compressionRecordRead || firstRecordRead) throw fail('misplaced SetCompressionType record', recordStart);
        compressionRecordRead = true;
        if (payload.length < 4) throw fail('short SetCompressionType record', recordStart);
        const ctype = payload.readUInt32LE(0);
        if (ctype !== ZSTD) throw fail(`unsupported WAL compression type ${ctype}`, recordStart);
        compressed = true;
        validEnd = pos;
        break;
      }
      case UDT_SIZE:
      case RECYCLABLE_UDT_SIZE:
        if (fragments !== undefined && fragments.some((f) => f.length > 0)) {
          throw fail('timestamp size record inside a fragmented record', recordStart);
        }
        fragments = undefined;
        validEnd = pos;
        break;
      case PREDECESSOR_WAL_INFO:
      case RECYCLABLE_PREDECESSOR_WAL_INFO:
        // Only used by RocksDB to cross-check WAL chains; carries no user data.
        validEnd = pos;
        break;
      default:
        if ((type & SAFE_IGNORE_MASK) === 0) throw fail(`unknown record type ${type}`, recordStart);
        fragments = undefined;
        break;
    }
  }
}
