// Which DB file name each entry of one manifest restores to, to refuse a backup two of whose
// entries restore to the same name (restore would refuse it). Run for every entry of every
// manifest, so it allocates nothing per entry for the common names, `<digits>.<sst|ldb|log|blob>`
// (table, blob and WAL files): those are keyed by number in a typed-array hash set reused from
// one manifest to the next, where a Map of names would keep a string per entry alive until the
// manifest ends (hundreds of MB of garbage over a year of daily manifests of a 160k-file DB).
import { dbFileNameOf } from './layout.ts';

const EXTS = ['sst', 'ldb', 'log', 'blob'];

/**
 * `<digits>.<ext>` as a number (digits, their count and the extension), or -1 for another name.
 * Reads the backup file name in place, as dbFileNameOf would cut it.
 */
export function numericRestoreKey(backupFile: string): number {
  const base = backupFile.lastIndexOf('/') + 1;
  const dot = backupFile.lastIndexOf('.');
  if (dot <= base) return -1;
  // shared_checksum/<digits>_...<.ext>: the number ends at the first '_'.
  let end = dot;
  if (backupFile.startsWith('shared_checksum/')) {
    const us = backupFile.indexOf('_', base);
    if (us >= 0 && us < dot) end = us;
  }
  const digits = end - base;
  if (digits < 1 || digits > 15) return -1;
  let n = 0;
  for (let k = base; k < end; k++) {
    const c = backupFile.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  const ext = EXTS.indexOf(backupFile.slice(dot + 1));
  if (ext < 0) return -1;
  // n < 10^15 < 2^50; times 4 x 16 stays below 2^53.
  return (n * 4 + ext) * 16 + digits;
}

export class RestoreNameCheck {
  private keys = new Float64Array(1 << 12);
  private stamps = new Uint32Array(1 << 12);
  private values = new Int32Array(1 << 12);
  private used = 0;
  private stamp = 0;
  private others = new Map<string, number>();

  /** Starts a manifest. */
  begin(): void {
    this.stamp++;
    this.used = 0;
    this.others.clear();
    if (this.stamp === 0xffffffff) {
      this.stamps.fill(0);
      this.stamp = 1;
    }
  }

  /**
   * Registers that `backupFile` (file-table index `i`) restores to its DB file name; returns
   * the index of another entry of this manifest that restores to the same name, or -1.
   */
  add(backupFile: string, i: number): number {
    const key = numericRestoreKey(backupFile);
    if (key < 0) {
      const name = dbFileNameOf(backupFile);
      const other = this.others.get(name);
      if (other !== undefined) return other;
      this.others.set(name, i);
      return -1;
    }
    if ((this.used + 1) * 2 > this.keys.length) this.grow();
    return this.put(key, i);
  }

  private put(key: number, i: number): number {
    const mask = this.keys.length - 1;
    // (Math.imul of the low bits and of the high ones: keys differ in either.)
    let h = (Math.imul(key >>> 0, 0x9e3779b1) ^ Math.imul((key / 4294967296) >>> 0, 0x85ebca6b)) & mask;
    for (;;) {
      if (this.stamps[h] !== this.stamp) {
        this.stamps[h] = this.stamp;
        this.keys[h] = key;
        this.values[h] = i;
        this.used++;
        return -1;
      }
      if (this.keys[h] === key) return this.values[h];
      h = (h + 1) & mask;
    }
  }

  private grow(): void {
    const { keys, stamps, values, stamp } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.stamps = new Uint32Array(keys.length * 2);
    this.values = new Int32Array(keys.length * 2);
    this.used = 0;
    for (let h = 0; h < keys.length; h++) if (stamps[h] === stamp) this.put(keys[h], values[h]);
  }
}
