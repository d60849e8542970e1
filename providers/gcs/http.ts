// The JSON API requests cairn sends itself, over node:http(s): the data path (resumable upload
// sessions, downloads), where @google-cloud/storage's transports cost memory and checks (see
// resumable.ts and read.ts). Metadata, listings, small uploads and deletes stay with the library.
// node:http rather than fetch: fetch copies a buffer body before sending it, and wraps a response
// body in web streams where a restore wants the socket's buffers as they come.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Signal } from './client.ts';

// HTTP(S)_PROXY and NO_PROXY apply as they do to the library's requests (gaxios reads them too);
// Node before 24.5 ignores proxyEnv.
const agentOptions = { keepAlive: true, proxyEnv: process.env };
const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };

/** A reply's body is kept up to this many bytes (JSON metadata or an error). */
const MAX_REPLY = 1024 * 1024;

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTP error in the shape the library's errors have: `code` is the status (errors.ts and the retry predicate read it). */
export class GcsHttpError extends Error {
  readonly code: number;
  readonly errors: unknown[] | undefined;
  constructor(what: string, reply: Reply) {
    let detail = reply.body.toString('utf8', 0, Math.min(reply.body.length, 2000));
    let errors: unknown[] | undefined;
    try {
      const j = JSON.parse(detail) as { error?: { message?: string; errors?: unknown[] } };
      if (j.error?.message) detail = j.error.message;
      errors = j.error?.errors;
    } catch {
      /* not JSON: the text as it came */
    }
    super(`${what}: HTTP ${reply.status}${detail ? `: ${detail}` : ''}`);
    this.code = reply.status;
    this.errors = errors;
  }
}

/**
 * Sends a request (a buffer body is written as it is) and resolves with the response once its
 * headers arrived; its body is the caller's to read or drop. Network failures reject with Node's
 * error (its `code`, e.g. ECONNRESET, is what the retry predicate reads).
 */
export function open(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: Signal, idleMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method, headers: { ...headers, 'Content-Length': String(body?.length ?? 0) }, agent: agents[url.protocol as 'http:' | 'https:'], ...(signal ? { signal } : {}) }, resolve);
    // A connection that goes silent (a stalled uplink, a hung server) is dropped, in the request
    // or later in the body, as a reset: retried, or resumed from the bytes received.
    req.setTimeout(idleMs, () => {
      req.destroy(Object.assign(new Error(`${method} ${url.host}: no data for ${idleMs / 1000} s, connection dropped`), { code: 'ECONNRESET' }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

/** The whole (small) body of a response. */
export function replyOf(res: http.IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    res.on('data', (c: Buffer) => {
      if (len < MAX_REPLY) chunks.push(c);
      len += c.length;
    });
    res.once('error', reject);
    res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
  });
}

/** A request whose answer is read whole. */
export async function send(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: Signal, idleMs: number): Promise<Reply> {
  return replyOf(await open(url, method, headers, body, signal, idleMs));
}
