// RateLimiter and rateLimited: what they pass on, and that a caller over budget waits (pending
// until its signal aborts), without measuring time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RateLimiter, rateLimited } from '../../src/rate-limiter.ts';
import { isCairnError } from '../../src/errors.ts';

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of src) out.push(Buffer.from(c));
  return out;
}

describe('RateLimiter', () => {
  it('refuses a rate that is not positive', () => {
    for (const bad of [0, -1, Number.NaN]) assert.throws(() => new RateLimiter(bad), RangeError, String(bad));
  });

  it('passes chunks of about 1/20 s of budget, at least 4 KiB', () => {
    assert.equal(new RateLimiter(1_000_000).chunkSize, 50_000);
    assert.equal(new RateLimiter(1000).chunkSize, 4096);
  });

  it('a take within the burst resolves at once; one beyond the budget waits until aborted', async () => {
    const l = new RateLimiter(1000);
    await l.take(10); // 10 ms of budget: inside the 50 ms burst
    const ac = new AbortController();
    const waiting = l.take(100_000, ac.signal); // 100 s of budget
    assert.equal(await settled(waiting), false, 'still waiting');
    ac.abort(new Error('stop'));
    await assert.rejects(waiting, (e) => isCairnError(e, 'Aborted'));
  });

  it('an already aborted signal is refused before any wait', async () => {
    await assert.rejects(new RateLimiter(1e9).take(1, AbortSignal.abort()), (e) => isCairnError(e, 'Aborted'));
  });

  it('budget reserved by one caller delays the next one (shared by parallel copies)', async () => {
    const l = new RateLimiter(1000);
    const ac = new AbortController();
    const first = l.take(60_000, ac.signal);
    const second = l.take(1, ac.signal);
    assert.equal(await settled(second), false, 'the second caller waits behind the first');
    ac.abort();
    await assert.rejects(first, (e) => isCairnError(e, 'Aborted'));
    await assert.rejects(second, (e) => isCairnError(e, 'Aborted'));
  });
});

describe('rateLimited', () => {
  it('without a limiter passes the chunks on unchanged', async () => {
    const chunks = [randomBytes(10), randomBytes(100_000)];
    const out = await collect(rateLimited(chunks, undefined));
    assert.deepEqual(out, chunks);
  });

  it('reserves a large chunk a slice at a time, then passes it on whole (a reused buffer is never sliced)', async () => {
    const l = new RateLimiter(2_000_000); // slices of 100,000 bytes
    const taken: number[] = [];
    const take = l.take.bind(l);
    l.take = (bytes, signal) => {
      taken.push(bytes);
      return take(bytes, signal);
    };
    const data = randomBytes(3 * l.chunkSize + 17);
    const chunks = [data.subarray(0, 5), data.subarray(5)];
    const out: Uint8Array[] = [];
    const takenBefore: number[] = [];
    for await (const c of rateLimited(chunks, l)) {
      takenBefore.push(taken.reduce((a, b) => a + b, 0));
      out.push(c);
    }
    assert.equal(out.length, 2);
    assert.ok(out[0] === chunks[0] && out[1] === chunks[1], 'the same chunks, not copies or slices');
    // Every byte of a chunk is reserved before the chunk is handed on, in slices of at most chunkSize.
    assert.deepEqual(takenBefore, [5, data.length]);
    assert.deepEqual(taken, [5, l.chunkSize, l.chunkSize, l.chunkSize, 12]);
  });
});
