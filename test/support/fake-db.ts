// Builds small RocksDB-shaped directories for engine tests: a real log-format MANIFEST whose
// VersionEdit names the table and blob files, CURRENT, an OPTIONS file and WAL files. Table
// files are given bytes (random, or a real SST so session-id naming is exercised). Interop with
// real RocksDB is tested separately with ldb; this lets the engine suite run on any provider
// and any machine, and make files of any size.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { varint, lengthPrefixed, logOf, ikey } from '../rocksdb/helpers.ts';
import { crc32c } from '../../src/crc32c.ts';

const slice = lengthPrefixed;

/** RocksDB log format (db/log_writer.cc): records fragmented over 32 KiB blocks. */
export const encodeLog = (records: Buffer[]): Buffer => logOf(records);

export interface FakeTable {
  number: number;
  data: Buffer;
  /** Table files: the temperature byte the MANIFEST records (kHot 4, kWarm 8, kCold 12). */
  temperature?: number;
}

export interface FakeDbSpec {
  tables: FakeTable[];
  blobs?: FakeTable[];
  /** WAL number → contents (a log-format file of WriteBatch records, or anything). */
  wals?: FakeTable[];
  manifestNumber: number;
  optionsNumber?: number;
  logNumber: number;
  lastSequence: number;
  /** Record each table's and blob file's crc32c, as RocksDB's FileChecksumGenCrc32cFactory does. */
  fileChecksums?: boolean;
}

/** FileChecksumGenCrc32c's checksum: the crc32c, 4 bytes big-endian. */
function fileChecksum(data: Buffer): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32c(data));
  return b;
}

/** The VersionEdit of a fresh DB holding exactly these files (tags from db/version_edit.h). */
function versionEdit(spec: FakeDbSpec): Buffer {
  const parts: Buffer[] = [];
  parts.push(varint(1), slice('leveldb.BytewiseComparator'));
  parts.push(varint(2), varint(spec.logNumber));
  const maxFile = Math.max(spec.manifestNumber, spec.optionsNumber ?? 0, spec.logNumber, ...spec.tables.map((t) => t.number), ...(spec.blobs ?? []).map((b) => b.number));
  parts.push(varint(3), varint(maxFile + 1));
  parts.push(varint(4), varint(spec.lastSequence));
  const oldestBlob = Math.min(...(spec.blobs ?? []).map((b) => b.number));
  for (const t of spec.tables) {
    // kNewFile4: level, number, size, smallest, largest, smallest seqno, largest seqno, then
    // custom fields up to kTerminate (1); kOldestBlobFileNumber (4) links the first table to the
    // oldest blob file, without which RocksDB (and cairn) consider blob files obsolete.
    parts.push(varint(103), varint(1), varint(t.number), varint(t.data.length));
    parts.push(slice(ikey(`a${t.number}`, 1)), slice(ikey(`z${t.number}`, 2)), varint(1), varint(2));
    if (t === spec.tables[0] && Number.isFinite(oldestBlob)) parts.push(varint(4), slice(varint(oldestBlob)));
    // kFileChecksum (7), kFileChecksumFuncName (8), kTemperature (9)
    if (spec.fileChecksums) parts.push(varint(7), slice(fileChecksum(t.data)), varint(8), slice('FileChecksumCrc32c'));
    if (t.temperature !== undefined) parts.push(varint(9), slice(Buffer.from([t.temperature])));
    parts.push(varint(1));
  }
  for (const b of spec.blobs ?? []) {
    // kBlobFileAddition: number, total count, total bytes, checksum method, checksum value,
    // custom fields up to kEndMarker (0).
    const [method, value] = spec.fileChecksums ? ['FileChecksumCrc32c', fileChecksum(b.data)] : ['', Buffer.alloc(0)];
    parts.push(varint(400), varint(b.number), varint(10), varint(b.data.length), slice(method), slice(value), varint(0));
  }
  return Buffer.concat(parts);
}

/** Writes (or rewrites) a DB directory to match `spec`; files of older specs stay unless removed. */
export async function writeFakeDb(dir: string, spec: FakeDbSpec): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const pad = (n: number) => String(n).padStart(6, '0');
  for (const t of spec.tables) await fsp.writeFile(path.join(dir, `${pad(t.number)}.sst`), t.data);
  for (const b of spec.blobs ?? []) await fsp.writeFile(path.join(dir, `${pad(b.number)}.blob`), b.data);
  for (const w of spec.wals ?? []) await fsp.writeFile(path.join(dir, `${pad(w.number)}.log`), w.data);
  await fsp.writeFile(path.join(dir, `MANIFEST-${pad(spec.manifestNumber)}`), encodeLog([versionEdit(spec)]));
  if (spec.optionsNumber !== undefined) {
    await fsp.writeFile(path.join(dir, `OPTIONS-${pad(spec.optionsNumber)}`), `# fake options ${spec.optionsNumber}\n[Version]\n  rocksdb_version=7.8.3\n`);
  }
  await fsp.writeFile(path.join(dir, 'CURRENT'), `MANIFEST-${pad(spec.manifestNumber)}\n`);
  await fsp.writeFile(path.join(dir, 'IDENTITY'), 'fake-db-identity\n');
  await fsp.writeFile(path.join(dir, 'LOCK'), '');
  await fsp.writeFile(path.join(dir, 'LOG'), 'info log: never backed up\n');
}

/** A WAL holding one WriteBatch (sequence, count) with a single Put, in log format. */
export function fakeWal(sequence: number, key = 'k', value = 'v'): Buffer {
  const batch = Buffer.concat([Buffer.alloc(12), Buffer.from([1]), slice(key), slice(value)]);
  batch.writeBigUInt64LE(BigInt(sequence), 0);
  batch.writeUInt32LE(1, 8);
  return encodeLog([batch]);
}

export const table = (number: number, size: number): FakeTable => ({ number, data: randomBytes(size) });
