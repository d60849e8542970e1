// A small HTTP proxy on loopback, put between a client and a test server to inject faults into
// chosen requests: drop the connection (before or after the server saw the request), answer with
// an S3-style error (500 InternalError, 503 SlowDown), flip one byte of the request body in
// flight, delay the request, or cut an answer's body short. Every request is logged with the fault applied to it.
//
// `compat` makes the server behind it look like an S3-compatible store that lacks features cairn
// uses, for every request (not counted as faults): no checksums in any answer (x-amz-checksum-*
// headers and <Checksum…> elements of XML answers removed), If-None-Match refused with 501
// NotImplemented, requests carrying x-amz-checksum-* refused. Request headers are never removed:
// they are signed, and the server behind still validates what it receives (Content-MD5 included).
//
// Bounded: it serves at most `maxRequests` requests (then answers 503 to everything) and closes
// itself after `lifetimeMs`, even if the test forgets to stop it. Loopback only.
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export interface ProxiedRequest {
  /** 1-based arrival order. */
  index: number;
  method: string;
  /** Path and query, e.g. /bucket/key?partNumber=2&uploadId=... */
  url: string;
  headers: IncomingHttpHeaders;
}

export type FaultAction =
  /** Close the client connection without an answer, after reading `afterBodyBytes` of the body (default 0). The server never sees the request. */
  | { kind: 'drop'; afterBodyBytes?: number }
  /** Forward the request, let the server complete it, then close the client connection instead of answering. */
  | { kind: 'dropResponse' }
  /** Answer with this status and an S3 XML error body (the request body is drained, not forwarded). */
  | { kind: 'status'; status: number; code?: string; message?: string }
  /** Answer with this status and body as they are (the request is not forwarded). */
  | { kind: 'answer'; status: number; body: string }
  /** Forward with the body byte at `offset` (default: the middle) XOR-ed with `mask` (default 0x01). */
  | { kind: 'flipByte'; offset?: number; mask?: number }
  /** Hold the request for `ms` before forwarding it. */
  | { kind: 'delay'; ms: number }
  /** Forward, pass the answer's headers and its first `afterBytes` body bytes, then close the connection. */
  | { kind: 'cutResponse'; afterBytes: number }
  /** Forward, and send the answer's body with Transfer-Encoding: chunked instead of its Content-Length. */
  | { kind: 'chunked' };

export interface FaultRule {
  match: (r: ProxiedRequest) => boolean;
  action: FaultAction;
  /** How many matching requests get the fault (default 1). */
  times?: number;
}

/** What the emulated store lacks; see the header comment. */
export interface CompatMode {
  /** Remove x-amz-checksum-* (and ChecksumType) from answers' headers and XML bodies. */
  stripChecksums?: boolean;
  /** Answer PutObject and CompleteMultipartUpload requests with If-None-Match by 501 NotImplemented, unforwarded. */
  rejectIfNoneMatch?: boolean;
  /** Answer any request carrying an x-amz-checksum-* or x-amz-sdk-checksum-algorithm header by 400 InvalidArgument, unforwarded. */
  rejectChecksumHeaders?: boolean;
}

export interface FaultProxyOptions {
  /** The server, e.g. http://127.0.0.1:9000 (loopback only). */
  target: string;
  rules?: FaultRule[];
  compat?: CompatMode;
  maxRequests?: number;
  lifetimeMs?: number;
}

export interface LoggedRequest extends ProxiedRequest {
  fault?: FaultAction['kind'] | 'compat';
  /** Status sent back to the client (undefined when the connection was dropped). */
  status?: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT, to use as the S3 endpoint. */
  endpoint: string;
  log: LoggedRequest[];
  addRule(rule: FaultRule): void;
  /** Removes every rule not yet used up. */
  clearRules(): void;
  /** Number of faults applied so far. */
  faultsApplied(): number;
  stop(): Promise<void>;
}

/**
 * Passes the first `afterBytes` bytes of an upstream answer's body to the client, then closes
 * both connections (a body cut short by the network); shared with the GCS fault proxy.
 */
export function passFirstBytes(up: IncomingMessage, res: ServerResponse, client: Socket, afterBytes: number): void {
  let left = afterBytes;
  up.on('data', (c: Buffer) => {
    if (left <= 0) return;
    const part = c.subarray(0, left);
    left -= part.length;
    res.write(part, () => {
      if (left <= 0) {
        up.destroy();
        client.destroy();
      }
    });
  });
}

// Matchers for S3 requests (path-style).
export const isUploadPart = (r: ProxiedRequest) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url) && /[?&]uploadId=/.test(r.url);
export const isPutObject = (r: ProxiedRequest) => r.method === 'PUT' && !/[?&](partNumber|uploadId|uploads)=?/.test(r.url) && r.headers['x-amz-copy-source'] === undefined;
export const isCreateMultipart = (r: ProxiedRequest) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.url);
export const isCompleteMultipart = (r: ProxiedRequest) => r.method === 'POST' && /[?&]uploadId=/.test(r.url);
export const isHead = (r: ProxiedRequest) => r.method === 'HEAD';
export const isList = (r: ProxiedRequest) => r.method === 'GET' && /[?&]list-type=2(&|$)/.test(r.url);
export const nth = (n: number) => (r: ProxiedRequest) => r.index === n;

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);
const isChecksumHeader = (name: string) => /^x-amz-(checksum-|sdk-checksum-algorithm$)/i.test(name);

function rawHeadersWithout(raw: string[], drop: (lowerName: string) => boolean = () => false): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !drop(name)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** XML answers (Complete, ListParts, GetObjectAttributes, …) without their checksum elements. */
export function stripChecksumElements(xml: string): string {
  return xml.replace(/<(Checksum(?:CRC32C?|CRC64NVME|SHA1|SHA256|Type|Algorithm))>[^<]*<\/\1>/g, '');
}

/** Why `compat` refuses this request unforwarded, or undefined. */
function compatRefusal(compat: CompatMode | undefined, r: ProxiedRequest): { status: number; code: string; message: string } | undefined {
  if (compat?.rejectIfNoneMatch && r.headers['if-none-match'] !== undefined && (isPutObject(r) || isCompleteMultipart(r))) {
    return { status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented (If-None-Match)' };
  }
  if (compat?.rejectChecksumHeaders && Object.keys(r.headers).some(isChecksumHeader)) {
    return { status: 400, code: 'InvalidArgument', message: 'x-amz-checksum headers are not supported' };
  }
  return undefined;
}

function s3ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>`;
}

class FlipByte extends Transform {
  private seen = 0;
  private readonly offset: number;
  private readonly mask: number;
  constructor(offset: number, mask: number) {
    super();
    this.offset = offset;
    this.mask = mask;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.offset >= this.seen && this.offset < this.seen + chunk.length) {
      const copy = Buffer.from(chunk);
      const i = this.offset - this.seen;
      copy[i] = copy[i]! ^ this.mask;
      chunk = copy;
    }
    this.seen += chunk.length;
    cb(null, chunk);
  }
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(opts.target);
  if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(target.hostname)) throw new Error(`fault proxy targets loopback only, not ${target.hostname}`);
  const rules: Array<FaultRule & { left: number }> = (opts.rules ?? []).map((r) => ({ ...r, left: r.times ?? 1 }));
  const maxRequests = opts.maxRequests ?? 20_000;
  const log: LoggedRequest[] = [];
  let faults = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const pickFault = (r: ProxiedRequest): FaultAction | undefined => {
    for (const rule of rules) {
      if (rule.left > 0 && rule.match(r)) {
        rule.left--;
        faults++;
        return rule.action;
      }
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, entry: LoggedRequest, action: FaultAction | undefined) => {
    const up = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: rawHeadersWithout(req.rawHeaders),
        agent,
      },
      (upRes) => {
        if (action?.kind === 'dropResponse') {
          // Let the server finish, then lose its answer.
          upRes.resume();
          upRes.on('end', () => req.socket.destroy());
          return;
        }
        entry.status = upRes.statusCode;
        const strip = opts.compat?.stripChecksums === true;
        const headers = rawHeadersWithout(upRes.rawHeaders, (n) => (strip && isChecksumHeader(n)) || (action?.kind === 'chunked' && n === 'content-length'));
        // Object bodies pass untouched; only answers to requests with a query string (Complete,
        // ListParts, attributes) are XML documents that may list checksums.
        if (strip && req.url?.includes('?') && /xml/.test(String(upRes.headers['content-type'] ?? ''))) {
          const parts: Buffer[] = [];
          upRes.on('data', (c: Buffer) => parts.push(c));
          upRes.on('end', () => {
            const body = Buffer.from(stripChecksumElements(Buffer.concat(parts).toString('utf8')));
            const rest = rawHeadersWithout(headers, (n) => n === 'content-length' || n === 'transfer-encoding');
            res.writeHead(upRes.statusCode ?? 502, [...rest, 'content-length', String(body.length)]);
            res.end(body);
          });
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, headers);
        if (action?.kind === 'cutResponse') passFirstBytes(upRes, res, req.socket, action.afterBytes);
        else upRes.pipe(res);
      },
    );
    up.on('error', (e) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault proxy: upstream error ${e.message}`);
      } else {
        res.destroy();
      }
    });
    req.on('aborted', () => up.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    if (action?.kind === 'flipByte') {
      const len = Number(req.headers['content-length'] ?? 0);
      req.pipe(new FlipByte(action.offset ?? Math.floor(len / 2), action.mask ?? 0x01)).pipe(up);
    } else {
      req.pipe(up);
    }
  };

  const server = createServer((req, res) => {
    const entry: LoggedRequest = { index: log.length + 1, method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    log.push(entry);
    if (entry.index > maxRequests) {
      entry.status = 503;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end(s3ErrorXml('ServiceUnavailable', 'fault proxy request budget exhausted'));
      return;
    }
    const refusal = compatRefusal(opts.compat, entry);
    if (refusal !== undefined) {
      entry.fault = 'compat';
      req.resume();
      req.on('end', () => {
        entry.status = refusal.status;
        const body = s3ErrorXml(refusal.code, refusal.message);
        res.writeHead(refusal.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const action = pickFault(entry);
    if (action !== undefined) entry.fault = action.kind;
    switch (action?.kind) {
      case 'drop': {
        const after = action.afterBodyBytes ?? 0;
        if (after <= 0) {
          req.socket.destroy();
          return;
        }
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
          if (n >= after) req.socket.destroy();
        });
        req.on('end', () => req.socket.destroy());
        return;
      }
      case 'status': {
        req.resume();
        req.on('end', () => {
          entry.status = action.status;
          const body = req.method === 'HEAD' ? '' : s3ErrorXml(action.code ?? (action.status === 503 ? 'SlowDown' : 'InternalError'), action.message ?? (action.status === 503 ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.'));
          res.writeHead(action.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
      case 'answer': {
        req.resume();
        req.on('end', () => {
          entry.status = action.status;
          res.writeHead(action.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(action.body) });
          res.end(action.body);
        });
        return;
      }
      case 'delay': {
        req.pause();
        const t = setTimeout(() => {
          req.resume();
          forward(req, res, entry, undefined);
        }, action.ms);
        req.socket.once('close', () => clearTimeout(t));
        return;
      }
      default:
        forward(req, res, entry, action);
    }
  });
  server.on('clientError', (_e, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      clearTimeout(lifetime);
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    });
    return stopped;
  };
  const lifetime = setTimeout(() => void stop(), opts.lifetimeMs ?? 120_000);
  lifetime.unref();

  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    addRule: (rule) => rules.push({ ...rule, left: rule.times ?? 1 }),
    clearRules: () => rules.splice(0, rules.length),
    faultsApplied: () => faults,
    stop,
  };
}
