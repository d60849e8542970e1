// Just enough of the WAL's payload to know how far its sequence numbers reach: every
// WAL record is a WriteBatch whose 12-byte header is the sequence number of its first
// entry (u64 LE) and its entry count (u32 LE) (db/write_batch.cc, WriteBatchInternal).
import { corruption } from '../errors.ts';
import { toSafeNumber } from './coding.ts';
import { readLogRecords } from './log-reader.ts';
import { FileLogSource, type FileLogSourceOptions, type LogSource } from './log-source.ts';

export const WRITE_BATCH_HEADER_SIZE = 12;

export interface WriteBatchHeader {
  sequence: number;
  count: number;
}

export function writeBatchHeader(record: Buffer, file?: string): WriteBatchHeader {
  if (record.length < WRITE_BATCH_HEADER_SIZE) {
    throw corruption(`${file ?? 'WAL'}: log record too small for a write batch (${record.length} bytes)`, { file });
  }
  const sequence = toSafeNumber(record.readBigUInt64LE(0));
  if (sequence === undefined) throw corruption(`${file ?? 'WAL'}: write batch sequence beyond 2^53`, { file });
  return { sequence, count: record.readUInt32LE(8) };
}

/**
 * Largest sequence number written to a WAL (sequence + count - 1 over its batches), or
 * undefined when the WAL holds no batch. A torn last record is ignored, as recovery does.
 * Only each batch's header is kept: a fragmented record is checked but never assembled.
 */
export function lastSequenceInWal(data: Buffer | LogSource, file?: string): number | undefined {
  let last: number | undefined;
  for (const record of readLogRecords(data, { file, tolerateTail: true, recordPrefix: WRITE_BATCH_HEADER_SIZE })) {
    const { sequence, count } = writeBatchHeader(record, file);
    const end = sequence + count - 1;
    if (last === undefined || end > last) last = end;
  }
  return last;
}

/**
 * lastSequenceInWal over a WAL file read through a fixed window (log-source.ts), so that
 * memory does not grow with the WAL. `name` is the WAL's file name, used in errors and for
 * its log number.
 */
export function lastSequenceInWalFile(path: string, name: string, opts: FileLogSourceOptions = {}): number | undefined {
  const src = new FileLogSource(path, opts);
  try {
    return lastSequenceInWal(src, name);
  } finally {
    src.close();
  }
}
