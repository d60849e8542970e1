// Reader for RocksDB's log format (db/log_format.h, db/log_reader.cc), shared by the
// MANIFEST and the WAL: the file is cut into 32 KiB blocks; each block holds physical
// records (header + payload) and a logical record too big for one block is split into
// FIRST/MIDDLE/LAST fragments. A block never starts a header it cannot fit: the writer
// pads the last < header-size bytes with zeros, which the reader skips.
// The bytes come from a LogSource (log-source.ts): a whole Buffer, or a file read through a
// window, so that a WAL is never held whole.
import { basename } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { crc32c, unmaskCrc } from '../crc32c.ts';
import { CairnError, corruption } from '../errors.ts';
import { parseDbFileName } from './filename.ts';
import { BufferLogSource, LOG_BLOCK_SIZE, type LogSource } from './log-source.ts';

export { LOG_BLOCK_SIZE };
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
  /**
   * Only the first `recordPrefix` bytes of each logical record are wanted (a WAL scan needs a
   * write batch's 12-byte header): each record yielded is cut to them, and a fragmented record
   * is not assembled beyond them. Every fragment's checksum is still verified. In a compressed
   * log a record is decompressed whole before it is cut.
   */
  recordPrefix?: number;
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

/**
 * Yields the log's logical records. From a Buffer, a record may be a view into it; from a
 * source whose views are not stable (a file window), a record is valid only until the
 * generator is resumed: copy what must outlive that.
 */
export function* readLogRecords(data: Buffer | LogSource, opts: LogReadOptions = {}): Generator<Buffer, LogEnd, undefined> {
  const src = Buffer.isBuffer(data) ? new BufferLogSource(data) : data;
  const prefix = opts.recordPrefix;
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
  let fragmentBytes = 0; // payload bytes of those fragments, kept or not
  let keptBytes = 0; // bytes of them kept in `fragments`
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
    let record = payload;
    if (compressed) {
      try {
        record = zstdDecompressSync(payload);
      } catch (e) {
        throw corruption(`${where}: cannot decompress WAL record at offset ${offset}`, { file, cause: e });
      }
    }
    return prefix !== undefined && record.length > prefix ? record.subarray(0, prefix) : record;
  };

  // Fragments outlive the window they were read through, so a moving window's are copied; and
  // beyond the wanted prefix they are not kept at all (a compressed record is needed whole).
  const keep = (payload: Buffer): void => {
    fragmentBytes += payload.length;
    const want = prefix === undefined || compressed ? payload.length : Math.min(payload.length, prefix - keptBytes);
    if (want <= 0) return;
    const part = payload.subarray(0, want);
    fragments!.push(src.stable ? part : Buffer.from(part));
    keptBytes += want;
  };
  const startFragments = (payload: Buffer): void => {
    fragments = [];
    fragmentBytes = 0;
    keptBytes = 0;
    keep(payload);
  };

  for (;;) {
    if (pos >= src.length) {
      if (fragments !== undefined) return tail('log ends inside a fragmented record', fragmentStart);
      return { validEnd };
    }
    const blockEnd = (Math.floor(pos / LOG_BLOCK_SIZE) + 1) * LOG_BLOCK_SIZE;
    const blockComplete = blockEnd <= src.length;
    const avail = Math.min(blockEnd, src.length) - pos;

    if (avail < LOG_HEADER_SIZE) {
      if (blockComplete) {
        pos = blockEnd; // block trailer
        continue;
      }
      if (fragments === undefined && src.allZeroFrom(pos)) return { validEnd };
      return tail('truncated record header', pos);
    }

    // The rest of this block: everything the record at `pos` may occupy.
    const block = src.view(pos, pos + avail);
    const type = block[6];
    const length = block.readUInt16LE(4);
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
        if (src.allZeroFrom(pos)) return tail('log ends inside a fragmented record', fragmentStart);
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
      const logNumber = block.readUInt32LE(7);
      if (expectedLogNumber === undefined) expectedLogNumber = logNumber;
      else if (logNumber !== expectedLogNumber) {
        // Leftover of the log this file was recycled from: the real log ends here.
        if (fragments !== undefined) return tail('log ends inside a fragmented record', fragmentStart);
        return { validEnd, tail: `record of older log ${logNumber} at offset ${pos}` };
      }
    }

    const stored = unmaskCrc(block.readUInt32LE(0));
    const actual = crc32c(block.subarray(6, headerSize + length));
    if (stored !== actual) {
      // In a recycled file, garbage from the previous log can follow the last record.
      if (recycled && tolerateTail) return { validEnd, tail: `checksum mismatch at offset ${pos}` };
      throw fail('checksum mismatch', pos);
    }

    const recordStart = pos;
    const payload = block.subarray(headerSize, headerSize + length);
    pos += headerSize + length;

    switch (type) {
      case FULL:
      case RECYCLABLE_FULL:
      case FIRST:
      case RECYCLABLE_FIRST: {
        // An empty FIRST at a block end followed by a new record was an old writer bug.
        if (fragments !== undefined && fragmentBytes > 0) {
          throw fail('partial record without end', fragmentStart);
        }
        if (type === FULL || type === RECYCLABLE_FULL) {
          fragments = undefined;
          firstRecordRead = true;
          validEnd = pos;
          yield deliver(payload, recordStart);
        } else {
          startFragments(payload);
          fragmentStart = recordStart;
        }
        break;
      }
      case MIDDLE:
      case RECYCLABLE_MIDDLE:
        if (fragments === undefined) throw fail('missing start of fragmented record', recordStart);
        keep(payload);
        break;
      case LAST:
      case RECYCLABLE_LAST: {
        if (fragments === undefined) throw fail('missing start of fragmented record', recordStart);
        keep(payload);
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
        if (fragments !== undefined && fragmentBytes > 0) {
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
