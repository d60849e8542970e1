// The loaded state of a backup directory, as RocksDB's BackupEngine holds it after Initialize():
// the valid backups, one record per distinct stored file with its reference count, and the
// corrupt backups with the files they protect from garbage collection. Manifests are parsed as
// streams straight into that form: a backup keeps its header and a compact list of file indices,
// nothing per backup and file beyond that.
import { manifestBytesToLoad } from '../gc-tuning.ts';
import type { BackupEnv } from '../env.ts';
import { CairnError, corruption, isCairnError, notFound } from '../errors.ts';
import { FileTable, IndexList, keyframeBase, type IndexListBuilder, type KeyframeBase } from './file-table.ts';
import { META_DIR, PRIVATE_DIR, SHARED_CHECKSUM_DIR, SHARED_DIR, dbFileNameOf, isSharedName, metaName, parseBackupId, validateBackupFileName } from './layout.ts';
import { BackupMetaDecoder, type BackupMetaHeader } from './meta-codec.ts';
import { MetaReader } from './meta-reader.ts';
import { ListedFiles } from './listed-files.ts';
import { RestoreNameCheck } from './restore-names.ts';
import type { BackupFileDetail, BackupInfo, CorruptBackup } from './types.ts';

export interface CatalogBackup extends BackupMetaHeader {
  id: number;
  /** Its files, as indices into the catalog's file table, in manifest order. */
  files: IndexList;
  /** Sum of its files' sizes. */
  size: number;
  /** The manifest names files kept in another backup directory (schema 2 `ni::excluded`). */
  hasExcluded: boolean;
}

export interface LoadOptions {
  /** Stop after this many valid backups, newest first (read-only opens). */
  maxValidBackups?: number;
  /** Load only these backups (read-only opens). */
  onlyIds?: ReadonlySet<number>;
  signal?: AbortSignal;
  /**
   * The directory's listing of meta/ (name -> size) and of the file directories, if taken
   * already. The load takes the files it records out of `stored` and puts back any it drops,
   * so that afterwards `stored` holds exactly the listed files no valid backup references.
   */
  listing?: { metas: Map<string, number>; stored: StoredListing };
}

/** Stored files as listed, name -> size: a Map, or dir-listing.ts's compact form of one. */
export interface StoredListing {
  get(name: string): number | undefined;
  set(name: string, size: number): unknown;
  delete(name: string): boolean;
}

/** Where the files backups use are stored. */
export const STORED_DIRS = [SHARED_DIR, SHARED_CHECKSUM_DIR, PRIVATE_DIR];

/** name -> size of every file under meta/. */
export async function listMetas(env: BackupEnv, signal?: AbortSignal): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const f of env.list(META_DIR, { signal })) out.set(f.name, f.size);
  return out;
}

/** Every stored file under STORED_DIRS, name -> size (in parallel: one round trip instead of one per directory). */
export async function listStored(env: BackupEnv, signal?: AbortSignal): Promise<ListedFiles> {
  const out = new ListedFiles();
  await Promise.all(STORED_DIRS.map(async (p) => {
    for await (const f of env.list(p, { signal })) out.set(f.name, f.size);
  }));
  return out;
}

export class Catalog {
  readonly files = new FileTable();
  readonly backups = new Map<number, CatalogBackup>();
  readonly corrupt = new Map<number, CairnError>();
  /** Highest id with a manifest when loaded (valid or not), or created since. */
  latestBackupId = 0;
  /** Names in the manifests of corrupt backups that parsed: kept by GC until those are deleted. */
  private protectedNames = new Set<string>();
  /**
   * Corrupt backups whose manifest could not be read to its end (undecodable, over the size
   * limit, unreadable): which shared files they need is unknown, so while one exists no shared
   * file is garbage. (Protecting nothing here once let a writable open delete every table file
   * of a directory whose manifests were merely over the size limit.)
   */
  private unreadable = new Set<number>();
  /** A corrupt backup was removed since protectedNames was built. */
  private protectedStale = false;
  private stamp = 0;
  private readonly restoreNames = new RestoreNameCheck();
  /** While loading: the last backup stored whole, which the next ones may be stored as diffs of. */
  private keyframe: KeyframeBase | undefined;

  /** Lists the directory and parses every manifest (newest first). */
  static async load(env: BackupEnv, opts: LoadOptions = {}): Promise<Catalog> {
    const { signal } = opts;
    const c = new Catalog();
    const [metas, stored] = opts.listing
      ? [opts.listing.metas, opts.listing.stored]
      : await Promise.all([listMetas(env, signal), listStored(env, signal)]);
    const toRead: { id: number; size: number }[] = [];
    for (const [name, size] of metas) {
      const id = parseBackupId(name.slice(META_DIR.length));
      if (id !== undefined && (opts.onlyIds === undefined || opts.onlyIds.has(id))) toRead.push({ id, size });
    }
    toRead.sort((a, b) => b.id - a.id);
    c.latestBackupId = toRead[0]?.id ?? 0;
    manifestBytesToLoad(toRead.reduce((sum, m) => sum + m.size, 0));
    const reader = new MetaReader(env, toRead, signal);
    try {
      let validLeft = opts.maxValidBackups ?? Number.MAX_SAFE_INTEGER;
      for (let k = 0; k < toRead.length && validLeft > 0; k++) {
        const id = toRead[k].id;
        try {
          await c.loadBackup(id, reader.read(k), stored);
          validLeft--;
        } catch (e) {
          if (!(isCairnError(e, 'Corruption') || isCairnError(e, 'NotSupported') || isCairnError(e, 'NotFound'))) throw e;
          c.corrupt.set(id, e.code === 'NotFound' ? corruption(`backup ${id}: ${e.message}`, { backupId: id, file: e.file, cause: e }) : e);
        }
      }
    } finally {
      c.keyframe = undefined;
      await reader.close();
    }
    return c;
  }

  /**
   * Parses one manifest into the catalog. A manifest that parses but names a bad, duplicate,
   * missing or resized file, or disagrees with another backup on a shared file (RocksDB's
   * AddFile checks), leaves the catalog as it was except that every name it lists is protected.
   */
  private async loadBackup(id: number, chunks: AsyncIterable<Uint8Array>, stored: StoredListing): Promise<void> {
    const file = metaName(id);
    const files = this.files;
    const stamp = ++this.stamp;
    const list = IndexList.builder(this.keyframe);
    const crcFilled: number[] = [];
    const excluded: string[] = [];
    // As the manifest is checked whole before it is trusted, the first bad entry is the error
    // reported, and a conflict with other backups only when no entry is bad.
    let bad: CairnError | undefined;
    let conflict: CairnError | undefined;
    const namesAfterBad: string[] = [];
    let size = 0;
    let last = -2;
    // Two entries restoring to one DB file name: restore refuses such a backup, so loading
    // flags it as corrupt (verify and list report it) rather than passing it.
    const restoreNames = this.restoreNames;
    restoreNames.begin();
    const decoder = new BackupMetaDecoder(file, (f) => {
      if (bad) {
        namesAfterBad.push(f.name);
        return;
      }
      try {
        // Backups of one DB list mostly the same files in the same order: the record after the
        // previous entry's is tried before a look-up by name.
        let i = files.nameIs(last + 1, f.name) ? last + 1 : files.find(f.name);
        // A name already in the table has passed the name checks and been found in the listing
        // (with the size recorded); a private name there can only be this backup's own.
        if (i === undefined) validateBackupFileName(f.name, id, file);
        if (f.excluded) {
          excluded.push(f.name);
          return;
        }
        if (i !== undefined && !files.mark(i, stamp)) throw corruption(`${file} lists ${f.name} twice`, { file, backupId: id });
        const storedSize = i !== undefined ? files.fileSize(i) : stored.get(f.name);
        if (storedSize === undefined) throw corruption(`${file}: ${f.name} is missing from the backup directory`, { file: f.name, backupId: id });
        if (f.size !== undefined && f.size !== storedSize) {
          throw corruption(`${file}: ${f.name} is ${storedSize} bytes, the manifest says ${f.size}`, { file: f.name, backupId: id });
        }
        if (i === undefined) {
          i = files.insert(f.name, storedSize, f.crc32c);
          files.mark(i, stamp);
          // Every listed file is in the listing or in the table, not both: memory for one copy
          // of the names (a record removed again goes back to the listing).
          stored.delete(f.name);
        } else if (!conflict) {
          conflict = this.conflict(i, f.name, storedSize, f.crc32c, id);
          if (!conflict && files.crc32c(i) === undefined && f.crc32c !== undefined) {
            files.setCrc(i, f.crc32c);
            crcFilled.push(i);
          }
        }
        // (The same name twice was refused above: another entry means another name.)
        const other = restoreNames.add(f.name, i);
        if (other >= 0) {
          if (files.refs(i) === 0) this.unlist(i, stored);
          throw corruption(`${file}: ${files.name(other)} and ${f.name} both restore to ${dbFileNameOf(f.name)}`, { file: f.name, backupId: id });
        }
        files.ref(i);
        list.push(i);
        last = i;
        size += storedSize;
      } catch (e) {
        if (!isCairnError(e)) throw e;
        bad = e;
        namesAfterBad.push(f.name);
      }
    });
    let header: BackupMetaHeader;
    try {
      for await (const c of chunks) decoder.push(c);
      header = decoder.end();
    } catch (e) {
      this.undo(list, crcFilled, stored);
      this.unreadable.add(id);
      throw e;
    }
    const failed = bad ?? conflict;
    if (failed) {
      for (const i of list) this.protectedNames.add(files.name(i));
      for (const n of [...excluded, ...namesAfterBad]) this.protectedNames.add(n);
      this.undo(list, crcFilled, stored);
      throw failed;
    }
    const built = list.build();
    if (built.isKeyframe) this.keyframe = keyframeBase(built, files.capacity);
    this.backups.set(id, { id, ...header, files: built, size, hasExcluded: excluded.length > 0 });
  }

  /** Forgets record i, unreferenced, putting its file back into the listing (while loading). */
  private unlist(i: number, stored: StoredListing): void {
    stored.set(this.files.name(i), this.files.fileSize(i));
    this.files.delete(i);
  }

  private undo(list: IndexListBuilder, crcFilled: number[], stored: StoredListing): void {
    for (const i of crcFilled) this.files.setCrc(i, undefined);
    for (const i of list) {
      this.files.unref(i);
      if (this.files.refs(i) === 0) this.unlist(i, stored);
    }
  }

  /** RocksDB's BackupMeta::AddFile: a shared file has one size and one checksum in every backup. */
  private conflict(i: number, name: string, size: number, crc32c: number | undefined, id: number): CairnError | undefined {
    const haveSize = this.files.fileSize(i);
    if (haveSize !== size) return corruption(`size mismatch for ${name}: ${haveSize} in one backup, ${size} in backup ${id}`, { file: name, backupId: id });
    const haveCrc = this.files.crc32c(i);
    if (haveCrc !== undefined && crc32c !== undefined && haveCrc !== crc32c) {
      return corruption(`checksum mismatch for ${name}: ${haveCrc} in one backup, ${crc32c} in backup ${id}`, { file: name, backupId: id });
    }
    return undefined;
  }

  /**
   * Adds a backup just published. A stored file no backup references any more (left by an
   * interrupted run or a deletion not yet collected) takes the new size and checksum.
   */
  add(id: number, header: BackupMetaHeader, entries: readonly { name: string; size: number; crc32c?: number }[]): CatalogBackup {
    for (const f of entries) {
      const i = this.files.find(f.name);
      if (i === undefined || this.files.refs(i) === 0) continue;
      const e = this.conflict(i, f.name, f.size, f.crc32c, id);
      if (e) throw e;
    }
    const list = IndexList.builder();
    let size = 0;
    for (const f of entries) {
      let i = this.files.find(f.name);
      if (i === undefined) i = this.files.insert(f.name, f.size, f.crc32c);
      else if (this.files.refs(i) === 0) this.files.reset(i, f.size, f.crc32c);
      else if (this.files.crc32c(i) === undefined) this.files.setCrc(i, f.crc32c);
      this.files.ref(i);
      list.push(i);
      size += f.size;
    }
    const b: CatalogBackup = { id, ...header, files: list.build(), size, hasExcluded: false };
    this.backups.set(id, b);
    this.latestBackupId = Math.max(this.latestBackupId, id);
    return b;
  }

  /**
   * Forgets a backup whose manifest is gone. Its files' records stay (with fewer references)
   * until garbage collection deletes the unreferenced ones and calls dropUnreferenced().
   */
  remove(id: number): void {
    const b = this.backups.get(id);
    if (b) {
      this.backups.delete(id);
      for (const i of b.files) this.files.unref(i);
    } else if (this.corrupt.delete(id)) {
      this.unreadable.delete(id);
      this.protectedStale = true;
    }
  }

  /** Drops the records of files no backup references (after GC deleted them). */
  dropUnreferenced(): void {
    // By index, not through an iterator spread into an array: at 400k records that transient
    // array and its iteration results cost 30+ MiB of heap at the end of every writing command.
    const files = this.files;
    for (let i = 0; i < files.capacity; i++) if (files.has(i) && files.refs(i) === 0) files.delete(i);
  }

  /** A stored file that a valid backup uses, or a corrupt one names. */
  isNeeded(name: string): boolean {
    const i = this.files.find(name);
    return (i !== undefined && this.files.refs(i) > 0) || this.protectedNames.has(name) || (this.unreadable.size > 0 && isSharedName(name));
  }

  /** Corrupt backups whose manifests could not be read whole: GC keeps every shared file meanwhile. */
  get unreadableBackups(): number[] {
    return [...this.unreadable].sort((a, b) => a - b);
  }

  /** Re-reads the names the remaining corrupt manifests protect, after one was deleted. */
  async refreshProtected(env: BackupEnv, signal?: AbortSignal): Promise<void> {
    if (!this.protectedStale) return;
    const names = new Set<string>();
    const unreadable = new Set<number>();
    for (const id of this.corrupt.keys()) {
      const found: string[] = [];
      try {
        const st = await env.stat(metaName(id), { signal });
        if (!st) continue;
        const reader = new MetaReader(env, [{ id, size: st.size }], signal);
        try {
          const decoder = new BackupMetaDecoder(metaName(id), (f) => found.push(f.name));
          for await (const c of reader.read(0)) decoder.push(c);
          decoder.end();
        } finally {
          await reader.close();
        }
      } catch (e) {
        if (signal?.aborted) throw e;
        unreadable.add(id); // what it needs is unknown: every shared file stays
        continue;
      }
      for (const n of found) names.add(n);
    }
    this.protectedNames = names;
    this.unreadable = unreadable;
    this.protectedStale = false;
  }

  get latestValidBackupId(): number | undefined {
    let max: number | undefined;
    for (const id of this.backups.keys()) if (max === undefined || id > max) max = id;
    return max;
  }

  /** The backup, or its corruption error, or NotFound. */
  require(id: number, where: string): CatalogBackup {
    const err = this.corrupt.get(id);
    if (err) throw err;
    const b = this.backups.get(id);
    if (!b) throw notFound(`backup ${id} not found in ${where}`, { backupId: id });
    return b;
  }

  /** A backup's files with what the catalog knows of each, in manifest order. */
  *filesOf(b: CatalogBackup): IterableIterator<BackupFileDetail> {
    for (const i of b.files) yield { name: this.files.name(i), size: this.files.fileSize(i), crc32c: this.files.crc32c(i), usedBy: this.files.refs(i) };
  }

  info(b: CatalogBackup, details = false): BackupInfo {
    const info: BackupInfo = { id: b.id, timestamp: b.timestamp, sequence: b.sequence, size: b.size, numFiles: b.files.length, appMetadata: b.appMetadata };
    if (details) info.files = [...this.filesOf(b)];
    return info;
  }

  /** Valid backups, oldest first. */
  list(details = false): BackupInfo[] {
    return [...this.backups.values()].sort((a, b) => a.id - b.id).map((b) => this.info(b, details));
  }

  listCorrupt(): CorruptBackup[] {
    return [...this.corrupt.entries()].sort((a, b) => a[0] - b[0]).map(([id, error]) => ({ id, error }));
  }
}

/**
 * Asked when reading backup `id` failed on (or found) missing files: if its manifest is gone
 * too, another process deleted the backup meanwhile (readers take no lock), and the error to
 * report is that, not a damaged backup.
 */
export async function deletedMeanwhile(env: BackupEnv, id: number, what: string, signal: AbortSignal | undefined, cause?: unknown): Promise<CairnError | undefined> {
  if (signal?.aborted) return undefined;
  // (A failed stat proves nothing: the original error stands.)
  if ((await env.stat(metaName(id), { signal }).catch(() => 'unknown')) !== undefined) return undefined;
  return deletedError(id, what, cause);
}

/** The error of a backup whose manifest another process deleted while it was being `what`. */
export function deletedError(id: number, what: string, cause?: unknown): CairnError {
  return notFound(`backup ${id} was deleted while it was being ${what} (a purge or delete by another process)`, { backupId: id, ...(cause === undefined ? {} : { cause }) });
}
