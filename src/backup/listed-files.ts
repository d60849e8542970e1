// Stored files as listed, by name: sizes and modification times in typed arrays by slot, the
// names packed (name-table.ts), so that a listing of hundreds of thousands of files costs little
// more than their names' bytes rather than a string and an object per file.
import type { FileInfo } from '../env.ts';
import type { StoredListing } from './catalog.ts';
import { NameTable } from './name-table.ts';
import { widened } from './typed-arrays.ts';

/** Listed files: Catalog.load's form of a listing (a StoredListing), and DirListing's. */
export class ListedFiles implements StoredListing {
  private readonly names = new NameTable();
  private sizes = new Float64Array(1024);
  /** NaN: not known (a file put back by the catalog or GC). */
  private times = new Float64Array(1024);

  has(name: string): boolean {
    return this.names.find(name) !== undefined;
  }

  get(name: string): number | undefined {
    const i = this.names.find(name);
    return i === undefined ? undefined : this.sizes[i];
  }

  set(name: string, size: number, modified?: number): this {
    let i = this.names.find(name);
    if (i === undefined) {
      i = this.names.add(name);
      if (i >= this.sizes.length) {
        this.sizes = widened(this.sizes, this.sizes.length * 2);
        this.times = widened(this.times, this.times.length * 2);
      }
    }
    this.sizes[i] = size;
    this.times[i] = modified ?? NaN;
    return this;
  }

  delete(name: string): boolean {
    const i = this.names.find(name);
    if (i === undefined) return false;
    this.names.remove(i);
    return true;
  }

  *entries(): IterableIterator<FileInfo> {
    for (const i of this.names.slots()) {
      const name = this.names.get(i)!;
      const t = this.times[i];
      yield Number.isNaN(t) ? { name, size: this.sizes[i] } : { name, size: this.sizes[i], modified: t };
    }
  }
}

