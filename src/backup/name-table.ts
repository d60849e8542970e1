// The names of hundreds of thousands of stored files, packed as UTF-8 in 1 MiB blocks and found
// through an open-addressing hash table of slot numbers in a typed array. As JS strings in a Map
// each name cost its string (~70 bytes for a table file's ~56 characters) plus ~30 bytes of Map
// entry, all in V8's old generation, which V8 lets grow by half its live size again before it
// collects; here a name costs its bytes plus ~20 bytes of typed arrays, outside the JS heap
// (README, Scale: 365 x 160k). A name is decoded into a string only when asked for.
//
// Each name gets a slot, a small integer the callers index their own typed arrays by
// (FileTable's record indices); a removed name's slot is given to the next name added.

import { widened } from './typed-arrays.ts';

const BLOCK = 1 << 20;
const EMPTY = 0;

/** FNV-1a of the UTF-8 bytes b[start, end). */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

const encoder = new TextEncoder();
/** Where a name being looked up is encoded (names are at most 1,024 characters: names.ts). */
let scratch = new Uint8Array(4096);

/** The UTF-8 bytes of `s` in scratch: how many. */
function encode(s: string): number {
  for (;;) {
    const r = encoder.encodeInto(s, scratch);
    if (r.read === s.length) return r.written;
    scratch = new Uint8Array(scratch.length * 2);
  }
}

export class NameTable {
  /** Per slot: where its bytes start (block * BLOCK + offset) and how many; length 0: no name. */
  private starts = new Float64Array(1024);
  private lengths = new Uint32Array(1024);
  private hashes = new Uint32Array(1024);
  private blocks: Buffer[] = [];
  /** Bytes used in the last block. */
  private fill = BLOCK;
  /** Slot + 1 per position; 0 empty. Kept at most half full. */
  private table = new Int32Array(2048);
  private count = 0;
  /** Slots given out and freed again, reused before new ones. */
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private liveBytes = 0;
  private deadBytes = 0;

  get size(): number {
    return this.count;
  }

  /** One more than the highest slot given out so far. */
  get capacity(): number {
    return this.nextSlot;
  }

  /** The slot holding `name`, or undefined. */
  find(name: string): number | undefined {
    const n = encode(name);
    const h = hashBytes(scratch, 0, n);
    const mask = this.table.length - 1;
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const e = this.table[p]!;
      if (e === EMPTY) return undefined;
      const slot = e - 1;
      if (this.hashes[slot] === h && this.equalsScratch(slot, n)) return slot;
    }
  }

  /** Whether `slot` holds `name` (without decoding it); with no name, whether it holds one. */
  is(slot: number, name: string | undefined): boolean {
    if (slot >= this.lengths.length || this.lengths[slot] === 0) return false;
    return name === undefined || this.equalsScratch(slot, encode(name));
  }

  /** The name in `slot`, or undefined (any slot >= 0). */
  get(slot: number): string | undefined {
    const n = slot < this.lengths.length ? this.lengths[slot]! : 0;
    if (n === 0) return undefined;
    const at = this.starts[slot]!;
    const off = at % BLOCK;
    return this.blocks[(at - off) / BLOCK]!.toString('utf8', off, off + n);
  }

  /** Adds `name` (non-empty, not in the table): its slot. */
  add(name: string): number {
    const n = encode(name);
    if (n === 0) throw new Error('NameTable: empty name');
    const slot = this.freeSlots.pop() ?? this.nextSlot++;
    if (slot >= this.lengths.length) this.growSlots(slot + 1);
    const at = this.reserve(n);
    const off = at % BLOCK;
    this.blocks[(at - off) / BLOCK]!.set(scratch.subarray(0, n), off);
    this.starts[slot] = at;
    this.lengths[slot] = n;
    this.hashes[slot] = hashBytes(scratch, 0, n);
    this.liveBytes += n;
    if (++this.count * 2 > this.table.length) this.rehash(this.table.length * 2);
    this.place(slot);
    return slot;
  }

  /** Empties `slot`. */
  remove(slot: number): void {
    const n = slot < this.lengths.length ? this.lengths[slot]! : 0;
    if (n === 0) return;
    const mask = this.table.length - 1;
    let p = this.hashes[slot]! & mask;
    while (this.table[p] !== slot + 1) p = (p + 1) & mask;
    // Backward-shift deletion: entries after the hole that would no longer be found move up.
    for (let q = (p + 1) & mask; this.table[q] !== EMPTY; q = (q + 1) & mask) {
      const home = this.hashes[this.table[q]! - 1]! & mask;
      const stays = p <= q ? home > p && home <= q : home > p || home <= q;
      if (!stays) {
        this.table[p] = this.table[q]!;
        p = q;
      }
    }
    this.table[p] = EMPTY;
    this.lengths[slot] = 0;
    this.freeSlots.push(slot);
    this.count--;
    this.liveBytes -= n;
    this.deadBytes += n;
    if (this.deadBytes > this.liveBytes && this.deadBytes > 4 * BLOCK) this.compact();
  }

  /** Every slot holding a name, in slot order. */
  *slots(): IterableIterator<number> {
    for (let i = 0; i < this.lengths.length; i++) if (this.lengths[i] !== 0) yield i;
  }

  /** Whether `slot` holds the n bytes in scratch. */
  private equalsScratch(slot: number, n: number): boolean {
    if (this.lengths[slot] !== n) return false;
    const at = this.starts[slot]!;
    const off = at % BLOCK;
    const b = this.blocks[(at - off) / BLOCK]!;
    // From the end: names of one directory share their beginning.
    for (let i = n - 1; i >= 0; i--) if (b[off + i] !== scratch[i]) return false;
    return true;
  }

  /** Room for n bytes in one block: where. */
  private reserve(n: number): number {
    // (Names are paths of at most 1,024 characters: names.ts.)
    if (n > BLOCK) throw new RangeError(`NameTable: a name of ${n} bytes`);
    if (this.fill + n > BLOCK) {
      this.blocks.push(Buffer.allocUnsafeSlow(BLOCK));
      this.fill = 0;
    }
    const at = (this.blocks.length - 1) * BLOCK + this.fill;
    this.fill += n;
    return at;
  }

  private place(slot: number): void {
    const mask = this.table.length - 1;
    let p = this.hashes[slot]! & mask;
    while (this.table[p] !== EMPTY) p = (p + 1) & mask;
    this.table[p] = slot + 1;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (const s of this.slots()) this.place(s);
  }

  private growSlots(min: number): void {
    let n = this.lengths.length * 2;
    while (n < min) n *= 2;
    this.starts = widened(this.starts, n);
    this.lengths = widened(this.lengths, n);
    this.hashes = widened(this.hashes, n);
  }

  /** Copies the live names into fresh blocks, leaving the space of removed ones behind. */
  private compact(): void {
    const old = this.blocks;
    this.blocks = [];
    this.fill = BLOCK;
    for (const s of this.slots()) {
      const n = this.lengths[s]!;
      const from = this.starts[s]!;
      const fromOff = from % BLOCK;
      const at = this.reserve(n);
      const off = at % BLOCK;
      old[(from - fromOff) / BLOCK]!.copy(this.blocks[(at - off) / BLOCK]!, off, fromOff, fromOff + n);
      this.starts[s] = at;
    }
    this.deadBytes = 0;
  }
}
