import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBudget } from '../../src/io/memory-budget.ts';
import { BufferPool } from '../../src/io/buffer-pool.ts';
import { isCairnError } from '../../src/errors.ts';

/** Resolves once `cond` holds, checked on every turn of the event loop (no fixed sleep). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

/** Settles the microtasks queued so far (a grant that would happen now has happened). */
const settle = () => new Promise((r) => setImmediate(r));

describe('MemoryBudget', () => {
  it('grants within the limit, first come first served, and waits while it is spent', async () => {
    const b = new MemoryBudget(100);
    await b.acquire(60);
    await b.acquire(40);
    const order: string[] = [];
    const big = b.acquire(70).then(() => order.push('big'));
    const small = b.acquire(10).then(() => order.push('small'));
    await settle();
    assert.deepEqual(order, [], 'nothing fits while 100 of 100 bytes are held');
    b.release(40);
    await settle();
    // 10 would fit now, but the 70 asked first: the small one may not overtake it.
    assert.deepEqual(order, []);
    b.release(60);
    await Promise.all([big, small]);
    assert.deepEqual(order, ['big', 'small']);
    assert.equal(b.inUse, 80);
  });

  it('grants a request larger than the whole budget once nothing else is held', async () => {
    const b = new MemoryBudget(10);
    await b.acquire(5);
    let granted = false;
    const p = b.acquire(25).then(() => (granted = true));
    await settle();
    assert.equal(granted, false);
    b.release(5);
    await p;
    assert.equal(b.inUse, 25);
  });

  it('an abort while waiting rejects at once with Aborted, holds nothing, and lets the next in line through', async () => {
    const b = new MemoryBudget(10);
    await b.acquire(10);
    const ac = new AbortController();
    const first = b.acquire(8, ac.signal);
    let secondGranted = false;
    const second = b.acquire(2).then(() => (secondGranted = true));
    const rejected = first.then(
      () => assert.fail('granted after abort'),
      (e: unknown) => e,
    );
    ac.abort(new Error('stop'));
    assert.ok(isCairnError(await rejected, 'Aborted'));
    assert.equal(b.inUse, 10, 'the aborted request took nothing');
    b.release(10);
    await second;
    assert.equal(secondGranted, true);
    assert.equal(b.inUse, 2);
    // An already aborted signal is refused before waiting.
    await assert.rejects(b.acquire(1, ac.signal), (e: unknown) => isCairnError(e, 'Aborted'));
    assert.equal(b.inUse, 2);
  });
});

describe('BufferPool', () => {
  it('never hands out more than the budget, under contention from many takers', async () => {
    const size = 1024;
    const pool = new BufferPool(size, new MemoryBudget(4 * size));
    const out = new Set<Buffer>();
    let maxOut = 0;
    const allocated = new Set<Buffer>();
    const worker = async (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        const b = await pool.take();
        assert.equal(b.length, size);
        assert.ok(!out.has(b), 'a buffer handed out twice at once');
        out.add(b);
        allocated.add(b);
        maxOut = Math.max(maxOut, out.size);
        assert.ok(pool.budget.inUse <= 4 * size);
        await settle();
        out.delete(b);
        pool.give(b);
      }
    };
    await Promise.all(Array.from({ length: 10 }, () => worker(20)));
    assert.equal(maxOut, 4);
    assert.equal(pool.budget.inUse, 0);
    // Buffers were reused: the pool never held more than its budget's worth.
    assert.ok(allocated.size <= 4, `${allocated.size} buffers allocated for a budget of 4`);
  });

  it('counts a buffer of another size against the budget, and does not keep it', async () => {
    const pool = new BufferPool(100, new MemoryBudget(300));
    const a = await pool.take();
    const small = await pool.take(undefined, 150);
    assert.equal(small.length, 150);
    assert.equal(pool.budget.inUse, 250);
    let got: Buffer | undefined;
    const waiting = pool.take().then((b) => (got = b));
    await settle();
    assert.equal(got, undefined, '250 + 100 is over 300');
    pool.give(small);
    await waiting;
    assert.notEqual(got, small);
    pool.give(a);
    pool.give(got!);
    assert.equal(pool.budget.inUse, 0);
  });

  it('serves a smaller request with an idle buffer, counted whole, and allocates the small size only when none is idle', async () => {
    const pool = new BufferPool(100, new MemoryBudget(300));
    const small = await pool.take(undefined, 10);
    assert.equal(small.length, 10, 'nothing idle: a buffer of the size asked for');
    pool.give(small);
    const a = await pool.take();
    pool.give(a);
    const again = await pool.take(undefined, 10);
    assert.equal(again, a, 'the idle buffer, not a new one');
    assert.equal(pool.budget.inUse, 100, 'counted at its whole size');
    pool.give(again);
    assert.equal(pool.budget.inUse, 0);
    assert.equal(await pool.take(), a, 'and kept for reuse again');
  });

  it('keeps a returned buffer while small ones are in use, and a small take does not throw idle ones away', async () => {
    const pool = new BufferPool(100, new MemoryBudget(300));
    const [a, b, c] = [await pool.take(), await pool.take(), await pool.take()];
    // A small file asks while the budget is spent: it waits, and gets its memory when c comes back.
    const small = pool.take(undefined, 10);
    await settle();
    pool.give(c);
    const s = await small;
    assert.equal(s.length, 10);
    pool.give(s);
    assert.equal(await pool.take(), c, 'c was kept, not dropped for the small buffer, and is reused');
    for (const x of [a, b, c]) pool.give(x);
    assert.equal(pool.budget.inUse, 0);
    const again = [await pool.take(), await pool.take(), await pool.take()];
    assert.deepEqual(new Set(again), new Set([a, b, c]), 'all three part buffers still in the pool');
  });

  it('a dropped buffer returns its share of the budget but is never handed out again', async () => {
    const pool = new BufferPool(64, new MemoryBudget(64));
    const a = await pool.take();
    const next = pool.take();
    pool.drop(a);
    const b = await next;
    assert.notEqual(b, a);
    pool.give(b);
    assert.equal(await pool.take(), b, 'a given buffer is reused');
  });

  it('an abort while waiting for a buffer rejects promptly and takes nothing', async () => {
    const pool = new BufferPool(64, new MemoryBudget(128));
    const held = [await pool.take(), await pool.take()];
    const ac = new AbortController();
    const waiting = pool.take(ac.signal);
    let settled = false;
    void waiting.catch(() => {}).finally(() => (settled = true));
    await settle();
    assert.equal(settled, false);
    ac.abort();
    await until(() => settled);
    await assert.rejects(waiting, (e: unknown) => isCairnError(e, 'Aborted'));
    assert.equal(pool.budget.inUse, 128);
    for (const b of held) pool.give(b);
    assert.equal(pool.budget.inUse, 0);
    // Both buffers can be had again at once: the aborted taker holds none.
    const again = await Promise.all([pool.take(), pool.take()]);
    assert.equal(new Set(again).size, 2);
  });
});
