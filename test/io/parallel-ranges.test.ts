import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readParallelRanges, type OpenRange } from '../../src/io/parallel-ranges.ts';
import { crc32c } from '../../src/crc32c.ts';
import { CairnError, ioError, isCairnError } from '../../src/errors.ts';

const data = Buffer.alloc(1_000_003);
for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;

/** Serves ranges of `data` in uneven chunks, with a pause so that ranges overlap in time. */
const serve = (bytes: Buffer, log?: { open: number; maxOpen: number }): OpenRange => async (offset, length, signal) =>
  (async function* () {
    if (log) log.maxOpen = Math.max(log.maxOpen, ++log.open);
    try {
      for (let at = offset; at < Math.min(bytes.length, offset + length); at += 7_001) {
        await new Promise((r) => setTimeout(r, 1));
        signal.throwIfAborted();
        yield bytes.subarray(at, Math.min(at + 7_001, offset + length, bytes.length));
      }
    } finally {
      if (log) log.open--;
    }
  })();

describe('readParallelRanges', () => {
  it('hands every byte to its range sink at its position, and folds the CRC32C of the whole', async () => {
    const out = Buffer.alloc(data.length);
    const done: number[] = [];
    const log = { open: 0, maxOpen: 0 };
    const crc = await readParallelRanges(
      serve(data, log),
      (i, start) => {
        let expect = start;
        return {
          chunk: (pos, c) => {
            assert.equal(pos, expect); // in order within a range
            expect += c.length;
            out.set(c, pos);
          },
          rangeDone: (j) => {
            assert.equal(j, i);
            done.push(i);
          },
        };
      },
      { name: 'f', size: data.length, partSize: 100_000, concurrency: 3 },
    );
    assert.equal(crc, crc32c(data));
    assert.ok(out.equals(data));
    assert.deepEqual(done.sort((a, b) => a - b), [...Array(11).keys()]);
    assert.equal(log.maxOpen, 3);
  });

  it('a range that returns fewer or more bytes than asked is Corruption naming the file; the others stop', async () => {
    const short = data.subarray(0, 650_000); // the object got truncated after its size was read
    const log = { open: 0, maxOpen: 0 };
    await assert.rejects(
      readParallelRanges(serve(short, log), () => ({ chunk: () => {} }), { name: 'shared/x.sst', size: data.length, partSize: 100_000, concurrency: 4 }),
      (e) => isCairnError(e, 'Corruption') && /^shared\/x\.sst: bytes [67]00000-[67]99999 returned (50000|0) bytes, expected 100000$/.test(e.message),
    );
    assert.equal(log.open, 0);
    const long: OpenRange = async () => (async function* () { yield Buffer.alloc(100_001); })();
    await assert.rejects(
      readParallelRanges(long, () => ({ chunk: () => {} }), { name: 'y', size: 200_000, partSize: 100_000, concurrency: 2 }),
      (e) => isCairnError(e, 'Corruption') && /returned more than 100000 bytes/.test(e.message),
    );
  });

  it('the first failure is the one reported, and a sink failure stops the read too', async () => {
    let calls = 0;
    const failing: OpenRange = async (offset, length, signal) => {
      if (++calls === 2) throw new Error('connection reset');
      return serve(data)(offset, length, signal);
    };
    await assert.rejects(
      readParallelRanges(failing, () => ({ chunk: () => {} }), { name: 'f', size: data.length, partSize: 100_000, concurrency: 3 }),
      /connection reset/,
    );
    await assert.rejects(
      readParallelRanges(serve(data), (i) => ({ chunk: () => { if (i === 1) throw new Error('disk full'); } }), { name: 'f', size: data.length, partSize: 100_000, concurrency: 3 }),
      /disk full/,
    );
  });

  it('a range cut off by an IOError resumes from its first missing byte; other errors do not', async () => {
    const asked: [number, number][] = [];
    const cuts = new Set<number>();
    const flaky: OpenRange = async (offset, length, signal) => {
      asked.push([offset, length]);
      const inner = await serve(data)(offset, length, signal);
      const range = Math.floor(offset / 100_000);
      return (async function* () {
        let n = 0;
        for await (const c of inner) {
          yield c;
          n += c.length;
          if (n > 30_000 && !cuts.has(range)) {
            cuts.add(range);
            throw ioError('socket hang up');
          }
        }
      })();
    };
    const out = Buffer.alloc(data.length);
    const crc = await readParallelRanges(flaky, () => ({ chunk: (pos, c) => void out.set(c, pos) }), { name: 'f', size: data.length, partSize: 100_000, concurrency: 3 });
    assert.equal(crc, crc32c(data));
    assert.ok(out.equals(data));
    assert.equal(cuts.size, 10); // every range but the last, 3 bytes long
    assert.ok(asked.some(([o, l]) => o === 35_005 && l === 100_000 - 35_005), JSON.stringify(asked.slice(0, 6)));
    const always: OpenRange = async () => { throw ioError('connection refused'); };
    await assert.rejects(readParallelRanges(always, () => ({ chunk: () => {} }), { name: 'f', size: 10, partSize: 10, concurrency: 1, resumes: 2 }), /connection refused/);
    let calls = 0;
    const denied: OpenRange = async () => { calls++; throw new CairnError('PermissionDenied', 'no'); };
    await assert.rejects(readParallelRanges(denied, () => ({ chunk: () => {} }), { name: 'f', size: 10, partSize: 10, concurrency: 1 }), (e) => isCairnError(e, 'PermissionDenied'));
    assert.equal(calls, 1);
  });

  it('stops when its signal aborts: Aborted, no range left open', async () => {
    const ac = new AbortController();
    const log = { open: 0, maxOpen: 0 };
    // aborts once bytes are flowing (at the first chunk), not after a time a busy machine may exceed
    const p = readParallelRanges(serve(data, log), () => ({ chunk: () => ac.abort() }), { name: 'f', size: data.length, partSize: 100_000, concurrency: 3, signal: ac.signal });
    await assert.rejects(p, (e) => isCairnError(e, 'Aborted'));
    assert.equal(log.open, 0);
  });

  it('an abort during the backoff before a resume ends the read at once with Aborted', async () => {
    const ac = new AbortController();
    let opens = 0;
    const failing: OpenRange = async () => {
      // After the first resume fails, the read backs off before the next one: abort then.
      if (++opens === 2) setImmediate(() => ac.abort(new Error('stop')));
      throw ioError('connection reset');
    };
    await assert.rejects(
      readParallelRanges(failing, () => ({ chunk: () => {} }), { name: 'f', size: 10, partSize: 10, concurrency: 1, resumes: 1000, signal: ac.signal }),
      (e) => isCairnError(e, 'Aborted'),
    );
    assert.equal(opens, 2, 'no resume after the abort');
  });
});
