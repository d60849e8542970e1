// What a MANIFEST record (a VersionEdit, db/version_edit.h) says, as decoded by version-edit.ts.

export interface NewFile {
  level: number;
  number: number;
  size: number;
  /** Index into db_paths / cf_paths; 0 (the DB directory) unless NewFile3/4 says otherwise. */
  pathId: number;
  smallestKey: Buffer;
  largestKey: Buffer;
  /** Absent for the oldest (kNewFile) encoding, and when not a safe integer. */
  smallestSeqno?: number;
  largestSeqno?: number;
  oldestBlobFileNumber?: number;
  epochNumber?: number;
  fileCreationTime?: number;
  oldestAncesterTime?: number;
  fileChecksum?: Buffer;
  fileChecksumFuncName?: string;
  temperature?: number;
  markedForCompaction?: boolean;
}

export interface DeletedFile {
  level: number;
  number: number;
}

export interface BlobFileAddition {
  number: number;
  totalCount: number;
  totalBytes: number;
  checksumMethod: string;
  checksumValue: Buffer;
}

export interface BlobFileGarbage {
  number: number;
  garbageCount: number;
  garbageBytes: number;
}

export interface WalAddition {
  number: number;
  /** Bytes of the WAL known to be synced when the edit was written. */
  syncedSize?: number;
}

export interface VersionEdit {
  comparator?: string;
  dbId?: string;
  logNumber?: number;
  prevLogNumber?: number;
  nextFileNumber?: number;
  lastSequence?: number;
  minLogNumberToKeep?: number;
  maxColumnFamily?: number;
  /** Column family the edit applies to; absent means the default family, 0. */
  columnFamily?: number;
  columnFamilyAdd?: string;
  columnFamilyDrop?: boolean;
  /** Present when the edit belongs to an atomic group: how many edits of it follow. */
  atomicGroupRemaining?: number;
  compactCursors: { level: number; key: Buffer }[];
  deletedFiles: DeletedFile[];
  newFiles: NewFile[];
  blobFileAdditions: BlobFileAddition[];
  blobFileGarbage: BlobFileGarbage[];
  walAdditions: WalAddition[];
  /** Every WAL with a number below this one is obsolete. */
  walDeletionBefore?: number;
  fullHistoryTsLow?: Buffer;
  persistUserDefinedTimestamps?: boolean;
  lastCompactedManifestFileSize?: number;
  /** Raw bytes; only meaningful to RocksDB's resumable compaction. */
  subcompactionProgress?: Buffer;
}
