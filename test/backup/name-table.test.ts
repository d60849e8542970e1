// The packed name table (src/backup/name-table.ts) against a Map doing the same operations:
// random inserts and removes of ASCII and non-ASCII names, enough of them to rehash the hash
// table many times and to compact the blocks after mass removals (as purge does).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NameTable } from '../../src/backup/name-table.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const nameOf = (k: number) => (k % 7 === 0 ? `shared_checksum/é${k}_ü😀_${k * 31}.sst` : `shared_checksum/${k}_s${(k * 2654435761) >>> 0}ABCDEFGHIJ_${k * 13}.sst`);

function check(t: NameTable, model: Map<string, number>): void {
  assert.equal(t.size, model.size);
  for (const [name, slot] of model) {
    assert.equal(t.find(name), slot, name);
    assert.equal(t.get(slot), name);
    assert.ok(t.is(slot, name) && t.is(slot, undefined));
  }
  assert.deepEqual([...t.slots()], [...model.values()].sort((a, b) => a - b));
}

describe('NameTable', () => {
  it('finds, decodes and compares what was added, and nothing else; reuses freed slots', () => {
    const t = new NameTable();
    const a = t.add('shared/a.sst');
    const b = t.add('private/1/CURRENT');
    const c = t.add('shared_checksum/é 😀.sst');
    assert.deepEqual([a, b, c], [0, 1, 2]);
    assert.equal(t.find('shared/a.sst'), a);
    assert.equal(t.find('shared_checksum/é 😀.sst'), c);
    assert.equal(t.find('shared/a.ss'), undefined);
    assert.equal(t.find('shared/a.sst '), undefined);
    assert.equal(t.get(c), 'shared_checksum/é 😀.sst');
    assert.equal(t.get(3), undefined);
    assert.equal(t.get(100_000), undefined);
    assert.ok(!t.is(a, 'shared/b.sst') && !t.is(3, undefined) && !t.is(7000, 'x'));
    t.remove(a);
    t.remove(a);
    assert.equal(t.find('shared/a.sst'), undefined);
    assert.equal(t.size, 2);
    assert.deepEqual([...t.slots()], [b, c]);
    assert.equal(t.add('shared/d.sst'), a, 'a freed slot is given out again');
    assert.equal(t.capacity, 3);
    assert.throws(() => t.add(''), /empty name/);
    assert.equal(t.capacity, 3);
  });

  it('matches a Map through 300,000 random inserts and removes, with rehashes and compactions', () => {
    const t = new NameTable();
    const model = new Map<string, number>();
    const r = rng(12345);
    let key = 0;
    for (let round = 0; round < 3; round++) {
      // Grow to 100k names, then remove 90% of them (the blocks compact), then check.
      while (model.size < 100_000) {
        const name = nameOf(key++);
        model.set(name, t.add(name));
      }
      for (const [name, slot] of [...model]) {
        if (r() < 0.9) {
          t.remove(slot);
          model.delete(name);
        }
      }
      check(t, model);
      assert.equal(t.capacity, 100_000, 'freed slots are reused before new ones');
    }
    for (let k = 0; k < key; k += 97) if (!model.has(nameOf(k))) assert.equal(t.find(nameOf(k)), undefined);
  });
});
