// One connection of the raw HTTP/1.1 client (raw-http.ts tells why it exists): a socket reading
// (`onread`) into two buffers of its own that take turns, the answer's head parsed from the first
// bytes, and the body handed to the caller a buffer at a time; the socket stops reading while
// both buffers are taken.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { REUSABLE_CHUNK_MIN } from '../../src/env.ts';

export interface RawOrigin {
  protocol: string;
  hostname: string;
  port?: number | undefined;
}

export interface RawResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** The body's length (Content-Length). */
  length: number;
  /**
   * The body; each chunk of REUSABLE_CHUNK_MIN bytes or more is valid only until the next is
   * asked for (smaller ones are copies). Read it to the end, or leave the loop (the connection
   * is dropped), or call discard().
   */
  body: AsyncIterable<Uint8Array>;
  discard(): void;
}

/** Why a request was not answered in a form this client reads: the caller asks its SDK instead. */
export class UnframedAnswer extends Error {
  readonly status: number;
  constructor(status: number, why: string) {
    super(why);
    this.status = status;
  }
}

/** A buffer with less room than this is handed over rather than read into further. */
export const MIN_ROOM = 64 * 1024;
export const MAX_HEADER = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export function reset(message: string): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

type Phase = 'idle' | 'head' | 'body';
export interface RawClientOptions {
  /** A connection silent this long while a request is open is dropped (code ECONNRESET). */
  idleMs: number;
  /** Each of a connection's two read buffers; a body arrives in chunks of about this size. */
  bufferSize?: number;
  /** Idle connections kept for reuse (each keeps its buffers). */
  maxIdle?: number;
  /** An idle connection is closed after this long. */
  keepIdleMs?: number;
  /** For https: TLS options beyond the host's name (a CA, say); default: Node's trust store. */
  tls?: tls.ConnectionOptions;
}

/** What a connection is told by its client: the client's options, defaults applied. */
export type ConnectionOptions = Required<RawClientOptions>;

/** One socket, its two buffers, and the request open on it (one at a time). */
export class Connection {
  private readonly socket: net.Socket;
  private readonly bufs: [Buffer, Buffer];
  private readonly release: (c: Connection) => void;
  private readonly idleMs: number;
  private readonly keepIdleMs: number;
  private phase: Phase = 'idle';
  /** The buffer being read into, the bytes in it, and where its undelivered body bytes start. */
  private cur = 0;
  private fill = 0;
  private start = 0;
  /** The other buffer: free, delivered (waiting to be taken), or held by the caller. */
  private other: 'free' | 'ready' | 'held' = 'free';
  private ready: Uint8Array | undefined;
  private paused = false;
  private keepAlive = true;
  private length = 0;
  private received = 0;
  private failure: Error | undefined;
  private everAnswered = false;
  private headWaiter: { resolve: (r: RawResponse) => void; reject: (e: Error) => void } | undefined;
  private bodyWaiter: (() => void) | undefined;
  private onAbort: (() => void) | undefined;
  private signal: AbortSignal | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private unpark: (() => void) | undefined;

  constructor(origin: RawOrigin, opts: ConnectionOptions, release: (c: Connection) => void) {
    this.release = release;
    this.idleMs = opts.idleMs;
    this.keepIdleMs = opts.keepIdleMs;
    this.bufs = [Buffer.allocUnsafeSlow(opts.bufferSize), Buffer.allocUnsafeSlow(opts.bufferSize)];
    const onread = { buffer: () => this.readTarget(), callback: (n: number, into: Uint8Array) => this.onRead(n, into) };
    const https = origin.protocol === 'https:';
    const port = origin.port ?? (https ? 443 : 80);
    // (A URL's IPv6 literal comes in brackets; sockets take the bare address.)
    const host = origin.hostname.replace(/^\[(.*)\]$/, '$1');
    this.socket = https
      ? // (onread is honoured by TLS sockets too; Node's types list it for net only.)
        tls.connect({ ...opts.tls, host, port, ...(net.isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'], onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('end', () => this.fail(reset(`connection closed by ${origin.hostname}`)));
    this.socket.on('close', () => this.fail(reset(`connection to ${origin.hostname} closed`)));
    this.socket.on('timeout', () => this.socket.destroy(reset(`GET ${origin.hostname}: no data for ${this.idleMs / 1000} s, connection dropped`)));
  }

  /** Reusable: open, and closed neither by us nor by the server. */
  get usable(): boolean {
    return this.failure === undefined && !this.socket.destroyed && this.keepAlive;
  }

  /** Failed before any byte of an answer on a connection that had answered before: the server closed it while idle. */
  get stale(): boolean {
    return this.everAnswered && this.phase === 'head' && this.fill === 0;
  }

  destroy(): void {
    clearTimeout(this.idleTimer);
    this.socket.destroy();
  }

  /** Kept idle: unreferenced (it does not hold the process open) and closed after a while. */
  park(onGone: () => void): void {
    this.socket.unref();
    this.socket.setTimeout(0);
    this.unpark = onGone;
    this.idleTimer = setTimeout(() => {
      onGone();
      this.destroy();
    }, this.keepIdleMs);
    this.idleTimer.unref();
  }

  request(head: string, signal: AbortSignal | undefined): Promise<RawResponse> {
    clearTimeout(this.idleTimer);
    this.unpark = undefined;
    this.socket.ref();
    this.socket.setTimeout(this.idleMs);
    this.phase = 'head';
    this.cur = 0;
    this.fill = 0;
    this.start = 0;
    this.other = 'free';
    this.received = 0;
    this.signal = signal;
    return new Promise<RawResponse>((resolve, reject) => {
      this.headWaiter = { resolve, reject };
      if (signal) {
        if (signal.aborted) return this.abort();
        this.onAbort = () => this.abort();
        signal.addEventListener('abort', this.onAbort, { once: true });
      }
      this.socket.write(head);
    });
  }

  private abort(): void {
    this.socket.destroy(this.signal?.reason instanceof Error ? this.signal.reason : reset('aborted'));
  }

  private readTarget(): Buffer {
    const b = this.bufs[this.cur];
    // Full (a read arrived while paused and took the last room): the extra bytes are refused.
    return this.fill < b.length ? b.subarray(this.fill) : Buffer.alloc(1);
  }

  private onRead(n: number, into: Uint8Array): boolean {
    const b = this.bufs[this.cur];
    if (this.fill >= b.length || this.phase === 'idle') {
      this.socket.destroy(reset(this.phase === 'idle' ? 'data from the server on an idle connection' : 'read past a paused connection'));
      return false;
    }
    // The socket asks for its next buffer right after each read: one asked for before a handover
    // (or before the request began) is the old place; the bytes are moved where they belong. That
    // place lies past every byte handed over, and the new place is empty: nothing is overwritten.
    if (into.buffer !== b.buffer || into.byteOffset !== b.byteOffset + this.fill) {
      if (n > b.length - this.fill) {
        this.socket.destroy(reset('a read larger than the room left'));
        return false;
      }
      b.set(into.subarray(0, n), this.fill);
    }
    const before = this.fill;
    this.fill += n;
    if (this.phase === 'head') {
      const end = b.subarray(0, this.fill).indexOf(CRLFCRLF, Math.max(0, before - 3));
      if (end < 0) {
        if (this.fill > MAX_HEADER) this.socket.destroy(reset(`answer headers over ${MAX_HEADER} bytes`));
        return true;
      }
      if (!this.answer(b.toString('latin1', 0, end))) return false;
      this.start = end + 4;
      this.received = this.fill - this.start;
    } else {
      this.received += n;
    }
    if (this.received > this.length) {
      this.socket.destroy(reset(`the server sent more than the ${this.length} bytes of its Content-Length`));
      return false;
    }
    this.pump();
    return !this.paused;
  }

  /** Parses the status line and headers; resolves the request (or rejects an answer not read here). */
  private answer(text: string): boolean {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers.set(k, headers.has(k) ? `${headers.get(k)}, ${v}` : v);
    }
    const status = m ? Number(m[2]) : 0;
    const len = headers.get('content-length');
    const why = !m
      ? `not an HTTP/1.x answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`
      : status < 200
        ? `interim answer ${status}`
        : headers.has('transfer-encoding')
          ? `body framed by Transfer-Encoding: ${headers.get('transfer-encoding')}`
          : len === undefined || !/^\d+$/.test(len)
            ? 'no Content-Length'
            : undefined;
    this.everAnswered = true;
    if (why !== undefined) {
      this.keepAlive = false;
      this.socket.destroy();
      this.settleHead(new UnframedAnswer(status, why));
      return false;
    }
    this.length = Number(len);
    this.keepAlive = m![1] === '1' && !/\bclose\b/i.test(headers.get('connection') ?? '');
    this.phase = 'body';
    const w = this.headWaiter;
    this.headWaiter = undefined;
    w?.resolve({ status, headers, length: this.length, body: this.body(), discard: () => this.discard() });
    return true;
  }

  private settleHead(e: Error): void {
    const w = this.headWaiter;
    if (!w) return;
    this.headWaiter = undefined;
    this.stopListening();
    w.reject(e);
  }

  private stopListening(): void {
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    this.onAbort = undefined;
  }

  private get done(): boolean {
    return this.phase === 'body' && this.received === this.length;
  }

  /** Hands the buffer being filled over when it is full or the body complete, if the other is free. */
  private pump(): void {
    const b = this.bufs[this.cur];
    const avail = this.fill - this.start;
    const due = this.done ? avail > 0 : b.length - this.fill < MIN_ROOM;
    if (due && this.other === 'free') {
      const view = b.subarray(this.start, this.fill);
      this.ready = view.length >= REUSABLE_CHUNK_MIN ? view : Buffer.from(view);
      this.other = 'ready';
      this.cur ^= 1;
      this.fill = 0;
      this.start = 0;
      this.wake();
    }
    const stuck = this.fill > 0 && this.bufs[this.cur].length - this.fill < MIN_ROOM;
    if (stuck && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!stuck && this.paused && !this.done) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private wake(): void {
    const w = this.bodyWaiter;
    this.bodyWaiter = undefined;
    w?.();
  }

  private fail(e: Error): void {
    if (this.failure === undefined && this.phase !== 'idle') this.failure = this.signal?.aborted && this.signal.reason instanceof Error ? this.signal.reason : e;
    if (this.phase === 'idle') {
      this.unpark?.();
      this.keepAlive = false;
    }
    this.settleHead(this.failure ?? e);
    this.wake();
  }

  private async *body(): AsyncGenerator<Uint8Array> {
    let finished = false;
    try {
      for (;;) {
        if (this.other === 'held') {
          this.other = 'free';
          this.pump();
        }
        if (this.other === 'ready') {
          this.other = 'held';
          const v = this.ready!;
          this.ready = undefined;
          yield v;
          continue;
        }
        if (this.done && this.fill === this.start) {
          finished = true;
          return;
        }
        if (this.failure) throw this.failure;
        await new Promise<void>((r) => (this.bodyWaiter = r));
      }
    } finally {
      this.endRequest(finished);
    }
  }

  private discard(): void {
    this.keepAlive = false;
    this.endRequest(false);
  }

  private endRequest(complete: boolean): void {
    if (this.phase === 'idle') return;
    this.stopListening();
    this.signal = undefined;
    this.ready = undefined;
    const reusable = complete && this.usable;
    this.phase = 'idle';
    this.other = 'free';
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (reusable) this.release(this);
    else this.destroy();
  }
}
