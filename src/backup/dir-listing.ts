// One listing of a backup directory per writing run. A writer lists meta/ and the file
// directories once, right after taking the writer lock, loads its catalog from that listing, and
// then follows its own writes and deletes here; GC, the leftovers a resumed backup may reuse,
// and the list index's key are all answered from this view instead of listing the directory
// again (each listing costs a request per 1,000 files on an object store).
//
// Why that is safe. Only the engine that took the lock before the listing, and holds it still,
// uses the view (engine.ts drops it when an operation fails, when the lock is let go, and never
// makes one without the lock). No other cairn writer runs meanwhile, and readers write nothing
// under shared*/ or private/ (under meta/ only `list`'s index, which GC leaves alone); so the
// stored files differ from the view only by what a process that ignores the lock (RocksDB's own
// engine, a lock: false writer, a person) did since.
// - GC: a file written by such a process after the listing is not in the view, so GC cannot
//   delete it; a fresh listing would show it, unreferenced by the catalog, and GC would delete a
//   foreign backup's private files in flight. What the view does hold was unreferenced by
//   manifests read after it was taken, exactly as with a fresh listing: the grace period for
//   resumable shared files (resume.ts) applies unchanged to the listed modification times.
// - Leftovers: a resumable file the view shows is checked against the store before reuse (its
//   size and CRC32C, resume.ts); one deleted meanwhile is found missing there.
// - The list index: its key for the stored files is this listing's fingerprint with the run's
//   own changes applied, i.e. the directory the catalog describes. A change made behind the
//   run's back after the listing makes the directory differ from the key, so the next `list`
//   parses the manifests; the index can be stale, never wrong. When the run cannot know what one
//   of its deletes did (files under retention) the fingerprint is given up and listed afresh.
import type { BackupEnv, FileInfo } from '../env.ts';
import { STORED_DIRS, type Catalog } from './catalog.ts';
import { ListedFiles } from './listed-files.ts';
import { META_DIR } from './layout.ts';
import { FingerprintSum, type StoredFingerprint } from './list-index.ts';

export class DirListing {
  /** meta/ as listed: name -> size. */
  readonly metas = new Map<string, number>();
  /**
   * The listed stored files; after Catalog.load, only those the catalog does not record (the
   * catalog holds the others, with their listed sizes), plus any kept aside by GC.
   */
  readonly rest = new ListedFiles();
  /** This run's writes (size) and deletes (null) of stored files since the listing. */
  private readonly changed = new Map<string, number | null>();
  private readonly sum = new FingerprintSum();
  private sumKnown = true;

  /** Lists meta/ and the file directories (in parallel: one round trip on object stores). */
  static async take(env: BackupEnv, signal?: AbortSignal): Promise<DirListing> {
    const l = new DirListing();
    await Promise.all([META_DIR, ...STORED_DIRS].map(async (p) => {
      for await (const f of env.list(p, { signal })) {
        if (p === META_DIR) {
          l.metas.set(f.name, f.size);
        } else {
          l.rest.set(f.name, f.size, f.modified);
          l.sum.add(f.name, f.size);
        }
      }
    }));
    return l;
  }

  /** The stored files' fingerprint as the run left them, or undefined if it cannot be known. */
  fingerprint(): StoredFingerprint | undefined {
    return this.sumKnown ? this.sum.value() : undefined;
  }

  /** The size of `name` in the view now, or undefined if it is not stored. */
  private sizeNow(name: string, catalog: Catalog): number | undefined {
    const c = this.changed.get(name);
    if (c !== undefined) return c ?? undefined;
    const r = this.rest.get(name);
    if (r !== undefined) return r;
    // Every record the catalog has that this run did not write was loaded from the listing.
    const i = catalog.files.find(name);
    return i === undefined ? undefined : catalog.files.fileSize(i);
  }

  /** The run stored `name` (a new file, or one written over). */
  put(name: string, size: number, catalog: Catalog): void {
    const before = this.sizeNow(name, catalog);
    if (before !== undefined) this.sum.remove(name, before);
    this.sum.add(name, size);
    this.changed.set(name, size);
  }

  /** The run deleted `name` (call before the catalog drops its record). */
  deleted(name: string, catalog: Catalog): void {
    const before = this.sizeNow(name, catalog);
    if (before !== undefined) this.sum.remove(name, before);
    this.changed.set(name, null);
    this.rest.delete(name);
  }

  /** A delete whose outcome is unknown (a version kept under retention): the fingerprint is listed afresh. */
  uncertain(): void {
    this.sumKnown = false;
  }

  /**
   * A stored file GC leaves (under retention) whose catalog record is about to be dropped: it
   * stays in the view.
   */
  keepAside(name: string, catalog: Catalog): void {
    if (this.changed.has(name) || this.rest.has(name)) return; // in the view already
    const size = this.sizeNow(name, catalog);
    if (size !== undefined) this.rest.set(name, size);
  }

  /** A meta/ file the run deleted. */
  metaDeleted(name: string): void {
    this.metas.delete(name);
  }

  /**
   * Every stored file under `prefix` (a file directory, or '' for all) that may be unreferenced:
   * the listed ones the catalog did not take, the catalog's records no backup references, and
   * the run's own writes; each once (a reused leftover, in both the rest and the catalog, comes
   * from the rest). Callers judge each against the catalog, as they would a listing's entries,
   * and may delete files as they go: a deleted file leaves the view, not the iteration.
   * Entries not from the listing carry no modification time; none carries a checksum.
   */
  *unreferencedCandidates(catalog: Catalog, prefix = ''): IterableIterator<FileInfo> {
    for (const f of this.rest.entries()) if (f.name.startsWith(prefix) && !this.changed.has(f.name)) yield f;
    const files = catalog.files;
    for (const i of files.indices()) {
      if (files.refs(i) !== 0) continue;
      const name = files.name(i);
      if (name.startsWith(prefix) && !this.changed.has(name) && !this.rest.has(name)) yield { name, size: files.fileSize(i) };
    }
    for (const [name, size] of this.changed) if (size !== null && name.startsWith(prefix)) yield { name, size };
  }

  /** meta/ entries as listed (GC removes temporaries RocksDB left there). */
  *metaFiles(): IterableIterator<FileInfo> {
    for (const [name, size] of this.metas) yield { name, size };
  }
}
