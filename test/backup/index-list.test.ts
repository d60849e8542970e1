// IndexList: GC counts references by iterating these lists, so every form (plain, runs, diff
// against a keyframe) must give back exactly the sequence pushed, whatever that sequence is.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IndexList, keyframeBase, type KeyframeBase } from '../../src/backup/index-list.ts';
import { prng } from '../support/prng.ts';

function build(seq: number[], base?: KeyframeBase): IndexList {
  const b = IndexList.builder(base);
  for (const i of seq) b.push(i);
  assert.deepEqual([...b], seq, 'the builder gives back what was pushed (undo of a corrupt backup)');
  const list = b.build();
  assert.equal(list.length, seq.length);
  assert.deepEqual([...list], seq);
  return list;
}

describe('IndexList', () => {
  it('a list of consecutive indices is one run', () => {
    const seq = Array.from({ length: 10_000 }, (_, k) => k + 5);
    const l = build(seq);
    assert.equal(l.isKeyframe, false);
    assert.equal(l.byteLength, 8);
  });

  it('scattered indices are stored plain', () => {
    const r = prng(1);
    const seq = Array.from({ length: 5000 }, () => Math.floor(r() * 1e6));
    const l = build([...new Set(seq)]);
    assert.ok(l.isKeyframe);
    assert.throws(() => keyframeBase(build(Array.from({ length: 100 }, (_, k) => k)), 100), /plain/, 'a list of runs is no diff base');
  });

  it('a daily backup with a few files replaced is a small diff of the previous one, read back exactly', () => {
    const r = prng(7);
    const files = 20_000;
    let next = 0;
    // Day 0: in order; each day replaces 1% of the positions with new indices.
    let live = Array.from({ length: files }, () => next++);
    let base: KeyframeBase | undefined;
    assert.equal(build(live).isKeyframe, false, 'one run: no diff base');
    let diffs = 0;
    for (let day = 1; day <= 60; day++) {
      live = [...live];
      for (let k = 0; k < files / 100; k++) live[Math.floor(r() * live.length)] = next++;
      // Some days also drop and add files (a list of another length) and reorder a slice.
      if (day % 7 === 0) live.splice(Math.floor(r() * live.length), 50, next++, next++);
      if (day % 11 === 0) live.splice(100, 300, ...live.slice(100, 400).reverse());
      const l = build(live, base);
      if (l.isKeyframe) {
        base = keyframeBase(l, next);
      } else {
        diffs++;
        assert.ok(l.byteLength <= live.length * 4 / 6, `day ${day}: ${l.byteLength} bytes as a diff`);
      }
    }
    assert.ok(diffs >= 40, `${diffs} of 60 days stored as diffs`);
    assert.ok(base, 'some day was a keyframe');
  });

  it('random sequences against random keyframes read back exactly (duplicates, out-of-range indices)', () => {
    const r = prng(42);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(r() * 300);
      const keySeq = Array.from({ length: n }, (_, k) => (r() < 0.7 ? k * 3 : Math.floor(r() * 500)));
      const key = build(keySeq);
      if (!key.isKeyframe) continue;
      const base = keyframeBase(key, Math.floor(r() * 600));
      const seq: number[] = [];
      const m = Math.floor(r() * 400);
      while (seq.length < m) {
        if (r() < 0.6) {
          const from = Math.floor(r() * n);
          seq.push(...keySeq.slice(from, from + Math.floor(r() * 50)));
        } else seq.push(Math.floor(r() * 1000));
      }
      build(seq, base);
    }
  });
});
