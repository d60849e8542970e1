// One large object read as parallel ranged requests, delivered in order: `concurrency` ranges of
// `partSize` bytes are in flight at once, so memory stays at concurrency × partSize whatever the
// object's size, and a slow connection per request no longer caps the throughput of a restore.
import { ioError } from '../errors.ts';

export type FetchRange = (offset: number, length: number, signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>;

export async function* orderedRangedRead(fetchRange: FetchRange, start: number, end: number, partSize: number, concurrency: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // A range's chunks are kept as they arrived (no concatenation: that copy and its garbage cost
  // more than the socket reads themselves).
  const fetchWhole = async (a: number, b: number): Promise<Uint8Array[]> => {
    const bufs: Uint8Array[] = [];
    let got = 0;
    for await (const c of await fetchRange(a, b - a, ac.signal)) {
      bufs.push(c);
      got += c.length;
    }
    if (got !== b - a) throw ioError(`range ${a}-${b - 1} returned ${got} bytes, expected ${b - a}`);
    return bufs;
  };
  let next = start;
  const inflight: Promise<Uint8Array[]>[] = [];
  const launch = () => {
    const a = next;
    const b = Math.min(end, a + partSize);
    next = b;
    const p = fetchWhole(a, b);
    p.catch(() => {}); // observed when its turn comes; avoid an unhandled rejection meanwhile
    inflight.push(p);
  };
  try {
    while (next < end && inflight.length < concurrency) launch();
    while (inflight.length > 0) {
      const bufs = await inflight.shift()!;
      if (next < end) launch();
      yield* bufs;
    }
  } finally {
    ac.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}
