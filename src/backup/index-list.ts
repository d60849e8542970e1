// One backup's files as FileTable indices, in manifest order, in the smallest of three forms:
// - plain: the indices themselves;
// - runs: pairs (start, length) of consecutive indices (indices are given out in the order files
//   are first seen, so the first backup loaded is one long run);
// - diff: copies of ranges of a base list (a recent backup stored plain: a "keyframe") and
//   literal indices. Backups of one DB list mostly the same files in the same
//   order, a few replaced each day, so a year of dailies of a 160k-file DB is a few keyframes and
//   small diffs instead of 58 M indices.
// GC counts references by iterating these lists, so iteration must give back exactly what was
// pushed: test/backup/index-list.test.ts checks every form against the plain sequence.
import { widened } from './typed-arrays.ts';

/** Marks a literal in a diff: (LIT, index) instead of (base position, length). */
const LIT = 0xffffffff;

/** A diff is kept only while it is smaller than this share of the plain form. */
const DIFF_MAX_SHARE = 1 / 6;
/** Runs are kept only while they are smaller than this share of the plain form. */
const RUNS_MAX_SHARE = 1 / 8;

type Kind = 'plain' | 'runs' | 'diff';

export class IndexList implements Iterable<number> {
  readonly length: number;
  private readonly kind: Kind;
  private readonly data: Uint32Array;
  private readonly base: IndexList | undefined;

  private constructor(kind: Kind, data: Uint32Array, length: number, base?: IndexList) {
    this.kind = kind;
    this.data = data;
    this.length = length;
    this.base = base;
  }

  /** A builder; with a base (a keyframe), the list may be stored as a diff against it. */
  static builder(base?: KeyframeBase): IndexListBuilder {
    return new IndexListBuilder(base);
  }

  /** @internal */
  static of(kind: Kind, data: Uint32Array, length: number, base?: IndexList): IndexList {
    return new IndexList(kind, data, length, base);
  }

  /**
   * Stored plain: may serve as a diff's base. (A diff of a list of runs is never smaller than
   * the runs of the indices it copies.)
   */
  get isKeyframe(): boolean {
    return this.kind === 'plain';
  }

  *[Symbol.iterator](): IterableIterator<number> {
    const d = this.data;
    if (this.kind === 'plain') {
      for (let k = 0; k < d.length; k++) yield d[k];
    } else if (this.kind === 'runs') {
      for (let k = 0; k < d.length; k += 2) for (let i = d[k], end = d[k] + d[k + 1]; i < end; i++) yield i;
    } else {
      const base = this.base!;
      for (let k = 0; k < d.length; k += 2) {
        if (d[k] === LIT) yield d[k + 1];
        else yield* base.range(d[k], d[k + 1]);
      }
    }
  }

  /** The `len` indices from position `from` of a plain list. */
  private *range(from: number, len: number): IterableIterator<number> {
    const d = this.data;
    for (let k = from, end = from + len; k < end; k++) yield d[k];
  }

  /** Bytes held (for tests and measurements; a diff's base is counted with the base). */
  get byteLength(): number {
    return this.data.byteLength;
  }
}

/** A keyframe (a plain list) with, for each index, its position in it + 1 (0: not in it). */
export interface KeyframeBase {
  list: IndexList;
  positions: Int32Array;
}

/** The base a builder may diff against: positions of every index of `list`. */
export function keyframeBase(list: IndexList, indexCount: number): KeyframeBase {
  if (!list.isKeyframe) throw new Error('a diff base must be a plain list');
  const positions = new Int32Array(indexCount);
  let p = 0;
  for (const i of list) {
    if (i < indexCount && positions[i] === 0) positions[i] = p + 1;
    p++;
  }
  return { list, positions };
}

export class IndexListBuilder {
  private runs: Uint32Array<ArrayBuffer> = new Uint32Array(16);
  private used = 0;
  private count = 0;
  private readonly base: KeyframeBase | undefined;
  private ops: Uint32Array<ArrayBuffer> | undefined;
  private opsUsed = 0;

  constructor(base?: KeyframeBase) {
    this.base = base;
    if (base) this.ops = new Uint32Array(64);
  }

  get length(): number {
    return this.count;
  }

  push(i: number): void {
    const u = this.used;
    if (u > 0 && this.runs[u - 2] + this.runs[u - 1] === i) {
      this.runs[u - 1]++;
    } else {
      if (u + 2 > this.runs.length) this.runs = widened(this.runs, this.runs.length * 2);
      this.runs[u] = i;
      this.runs[u + 1] = 1;
      this.used = u + 2;
    }
    this.count++;
    if (this.ops) this.pushDiff(i);
  }

  private pushDiff(i: number): void {
    const positions = this.base!.positions;
    const pos = i < positions.length ? positions[i] - 1 : -1;
    const o = this.opsUsed;
    const ops = this.ops!;
    if (pos >= 0 && o > 0 && ops[o - 2] !== LIT && ops[o - 2] + ops[o - 1] === pos) {
      ops[o - 1]++;
      return;
    }
    // (Against the larger of the base's length and what was pushed: the share of the whole list.)
    if (o + 2 > (Math.max(this.count, this.base!.list.length) + 64) * DIFF_MAX_SHARE) {
      this.ops = undefined; // too different from the base: not worth a diff
      return;
    }
    let out = ops;
    if (o + 2 > ops.length) this.ops = out = widened(ops, ops.length * 2);
    out[o] = pos >= 0 ? pos : LIT;
    out[o + 1] = pos >= 0 ? 1 : i;
    this.opsUsed = o + 2;
  }

  /** The indices pushed so far (to undo a backup that turned out corrupt). */
  *[Symbol.iterator](): IterableIterator<number> {
    const d = this.runs;
    for (let k = 0; k < this.used; k += 2) for (let i = d[k], end = d[k] + d[k + 1]; i < end; i++) yield i;
  }

  build(): IndexList {
    if (this.ops && this.opsUsed < Math.min(this.used, this.count)) {
      return IndexList.of('diff', this.ops.slice(0, this.opsUsed), this.count, this.base!.list);
    }
    // Runs only when they are few: else a plain list, which the next backups can be diffs of.
    if (this.used <= this.count * RUNS_MAX_SHARE) return IndexList.of('runs', this.runs.slice(0, this.used), this.count);
    const plain = new Uint32Array(this.count);
    let at = 0;
    for (const i of this) plain[at++] = i;
    return IndexList.of('plain', plain, this.count);
  }
}
