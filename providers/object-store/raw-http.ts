// A minimal HTTP/1.1 client for the one request cairn sends by the gigabyte: a bodiless GET whose
// answer is framed by Content-Length. node:http hands a body over in fresh buffers of one socket
// read each (at most 64 KiB): a restore of GiBs makes hundreds of thousands of them, each a
// callback, a stream push and garbage. Here every connection reads straight into two buffers of
// its own that take turns (socket `onread`): one is filled while the caller holds the other, and
// a body reaches the caller in chunks of a whole buffer, each valid until it asks for the next.
// The socket stops reading while both buffers are taken, so TCP paces the server to the caller.
// This module keeps the connections; raw-connection.ts is one of them.
//
// Anything this client does not frame (chunked or unframed bodies, 1xx answers) or any failure
// before the answer's headers rejects the request: the caller sends it again through its SDK.
import { Connection, MAX_HEADER, MIN_ROOM, type ConnectionOptions, type RawClientOptions, type RawOrigin, type RawResponse } from './raw-connection.ts';

export { UnframedAnswer, type RawClientOptions, type RawOrigin, type RawResponse } from './raw-connection.ts';

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** The Range header of a read from `offset` (`length` bytes, or to the end); undefined for a whole object. */
export function rangeHeader(offset: number, length: number | undefined): string | undefined {
  return offset > 0 || length !== undefined ? `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` : undefined;
}

/**
 * Whether an answer's body is exactly the bytes asked for from `offset` (`length` of them, or to
 * the end): 200 for a whole object, 206 with that Content-Range (fewer bytes only where the
 * object ends).
 */
export function framedAsAsked(res: Pick<RawResponse, 'status' | 'headers' | 'length'>, offset: number, length: number | undefined): boolean {
  const ranged = rangeHeader(offset, length) !== undefined;
  if (res.status === 200) return !ranged;
  if (res.status !== 206 || !ranged) return false;
  const m = CONTENT_RANGE.exec(res.headers.get('content-range') ?? '');
  if (!m) return false;
  const [first, last] = [Number(m[1]), Number(m[2])];
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (first !== offset || last - first + 1 !== res.length) return false;
  const toEnd = total !== undefined && last + 1 === total;
  return length === undefined ? toEnd : res.length === length || (res.length < length && toEnd);
}

/** The body of a (small) answer, an error's say, up to `max` bytes kept. */
export async function smallBody(res: RawResponse, max = 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  let kept = 0;
  for await (const c of res.body) {
    if (kept < max) parts.push(Buffer.from(c.subarray(0, max - kept)));
    kept += Math.min(c.length, max - kept);
  }
  return Buffer.concat(parts);
}

const DEFAULT_BUFFER = 512 * 1024;

/** Sends GETs to one origin over keep-alive connections of its own. */
export class RawHttpClient {
  private readonly origin: RawOrigin;
  private readonly opts: ConnectionOptions;
  private readonly idle: Connection[] = [];
  private closed = false;

  constructor(origin: RawOrigin, opts: RawClientOptions) {
    this.origin = origin;
    this.opts = { bufferSize: DEFAULT_BUFFER, maxIdle: 16, keepIdleMs: 5_000, tls: {}, ...opts };
    if (this.opts.bufferSize < MAX_HEADER + MIN_ROOM) throw new RangeError(`raw HTTP buffers must be at least ${MAX_HEADER + MIN_ROOM} bytes`);
  }

  /**
   * GET `target` (path and query, escaped) with `headers`; resolves once the answer's headers
   * arrived. A connection that was idle and turns out closed by the server is replaced once.
   */
  async get(target: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<RawResponse> {
    const head = `GET ${target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    for (;;) {
      const reused = this.takeIdle();
      const conn = reused ?? new Connection(this.origin, this.opts, (c) => this.giveBack(c));
      try {
        return await conn.request(head, signal);
      } catch (e) {
        const again = reused && conn.stale && !signal?.aborted;
        conn.destroy();
        if (!again) throw e;
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  private takeIdle(): Connection | undefined {
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.usable) return c;
    }
    return undefined;
  }

  private giveBack(c: Connection): void {
    if (this.closed || this.idle.length >= this.opts.maxIdle || !c.usable) return c.destroy();
    this.idle.push(c);
    c.park(() => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    });
  }
}
