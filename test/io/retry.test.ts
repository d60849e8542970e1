import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { abortableSleep, backoffDelay, withRetry } from '../../src/io/retry.ts';
import { isCairnError } from '../../src/errors.ts';

describe('withRetry', () => {
  it('retries retryable errors, then returns the first success', async () => {
    const attempts: number[] = [];
    const got = await withRetry(async (a) => {
      attempts.push(a);
      if (a < 2) throw new Error('flaky');
      return 'ok';
    }, { retries: 3, baseDelayMs: 1, retryable: () => true });
    assert.equal(got, 'ok');
    assert.deepEqual(attempts, [0, 1, 2]);
  });

  it('gives up after `retries` and throws the last error', async () => {
    let n = 0;
    await assert.rejects(withRetry(async () => {
      throw new Error(`try ${n++}`);
    }, { retries: 2, baseDelayMs: 1, retryable: () => true }), /try 2/);
    assert.equal(n, 3);
  });

  it('does not retry what the predicate rejects', async () => {
    let n = 0;
    await assert.rejects(withRetry(async () => {
      n++;
      throw new Error('permanent');
    }, { retries: 5, baseDelayMs: 1, retryable: (e) => (e as Error).message !== 'permanent' }), /permanent/);
    assert.equal(n, 1);
  });

  it('an abort during a backoff ends the wait at once with Aborted', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = withRetry(async () => {
      setImmediate(() => ac.abort());
      throw new Error('flaky');
    }, { retries: 5, baseDelayMs: 60_000, retryable: () => true, signal: ac.signal });
    await assert.rejects(p, (e) => isCairnError(e, 'Aborted'));
    assert.ok(Date.now() - started < 30_000);
  });
});

describe('abortableSleep / backoffDelay', () => {
  it('rejects at once for an aborted signal and resolves otherwise', async () => {
    await assert.rejects(abortableSleep(10, AbortSignal.abort()), (e) => isCairnError(e, 'Aborted'));
    await abortableSleep(1);
  });

  it('doubles per attempt within +-25% and respects the cap', () => {
    for (let a = 0; a < 6; a++) {
      const d = backoffDelay(a, 100, 1_000);
      const nominal = Math.min(1_000, 100 * 2 ** a);
      assert.ok(d >= nominal * 0.75 && d <= nominal * 1.25, `attempt ${a}: ${d}`);
    }
  });
});

describe('backoffDelay factor', () => {
  it('grows each delay by the factor given, within +-25%, capped', () => {
    for (let a = 0; a < 4; a++) {
      const d = backoffDelay(a, 1000, 1e9, 3);
      assert.ok(d >= 0.75 * 1000 * 3 ** a && d <= 1.25 * 1000 * 3 ** a, `${a}: ${d}`);
    }
    assert.ok(backoffDelay(10, 1000, 2000, 3) <= 2500);
  });
});
