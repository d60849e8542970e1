// The stored files of a backup directory, one record per distinct file however many backups use
// it, in parallel typed arrays indexed by a small integer; and the compact list of such indices
// that stands for one backup's files. A directory of hundreds of backups of a DB with 100k+ files
// then costs memory in proportion to its distinct files, not to backups x files.

import { NameTable } from './name-table.ts';
import { widened } from './typed-arrays.ts';

export { IndexList, IndexListBuilder, keyframeBase, type KeyframeBase } from './index-list.ts';

const HAS_CRC = 1;

/** Distinct stored files: name, size, crc32c and how many loaded backups reference each. */
export class FileTable {
  /** Names by record index, packed (name-table.ts). */
  private readonly names = new NameTable();
  private sizes = new Float64Array(1024);
  private crcs = new Uint32Array(1024);
  private flags = new Uint8Array(1024);
  private refCounts = new Uint32Array(1024);
  /** Per record, the stamp of the last backup that named it (duplicate entries in one manifest). */
  private marks = new Uint32Array(1024);

  get size(): number {
    return this.names.size;
  }

  /** One more than the highest index given out so far. */
  get capacity(): number {
    return this.names.capacity;
  }

  find(name: string): number | undefined {
    return this.names.find(name);
  }

  /** Whether record i exists (any i >= 0). */
  has(i: number): boolean {
    return this.names.is(i, undefined);
  }

  /** Whether record i is `name` (cheaper than comparing name(i)). */
  nameIs(i: number, name: string): boolean {
    return this.names.is(i, name);
  }

  /** A new record with no references. */
  insert(name: string, size: number, crc32c: number | undefined): number {
    const i = this.names.add(name);
    if (i >= this.sizes.length) this.grow();
    this.sizes[i] = size;
    this.refCounts[i] = 0;
    this.marks[i] = 0;
    this.setCrc(i, crc32c);
    return i;
  }

  /** Forgets a record (its slot is reused). */
  delete(i: number): void {
    this.names.remove(i);
  }

  name(i: number): string {
    return this.names.get(i)!;
  }

  fileSize(i: number): number {
    return this.sizes[i];
  }

  crc32c(i: number): number | undefined {
    return this.flags[i] & HAS_CRC ? this.crcs[i] : undefined;
  }

  setCrc(i: number, crc32c: number | undefined): void {
    if (crc32c === undefined) {
      this.flags[i] &= ~HAS_CRC;
    } else {
      this.crcs[i] = crc32c;
      this.flags[i] |= HAS_CRC;
    }
  }

  /** Replaces what a record says of its file (a stored file no backup references any more, overwritten). */
  reset(i: number, size: number, crc32c: number | undefined): void {
    this.sizes[i] = size;
    this.setCrc(i, crc32c);
  }

  refs(i: number): number {
    return this.refCounts[i];
  }

  ref(i: number): void {
    this.refCounts[i]++;
  }

  unref(i: number): void {
    if (this.refCounts[i] > 0) this.refCounts[i]--;
  }

  /** Marks record i for the backup `stamp`; false when it was marked for it already. */
  mark(i: number, stamp: number): boolean {
    if (this.marks[i] === stamp) return false;
    this.marks[i] = stamp;
    return true;
  }

  /** Indices of every record. */
  *indices(): IterableIterator<number> {
    yield* this.names.slots();
  }

  private grow(): void {
    const n = this.sizes.length * 2;
    this.sizes = widened(this.sizes, n);
    this.crcs = widened(this.crcs, n);
    this.flags = widened(this.flags, n);
    this.refCounts = widened(this.refCounts, n);
    this.marks = widened(this.marks, n);
  }
}
