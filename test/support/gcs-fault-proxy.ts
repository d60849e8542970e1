// A small HTTP proxy on 127.0.0.1 in front of fake-gcs-server, to inject faults into the GCS JSON
// API traffic of tests: answer with an error status instead of forwarding, flip a byte of a request
// body (an upload corrupted in flight) or of a response body (a download corrupted in flight).
// The Host header is forwarded unchanged, so the resumable-session URLs the server returns point
// back at the proxy.
// The proxy also answers resumable-session status queries (an empty PUT with `Content-Range:
// bytes */...`) itself, from what the server answered that session last: fake-gcs-server
// finalizes the session on such a query, with whatever bytes it holds, where GCS says where the
// session stands (308 and the bytes persisted, or the object once complete).
import * as http from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { passFirstBytes } from './fault-proxy.ts';

export interface RequestInfo {
  method: string;
  /** Path and query, as received. */
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type FaultAction =
  /** Answer with this status and a JSON error body; the server never sees the request. */
  | { kind: 'status'; status: number; message?: string; headers?: Record<string, string> }
  /** Forward, with the request body's byte at `at` (default 4096) XOR-ed with 0xff. */
  | { kind: 'flipRequest'; at?: number }
  /** Forward, and flip the response body's byte at `at` (default 4096). */
  | { kind: 'flipResponse'; at?: number }
  /** Close the connection without an answer. */
  | { kind: 'reset' }
  /** Read the request and never answer (a hung server or a stalled uplink). */
  | { kind: 'stall' }
  /** Forward, let the server complete the request, then close the connection instead of answering (a lost response). */
  | { kind: 'dropResponse' }
  /** Forward, pass the answer's headers and its first `afterBytes` body bytes, then close the connection. */
  | { kind: 'cutResponse'; afterBytes: number };

export interface FaultRule {
  match(req: RequestInfo): boolean;
  action: FaultAction;
  /** How many matching requests get the fault (default 1). */
  times?: number;
}

export interface LoggedRequest extends RequestInfo {
  fault?: FaultAction['kind'];
  status?: number;
}

export interface GcsFaultProxy {
  endpoint: string;
  /** Rules are tried in order; a rule applies to its first `times` matching requests. */
  addRule(rule: FaultRule): void;
  clearRules(): void;
  log: LoggedRequest[];
  stop(): Promise<void>;
}

function flipper(at: number): Transform {
  let pos = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (at >= pos && at < pos + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[at - pos] ^= 0xff;
      }
      pos += chunk.length;
      cb(null, chunk);
    },
  });
}

function isStatusQuery(r: RequestInfo): boolean {
  return r.method === 'PUT' && /upload_id=/.test(r.url) && /^bytes \*\//.test(String(r.headers['content-range'] ?? '')) && Number(r.headers['content-length'] ?? 0) === 0;
}

/** What the server last answered a resumable session's chunk. */
interface SessionState {
  range?: string;
  done?: { status: number; body: Buffer };
}

/** Matchers for the JSON API requests cairn makes. */
export const match = {
  simpleUpload: (r: RequestInfo) => r.method === 'POST' && r.url.startsWith('/upload/') && /uploadType=multipart/.test(r.url),
  resumableStart: (r: RequestInfo) => r.method === 'POST' && r.url.startsWith('/upload/') && /uploadType=resumable/.test(r.url),
  resumableChunk: (r: RequestInfo) => r.method === 'PUT' && r.url.startsWith('/upload/') && /upload_id=/.test(r.url) && !isStatusQuery(r),
  /** A resumable chunk whose first byte is at `offset` of the object. */
  chunkAt: (offset: number) => (r: RequestInfo) => match.resumableChunk(r) && String(r.headers['content-range'] ?? '').startsWith(`bytes ${offset}-`),
  /** The request that completes a resumable upload (its range names the total). */
  lastChunk: (r: RequestInfo) => match.resumableChunk(r) && /\/\d+$/.test(String(r.headers['content-range'] ?? '')),
  statusQuery: (r: RequestInfo) => isStatusQuery(r),
  download: (r: RequestInfo) => r.method === 'GET' && /[?&]alt=media/.test(r.url),
  metadata: (r: RequestInfo) => r.method === 'GET' && /\/storage\/v1\/b\/[^/]+\/o\/[^?]+/.test(r.url) && !/[?&]alt=media/.test(r.url),
  list: (r: RequestInfo) => r.method === 'GET' && /\/storage\/v1\/b\/[^/]+\/o(\?|$)/.test(r.url),
  delete: (r: RequestInfo) => r.method === 'DELETE' && r.url.startsWith('/storage/v1/'),
  copy: (r: RequestInfo) => r.method === 'POST' && /\/(rewriteTo|copyTo)\//.test(r.url),
};

export async function startGcsFaultProxy(target: string): Promise<GcsFaultProxy> {
  const t = new URL(target);
  const rules: Array<FaultRule & { left: number }> = [];
  const log: LoggedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const sessions = new Map<string, SessionState>();
  const sessionOf = (url: string) => new URLSearchParams(url.split('?')[1] ?? '').get('upload_id') ?? '';

  const server = http.createServer((req, res) => {
    const info: RequestInfo = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    const entry: LoggedRequest = { ...info };
    log.push(entry);
    const rule = rules.find((r) => r.left > 0 && r.match(info));
    if (rule) rule.left--;
    const action = rule?.action;
    if (action) entry.fault = action.kind;

    if (action?.kind === 'status') {
      req.resume();
      req.on('end', () => {
        entry.status = action.status;
        const body = JSON.stringify({ error: { code: action.status, message: action.message ?? `injected ${action.status}`, errors: [{ message: action.message ?? `injected ${action.status}`, reason: 'injected' }] } });
        res.writeHead(action.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...action.headers });
        res.end(body);
      });
      return;
    }
    if (!action && isStatusQuery(info)) {
      req.resume();
      req.on('end', () => {
        const st = sessions.get(sessionOf(info.url));
        if (st?.done) {
          entry.status = st.done.status;
          res.writeHead(st.done.status, { 'content-type': 'application/json', 'content-length': st.done.body.length });
          res.end(st.done.body);
          return;
        }
        entry.status = 308;
        res.writeHead(308, { ...(st?.range ? { range: st.range } : {}), 'content-length': 0 });
        res.end();
      });
      return;
    }
    if (action?.kind === 'stall') {
      req.resume();
      return;
    }
    if (action?.kind === 'reset') {
      req.resume();
      req.socket.destroy();
      return;
    }
    const upstream = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        entry.status = up.statusCode;
        if (match.resumableChunk(info)) {
          const id = sessionOf(info.url);
          const st = sessions.get(id) ?? {};
          sessions.set(id, st);
          if (up.statusCode === 308 && typeof up.headers.range === 'string') st.range = up.headers.range;
          if (up.statusCode === 200 || up.statusCode === 201) {
            const body: Buffer[] = [];
            up.on('data', (c: Buffer) => body.push(c));
            up.on('end', () => (st.done = { status: up.statusCode!, body: Buffer.concat(body) }));
          }
        }
        if (action?.kind === 'dropResponse') {
          up.resume();
          up.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (action?.kind === 'flipResponse') up.pipe(flipper(action.at ?? 4096)).pipe(res);
        else if (action?.kind === 'cutResponse') passFirstBytes(up, res, req.socket, action.afterBytes);
        else up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.on('aborted', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (action?.kind === 'flipRequest') req.pipe(flipper(action.at ?? 4096)).pipe(upstream);
    else req.pipe(upstream);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    addRule: (r) => rules.push({ ...r, left: r.times ?? 1 }),
    clearRules: () => {
      rules.length = 0;
    },
    log,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
