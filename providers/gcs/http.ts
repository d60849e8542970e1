// The JSON API requests cairn sends itself, over node:http(s): the data path (resumable upload
// sessions, downloads), where @google-cloud/storage's transports cost memory and checks (see
// resumable.ts and read.ts). Metadata, listings, small uploads and deletes stay with the library.
// node:http rather than fetch: fetch copies a buffer body before sending it, and wraps a response
// body in web streams where a restore wants the socket's buffers as they come.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Signal } from './client.ts';
import { openRequest } from '../object-store/http.ts';

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

/** A request of cairn's own to GCS (object-store/http.ts), through the proxy-aware agents. */
export function open(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: Signal, idleMs: number): Promise<http.IncomingMessage> {
  const agent = agents[url.protocol as 'http:' | 'https:'];
  return openRequest(url, { method, headers: { ...headers, 'Content-Length': String(body?.length ?? 0) }, body, agent, signal, idleMs });
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
