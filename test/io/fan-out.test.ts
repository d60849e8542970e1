import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fanOut, fanOutMap } from '../../src/io/fan-out.ts';
import { CairnError, isCairnError } from '../../src/errors.ts';

/** Resolves once `cond` holds, checked on every turn of the event loop (no fixed sleep). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

/** A task that runs until its signal aborts. */
const waitForAbort = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => {
    const fail = () => reject(new CairnError('Aborted', 'aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });

describe('fanOut', () => {
  it('runs every item, at most `concurrency` at once, results in input order', async () => {
    let running = 0;
    let max = 0;
    const out = await fanOutMap([5, 1, 4, 2, 3, 0, 6], async (n, i) => {
      max = Math.max(max, ++running);
      for (let k = 0; k < n; k++) await new Promise((r) => setImmediate(r));
      running--;
      return n * 10 + i;
    }, { concurrency: 3 });
    assert.deepEqual(out, [50, 11, 42, 23, 34, 5, 66]);
    assert.equal(max, 3);
  });

  it('reads an async source lazily, never more than `concurrency` items ahead', async () => {
    let produced = 0;
    let consumed = 0;
    let maxAhead = 0;
    async function* source() {
      for (let i = 0; i < 100; i++) {
        produced++;
        maxAhead = Math.max(maxAhead, produced - consumed);
        yield i;
      }
    }
    let sum = 0;
    await fanOut(source(), async (n) => {
      await new Promise((r) => setImmediate(r));
      sum += n;
      consumed++;
    }, { concurrency: 4 });
    assert.equal(sum, 4950);
    assert.ok(maxAhead <= 4, `read ${maxAhead} items ahead`);
  });

  it('first failure aborts the others, waits for them to settle, and is the error thrown', async () => {
    const settled: number[] = [];
    let started = 0;
    const boom = new CairnError('Corruption', 'boom');
    const p = fanOut([0, 1, 2, 3, 4, 5], async (i, _, signal) => {
      started++;
      try {
        if (i === 2) {
          await until(() => started >= 3);
          throw boom;
        }
        await waitForAbort(signal);
      } finally {
        settled.push(i);
      }
    }, { concurrency: 3 });
    await assert.rejects(p, (e) => e === boom);
    // Every started task had settled before fanOut returned; none started after the failure.
    assert.equal(started, 3);
    assert.deepEqual(settled.sort(), [0, 1, 2]);
  });

  it('an abort error that is a consequence never hides the cause, whichever settles first', async () => {
    const boom = new Error('cause');
    const p = fanOut([0, 1], async (i, _, signal) => {
      if (i === 1) {
        await new Promise((r) => setImmediate(r));
        throw boom;
      }
      await waitForAbort(signal);
    }, { concurrency: 2 });
    await assert.rejects(p, (e) => e === boom);
  });

  it("the caller's abort stops the batch with Aborted and starts nothing more", async () => {
    const ac = new AbortController();
    let started = 0;
    const p = fanOut(Array.from({ length: 50 }, (_, i) => i), async (_i, _, signal) => {
      started++;
      if (started === 2) ac.abort(new Error('stop'));
      await waitForAbort(signal);
    }, { concurrency: 2, signal: ac.signal });
    await assert.rejects(p, (e) => isCairnError(e, 'Aborted'));
    assert.equal(started, 2);
  });

  it('an already aborted signal runs nothing', async () => {
    let ran = 0;
    await assert.rejects(fanOut([1, 2], async () => void ran++, { concurrency: 1, signal: AbortSignal.abort() }), (e) => isCairnError(e, 'Aborted'));
    assert.equal(ran, 0);
  });

  it('a failing async source is reported and stops the batch', async () => {
    async function* source() {
      yield 1;
      throw new Error('listing failed');
    }
    await assert.rejects(fanOut(source(), async () => {}, { concurrency: 2 }), /listing failed/);
  });
});
