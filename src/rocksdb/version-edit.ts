// Decoder for one MANIFEST record, a VersionEdit (db/version_edit.cc DecodeFrom): a
// sequence of varint32 tags, each followed by its own encoding. Tags at or above
// kTagSafeIgnoreMask (1 << 13) were added later in a forward-compatible way; tags below
// it that we do not know mean the MANIFEST is from a RocksDB we cannot read.
import { corruption } from '../errors.ts';
import { Cursor, toSafeNumber } from './coding.ts';
import type { NewFile, DeletedFile, BlobFileAddition, BlobFileGarbage, WalAddition, VersionEdit } from './version-edit-types.ts';

export type { NewFile, DeletedFile, BlobFileAddition, BlobFileGarbage, WalAddition, VersionEdit } from './version-edit-types.ts';

const TAG = {
  comparator: 1,
  logNumber: 2,
  nextFileNumber: 3,
  lastSequence: 4,
  compactCursor: 5,
  deletedFile: 6,
  newFile: 7,
  // 8 was large value refs, never in RocksDB
  prevLogNumber: 9,
  minLogNumberToKeep: 10,
  newFile2: 100,
  newFile3: 102,
  newFile4: 103,
  columnFamily: 200,
  columnFamilyAdd: 201,
  columnFamilyDrop: 202,
  maxColumnFamily: 203,
  inAtomicGroup: 300,
  blobFileAddition: 400,
  blobFileGarbage: 401,
  safeIgnoreMask: 1 << 13,
  dbId: (1 << 13) + 1,
  // The two deprecated blob tags and the first WAL tags sit above the mask but, unlike
  // everything after them, are NOT length-prefixed: they decode exactly like their
  // successors, so they must be understood, never skipped.
  blobFileAdditionDeprecated: (1 << 13) + 2,
  blobFileGarbageDeprecated: (1 << 13) + 3,
  walAddition: (1 << 13) + 4,
  walDeletion: (1 << 13) + 5,
  fullHistoryTsLow: (1 << 13) + 6,
  walAddition2: (1 << 13) + 7,
  walDeletion2: (1 << 13) + 8,
  persistUserDefinedTimestamps: (1 << 13) + 9,
  subcompactionProgress: (1 << 13) + 10,
  lastCompactedManifestFileSize: (1 << 13) + 11,
} as const;

// Custom fields inside NewFile4 (NewFileCustomTag).
const NF = {
  terminate: 1,
  needCompaction: 2,
  minLogNumberToKeepHack: 3,
  oldestBlobFileNumber: 4,
  oldestAncesterTime: 5,
  fileCreationTime: 6,
  fileChecksum: 7,
  fileChecksumFuncName: 8,
  temperature: 9,
  epochNumber: 13,
  // Bit 6 set: a reader that does not understand the field must refuse the MANIFEST.
  nonSafeIgnoreMask: 1 << 6,
  pathId: (1 << 6) + 1,
} as const;

const BLOB_FORWARD_INCOMPATIBLE_MASK = 1 << 6;
const WAL_ADDITION_TERMINATE = 1;
const WAL_ADDITION_SYNCED_SIZE = 2;

class EditDecoder {
  readonly c: Cursor;
  readonly file: string | undefined;

  constructor(record: Buffer, file: string | undefined) {
    this.c = new Cursor(record);
    this.file = file;
  }

  fail(what: string): never {
    throw corruption(`${this.file ?? 'MANIFEST'}: VersionEdit: bad ${what}`, { file: this.file });
  }

  u32(what: string): number {
    return this.c.varint32() ?? this.fail(what);
  }

  u64(what: string): number {
    const v = this.c.varint64();
    if (v === undefined) this.fail(what);
    return toSafeNumber(v) ?? this.fail(`${what} (${v} is beyond 2^53)`);
  }

  /** For values we only pass along: exact when possible, otherwise dropped. */
  u64Loose(what: string): number | undefined {
    const v = this.c.varint64();
    if (v === undefined) this.fail(what);
    return toSafeNumber(v);
  }

  slice(what: string): Buffer {
    return this.c.lengthPrefixed() ?? this.fail(what);
  }

  // InternalKey::Valid also checks the value type byte; the set of types grows over
  // releases, so only the fixed 8-byte (seqno << 8 | type) trailer is required here.
  internalKey(what: string): Buffer {
    const k = this.slice(what);
    if (k.length < 8) this.fail(what);
    return k;
  }
}

function fieldVarint(d: EditDecoder, field: Buffer, what: string): number {
  const v = new Cursor(field).varint64();
  if (v === undefined) d.fail(what);
  return toSafeNumber(v) ?? d.fail(what);
}

const NEW_FILE_NAMES: Record<number, string> = {
  [TAG.newFile]: 'new-file',
  [TAG.newFile2]: 'new-file2',
  [TAG.newFile3]: 'new-file3',
  [TAG.newFile4]: 'new-file4',
};

function decodeNewFile(d: EditDecoder, tag: number, edit: VersionEdit): void {
  const name = NEW_FILE_NAMES[tag];
  const level = d.u32(`${name} level`);
  const number = d.u64(`${name} number`);
  const pathId = tag === TAG.newFile3 ? d.u32(`${name} path id`) : 0;
  const size = d.u64(`${name} size`);
  const f: NewFile = {
    level,
    number,
    size,
    pathId,
    smallestKey: d.internalKey(`${name} smallest key`),
    largestKey: d.internalKey(`${name} largest key`),
  };
  if (tag !== TAG.newFile) {
    const smallest = d.u64Loose(`${name} smallest seqno`);
    const largest = d.u64Loose(`${name} largest seqno`);
    if (smallest !== undefined) f.smallestSeqno = smallest;
    if (largest !== undefined) f.largestSeqno = largest;
  }
  if (tag === TAG.newFile4) decodeCustomFields(d, f, edit);
  edit.newFiles.push(f);
}

function decodeCustomFields(d: EditDecoder, f: NewFile, edit: VersionEdit): void {
  for (;;) {
    const tag = d.u32('new-file4 custom field');
    if (tag === NF.terminate) return;
    const field = d.slice('new-file4 custom field length prefixed slice');
    switch (tag) {
      case NF.pathId:
        if (field.length !== 1 || field[0] > 3) d.fail('new-file4 path id');
        f.pathId = field[0];
        break;
      case NF.oldestAncesterTime:
        f.oldestAncesterTime = fieldVarint(d, field, 'oldest ancester time');
        break;
      case NF.fileCreationTime:
        f.fileCreationTime = fieldVarint(d, field, 'file creation time');
        break;
      case NF.epochNumber:
        f.epochNumber = fieldVarint(d, field, 'epoch number');
        break;
      case NF.fileChecksum:
        f.fileChecksum = Buffer.from(field);
        break;
      case NF.fileChecksumFuncName:
        f.fileChecksumFuncName = field.toString('latin1');
        break;
      case NF.needCompaction:
        if (field.length !== 1) d.fail('need_compaction field size');
        f.markedForCompaction = field[0] === 1;
        break;
      case NF.minLogNumberToKeepHack: {
        // Fixed64, not varint: an old trick to get this value past older readers.
        const v = field.length >= 8 ? toSafeNumber(field.readBigUInt64LE(0)) : undefined;
        edit.minLogNumberToKeep = v ?? d.fail('min log number to keep (new-file4)');
        break;
      }
      case NF.oldestBlobFileNumber:
        f.oldestBlobFileNumber = fieldVarint(d, field, 'oldest blob file number');
        break;
      case NF.temperature:
        if (field.length !== 1) d.fail('temperature field size');
        f.temperature = field[0];
        break;
      default:
        // Unique id, timestamps, tail size, etc.: not needed to know which files live.
        if (tag & NF.nonSafeIgnoreMask) d.fail(`new-file4 custom field ${tag} (not supported)`);
    }
  }
}

function decodeBlobCustomFields(d: EditDecoder, what: string): void {
  for (;;) {
    const tag = d.u32(`${what} custom field tag`);
    if (tag === 0) return;
    if (tag & BLOB_FORWARD_INCOMPATIBLE_MASK) d.fail(`${what}: forward incompatible custom field ${tag}`);
    d.slice(`${what} custom field value`);
  }
}

function decodeWalAddition(d: EditDecoder, c: Cursor): WalAddition {
  const n = c.varint64();
  const number = n === undefined ? undefined : toSafeNumber(n);
  if (number === undefined) d.fail('WalAddition log number');
  const w: WalAddition = { number };
  for (;;) {
    const tag = c.varint32();
    if (tag === WAL_ADDITION_TERMINATE) return w;
    if (tag !== WAL_ADDITION_SYNCED_SIZE) d.fail(`WalAddition tag ${tag}`);
    const size = c.varint64();
    const s = size === undefined ? undefined : toSafeNumber(size);
    if (s === undefined) d.fail('WalAddition synced size');
    w.syncedSize = s;
  }
}

function decodeWalDeletion(d: EditDecoder, c: Cursor): number {
  const n = c.varint64();
  return (n === undefined ? undefined : toSafeNumber(n)) ?? d.fail('WalDeletion log number');
}

export function decodeVersionEdit(record: Buffer, file?: string): VersionEdit {
  const edit: VersionEdit = {
    compactCursors: [],
    deletedFiles: [],
    newFiles: [],
    blobFileAdditions: [],
    blobFileGarbage: [],
    walAdditions: [],
  };
  const d: EditDecoder = new EditDecoder(record, file);
  const c = d.c;
  const deleted = new Set<string>();

  while (c.remaining > 0) {
    const tag = c.varint32();
    if (tag === undefined) d.fail('tag');
    switch (tag) {
      case TAG.comparator:
        edit.comparator = d.slice('comparator name').toString('latin1');
        break;
      case TAG.dbId:
        edit.dbId = d.slice('db id').toString('latin1');
        break;
      case TAG.logNumber:
        edit.logNumber = d.u64('log number');
        break;
      case TAG.prevLogNumber:
        edit.prevLogNumber = d.u64('previous log number');
        break;
      case TAG.nextFileNumber:
        edit.nextFileNumber = d.u64('next file number');
        break;
      case TAG.lastSequence:
        edit.lastSequence = d.u64('last sequence number');
        break;
      case TAG.minLogNumberToKeep:
        edit.minLogNumberToKeep = d.u64('min log number to keep');
        break;
      case TAG.maxColumnFamily:
        edit.maxColumnFamily = d.u32('max column family');
        break;
      case TAG.compactCursor:
        edit.compactCursors.push({ level: d.u32('compaction cursor'), key: d.internalKey('compaction cursor') });
        break;
      case TAG.deletedFile: {
        const level = d.u32('deleted file');
        const number = d.u64('deleted file');
        // A std::set in RocksDB: the same (level, file) twice is one deletion.
        const key = `${level}/${number}`;
        if (!deleted.has(key)) {
          deleted.add(key);
          edit.deletedFiles.push({ level, number });
        }
        break;
      }
      case TAG.newFile:
      case TAG.newFile2:
      case TAG.newFile3:
      case TAG.newFile4:
        decodeNewFile(d, tag, edit);
        break;
      case TAG.blobFileAddition:
      case TAG.blobFileAdditionDeprecated: {
        const b: BlobFileAddition = {
          number: d.u64('blob file number'),
          totalCount: d.u64('total blob count'),
          totalBytes: d.u64('total blob bytes'),
          checksumMethod: d.slice('blob checksum method').toString('latin1'),
          checksumValue: Buffer.from(d.slice('blob checksum value')),
        };
        decodeBlobCustomFields(d, 'BlobFileAddition');
        edit.blobFileAdditions.push(b);
        break;
      }
      case TAG.blobFileGarbage:
      case TAG.blobFileGarbageDeprecated: {
        const g: BlobFileGarbage = {
          number: d.u64('blob file number'),
          garbageCount: d.u64('garbage blob count'),
          garbageBytes: d.u64('garbage blob bytes'),
        };
        decodeBlobCustomFields(d, 'BlobFileGarbage');
        edit.blobFileGarbage.push(g);
        break;
      }
      case TAG.walAddition:
        edit.walAdditions.push(decodeWalAddition(d, c));
        break;
      case TAG.walAddition2:
        edit.walAdditions.push(decodeWalAddition(d, new Cursor(d.slice('WalAddition'))));
        break;
      case TAG.walDeletion:
        edit.walDeletionBefore = decodeWalDeletion(d, c);
        break;
      case TAG.walDeletion2:
        edit.walDeletionBefore = decodeWalDeletion(d, new Cursor(d.slice('WalDeletion')));
        break;
      case TAG.columnFamily:
        edit.columnFamily = d.u32('set column family id');
        break;
      case TAG.columnFamilyAdd:
        edit.columnFamilyAdd = d.slice('column family add').toString('latin1');
        break;
      case TAG.columnFamilyDrop:
        edit.columnFamilyDrop = true;
        break;
      case TAG.inAtomicGroup:
        edit.atomicGroupRemaining = d.u32('remaining entries');
        break;
      case TAG.fullHistoryTsLow: {
        const ts = d.slice('full_history_ts_low');
        if (ts.length === 0) d.fail('full_history_ts_low: empty');
        edit.fullHistoryTsLow = Buffer.from(ts);
        break;
      }
      case TAG.persistUserDefinedTimestamps: {
        const v = d.slice('persist_user_defined_timestamps');
        if (v.length !== 1) d.fail('persist_user_defined_timestamps field size');
        edit.persistUserDefinedTimestamps = v[0] === 1;
        break;
      }
      case TAG.subcompactionProgress:
        edit.subcompactionProgress = Buffer.from(d.slice('SubcompactionProgress'));
        break;
      case TAG.lastCompactedManifestFileSize:
        edit.lastCompactedManifestFileSize = fieldVarint(d, d.slice('last compacted manifest file size'), 'last compacted manifest file size');
        break;
      default:
        if ((tag & TAG.safeIgnoreMask) === 0) d.fail(`tag ${tag} (unknown)`);
        // From a newer RocksDB, explicitly safe to skip: always length-prefixed.
        d.slice(`safely ignorable tag ${tag}`);
    }
  }
  return edit;
}

/** The column family an edit applies to (0 when the edit does not say). */
export function editColumnFamily(edit: VersionEdit): number {
  return edit.columnFamily ?? 0;
}
