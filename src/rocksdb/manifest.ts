// Replays a MANIFEST the way RocksDB's recovery does (db/version_edit_handler.cc,
// db/version_builder.cc) to learn which files make up the DB: the live table and blob
// files of every column family and the smallest WAL number still needed.
import { open } from 'node:fs/promises';
import { corruption } from '../errors.ts';
import { readLogRecords } from './log-reader.ts';
import { decodeVersionEdit, editColumnFamily, type VersionEdit } from './version-edit.ts';

export interface ManifestState {
  /** The default column family's comparator name. */
  comparator?: string;
  dbId?: string;
  /** As recorded in the MANIFEST. RocksDB (and `ldb manifest_dump`) use this + 1 once open. */
  nextFileNumber: number;
  lastSequence: number;
  /**
   * Smallest log number any live column family still needs (WAL files >= this are live):
   * the minimum of the column families' log numbers, lowered to min_log_number_to_keep
   * when the MANIFEST records a smaller one. That only happens with two-phase commit,
   * where a WAL holding a prepared but uncommitted transaction must outlive the flush
   * of its data; without 2PC the two agree, so the result is the set RocksDB keeps in
   * either mode (a superset of what recovery replays).
   */
  minLogNumber: number;
  prevLogNumber: number;
  /** Largest min_log_number_to_keep recorded, 0 if none. */
  minLogNumberToKeep: number;
  maxColumnFamily: number;
  columnFamilies: { id: number; name: string; logNumber: number }[];
  tableFiles: { number: number; size: number; columnFamily: number; level: number; checksum?: FileChecksum; temperature?: number }[];
  blobFiles: { number: number; totalBytes: number; columnFamily: number; checksum?: FileChecksum }[];
  /** WALs tracked in the MANIFEST (track_and_verify_wals_in_manifest); usually empty. */
  trackedWals: { number: number; syncedSize?: number }[];
}

/**
 * What a DB made with a file checksum generator (options.file_checksum_gen_factory) recorded for
 * a table or blob file: the generator's name and its raw checksum bytes.
 */
export interface FileChecksum {
  funcName: string;
  value: Buffer;
}

interface TableMeta {
  number: number;
  size: number;
  level: number;
  oldestBlobFileNumber: number; // 0: references no blob file
  checksum?: FileChecksum;
  temperature?: number;
}

interface BlobMeta {
  number: number;
  totalCount: number;
  totalBytes: number;
  garbageCount: number;
  garbageBytes: number;
  linkedTables: Set<number>; // tables whose oldest referenced blob file is this one
  checksum?: FileChecksum;
}

// RocksDB writes "Unknown" (kUnknownFileChecksumFuncName) or nothing when no generator ran.
const recorded = (funcName: string | undefined, value: Buffer | undefined): FileChecksum | undefined =>
  funcName && funcName !== 'Unknown' && value !== undefined ? { funcName, value } : undefined;

interface ColumnFamily {
  id: number;
  name: string;
  logNumber: number;
  comparator?: string;
  tables: Map<number, TableMeta>;
  blobs: Map<number, BlobMeta>;
}

class Replay {
  readonly file: string | undefined;
  readonly cfs = new Map<number, ColumnFamily>();
  readonly wals = new Map<number, number | undefined>();
  minWalToKeep = 0;
  dbId?: string;
  nextFileNumber?: number;
  lastSequence?: number;
  prevLogNumber = 0;
  maxColumnFamily = 0;
  minLogNumberToKeep = 0;
  hasLogNumber = false;

  constructor(file: string | undefined) {
    this.file = file;
    this.cfs.set(0, newColumnFamily(0, 'default'));
  }

  fail(msg: string): never {
    throw corruption(`${this.file ?? 'MANIFEST'}: ${msg}`, { file: this.file });
  }

  apply(edit: VersionEdit): void {
    const cfId = editColumnFamily(edit);
    let cf: ColumnFamily | undefined;
    if (edit.columnFamilyAdd !== undefined) {
      if (this.cfs.has(cfId)) this.fail(`adding the same column family twice: ${edit.columnFamilyAdd}`);
      cf = newColumnFamily(cfId, edit.columnFamilyAdd);
      this.cfs.set(cfId, cf);
    } else if (edit.columnFamilyDrop) {
      if (!this.cfs.delete(cfId)) this.fail(`dropping non-existing column family ${cfId}`);
    } else if (edit.walAdditions.length > 0) {
      for (const w of edit.walAdditions) {
        if (w.number < this.minWalToKeep) continue;
        const known = this.wals.get(w.number);
        if (!this.wals.has(w.number) || (w.syncedSize ?? 0) > (known ?? 0)) this.wals.set(w.number, w.syncedSize);
      }
    } else if (edit.walDeletionBefore !== undefined) {
      this.minWalToKeep = Math.max(this.minWalToKeep, edit.walDeletionBefore);
      for (const n of [...this.wals.keys()]) if (n < edit.walDeletionBefore) this.wals.delete(n);
    } else {
      cf = this.cfs.get(cfId);
      if (cf === undefined) this.fail(`record referencing unknown column family ${cfId}`);
      this.applyFiles(cf, edit);
    }

    if (edit.dbId !== undefined) this.dbId = edit.dbId;
    if (cf !== undefined) {
      // RocksDB ignores (with a warning) a log number that goes backwards.
      if (edit.logNumber !== undefined && edit.logNumber >= cf.logNumber) {
        cf.logNumber = edit.logNumber;
        this.hasLogNumber = true;
      }
      if (edit.comparator !== undefined) cf.comparator = edit.comparator;
    }
    if (edit.prevLogNumber !== undefined) this.prevLogNumber = edit.prevLogNumber;
    if (edit.nextFileNumber !== undefined) this.nextFileNumber = edit.nextFileNumber;
    if (edit.maxColumnFamily !== undefined) this.maxColumnFamily = edit.maxColumnFamily;
    if (edit.minLogNumberToKeep !== undefined) {
      this.minLogNumberToKeep = Math.max(this.minLogNumberToKeep, edit.minLogNumberToKeep);
    }
    if (edit.lastSequence !== undefined) this.lastSequence = edit.lastSequence;
  }

  // Same order as VersionBuilder::Apply: blob files first (tables link to them), then
  // deletions before additions so a file can move between levels in one edit.
  applyFiles(cf: ColumnFamily, edit: VersionEdit): void {
    for (const b of edit.blobFileAdditions) {
      if (cf.blobs.has(b.number)) this.fail(`blob file #${b.number} already added`);
      cf.blobs.set(b.number, {
        number: b.number,
        totalCount: b.totalCount,
        totalBytes: b.totalBytes,
        garbageCount: 0,
        garbageBytes: 0,
        linkedTables: new Set(),
        checksum: recorded(b.checksumMethod, b.checksumValue),
      });
    }
    for (const g of edit.blobFileGarbage) {
      const b = cf.blobs.get(g.number) ?? this.fail(`blob file #${g.number} not found`);
      b.garbageCount += g.garbageCount;
      b.garbageBytes += g.garbageBytes;
      if (b.garbageCount > b.totalCount || b.garbageBytes > b.totalBytes) {
        this.fail(`garbage overflow for blob file #${g.number}`);
      }
    }
    for (const del of edit.deletedFiles) {
      const t = cf.tables.get(del.number);
      if (t === undefined || t.level !== del.level) {
        this.fail(
          `cannot delete table file #${del.number} from level ${del.level} since it is ` +
            (t === undefined ? 'not in the LSM tree' : `on level ${t.level}`),
        );
      }
      cf.blobs.get(t.oldestBlobFileNumber)?.linkedTables.delete(t.number);
      cf.tables.delete(del.number);
    }
    for (const f of edit.newFiles) {
      const existing = cf.tables.get(f.number);
      if (existing !== undefined) {
        this.fail(`cannot add table file #${f.number} to level ${f.level} since it is already on level ${existing.level}`);
      }
      const oldest = f.oldestBlobFileNumber ?? 0;
      cf.tables.set(f.number, {
        number: f.number, size: f.size, level: f.level, oldestBlobFileNumber: oldest,
        checksum: recorded(f.fileChecksumFuncName, f.fileChecksum), temperature: f.temperature,
      });
      cf.blobs.get(oldest)?.linkedTables.add(f.number);
    }
  }

  // VersionBuilder::SaveBlobFilesTo: a blob file survives while some table still links
  // it or it has live (non-garbage) blobs, but never below the oldest blob file that any
  // table links: nothing can reference blobs older than every table's oldest reference.
  liveBlobs(cf: ColumnFamily): BlobMeta[] {
    const numbers = [...cf.blobs.keys()].sort((a, b) => a - b);
    const firstLinked = numbers.find((n) => cf.blobs.get(n)!.linkedTables.size > 0);
    if (firstLinked === undefined) return [];
    return numbers
      .filter((n) => n >= firstLinked)
      .map((n) => cf.blobs.get(n)!)
      .filter((b) => b.linkedTables.size > 0 || b.garbageCount < b.totalCount);
  }

  finish(): ManifestState {
    const missing = [
      this.hasLogNumber ? undefined : 'log_file_number',
      this.nextFileNumber === undefined ? 'next_file_number' : undefined,
      this.lastSequence === undefined ? 'last_sequence' : undefined,
    ].filter((m) => m !== undefined);
    if (missing.length > 0) this.fail(`no ${missing.join(', ')} entry in MANIFEST`);

    const cfs = [...this.cfs.values()].sort((a, b) => a.id - b.id);
    let minLogNumber = Math.min(...cfs.map((cf) => cf.logNumber));
    if (this.minLogNumberToKeep > 0) minLogNumber = Math.min(minLogNumber, this.minLogNumberToKeep);
    const state: ManifestState = {
      nextFileNumber: this.nextFileNumber!,
      lastSequence: this.lastSequence!,
      minLogNumber,
      prevLogNumber: this.prevLogNumber,
      minLogNumberToKeep: this.minLogNumberToKeep,
      maxColumnFamily: this.maxColumnFamily,
      columnFamilies: cfs.map((cf) => ({ id: cf.id, name: cf.name, logNumber: cf.logNumber })),
      tableFiles: cfs.flatMap((cf) =>
        [...cf.tables.values()]
          .sort((a, b) => a.level - b.level || a.number - b.number)
          .map((t) => withOptional({ number: t.number, size: t.size, columnFamily: cf.id, level: t.level }, { checksum: t.checksum, temperature: t.temperature || undefined /* 0 is kUnknown */ })),
      ),
      blobFiles: cfs.flatMap((cf) =>
        this.liveBlobs(cf).map((b) => withOptional({ number: b.number, totalBytes: b.totalBytes, columnFamily: cf.id }, { checksum: b.checksum })),
      ),
      trackedWals: [...this.wals.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([number, syncedSize]) => (syncedSize === undefined ? { number } : { number, syncedSize })),
    };
    const comparator = this.cfs.get(0)?.comparator;
    if (comparator !== undefined) state.comparator = comparator;
    if (this.dbId !== undefined) state.dbId = this.dbId;
    return state;
  }
}

/** `base` with the fields of `extra` that are defined: files without them look as they always did. */
function withOptional<T extends object, E extends object>(base: T, extra: E): T & Partial<E> {
  const out: T & Partial<E> = { ...base };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function newColumnFamily(id: number, name: string): ColumnFamily {
  return { id, name, logNumber: 0, tables: new Map(), blobs: new Map() };
}

export function replayManifest(data: Buffer, file?: string): ManifestState {
  const replay = new Replay(file);
  // AtomicGroupReadBuffer: an atomic group's edits are applied together once its last
  // one is read; a group cut short by the end of the file is dropped, as in RocksDB.
  let group: VersionEdit[] = [];
  let groupSize = 0;
  for (const record of readLogRecords(data, { file, tolerateTail: true })) {
    const edit = decodeVersionEdit(record, file);
    if (edit.atomicGroupRemaining !== undefined) {
      if (group.length === 0) groupSize = edit.atomicGroupRemaining + 1;
      group.push(edit);
      if (group.length + edit.atomicGroupRemaining !== groupSize) replay.fail('corrupted atomic group');
      if (group.length === groupSize) {
        for (const e of group) replay.apply(e);
        group = [];
      }
    } else {
      if (group.length > 0) replay.fail('corrupted atomic group');
      replay.apply(edit);
    }
  }
  return replay.finish();
}

/**
 * Reads and replays a MANIFEST. `sizeLimit` caps how much is read: a live MANIFEST keeps
 * growing, and a backup must see exactly the prefix whose size it recorded.
 */
export async function readManifest(path: string, sizeLimit?: number): Promise<ManifestState> {
  const fh = await open(path, 'r');
  let data: Buffer;
  try {
    const { size } = await fh.stat();
    const want = sizeLimit === undefined ? size : Math.min(size, sizeLimit);
    data = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(data, got, want - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    data = data.subarray(0, got);
  } finally {
    await fh.close();
  }
  return replayManifest(data, path);
}
