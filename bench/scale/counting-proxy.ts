// An HTTP proxy on loopback that counts the S3 requests passing through it by verb, so the
// bench's request counts do not depend on what cairn reports about itself.
import { createServer, request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Counts = Record<string, number>;

/** The S3 operation of a path-style request, from its method, query and headers. */
export function classify(req: IncomingMessage): string {
  const url = new URL(req.url ?? '/', 'http://x');
  const q = url.searchParams;
  const isObject = url.pathname.split('/').filter(Boolean).length > 1;
  switch (req.method) {
    case 'GET':
      if (q.has('list-type')) return 'LIST (ListObjectsV2)';
      if (q.has('uploads')) return 'ListMultipartUploads';
      if (q.has('uploadId')) return 'ListParts';
      if (!isObject) return `GET bucket ?${[...q.keys()].join('&')}`;
      return 'GET object';
    case 'HEAD':
      return isObject ? 'HEAD object' : 'HEAD bucket';
    case 'PUT':
      if (q.has('partNumber')) return req.headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      if (req.headers['x-amz-copy-source']) return 'COPY (CopyObject)';
      return 'PUT object';
    case 'POST':
      if (q.has('delete')) return 'DeleteObjects (POST ?delete)';
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return 'POST other';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DELETE object';
    default:
      return `${req.method} other`;
  }
}

export interface CountingProxy {
  endpoint: string;
  /** Counts since the last reset; `keys deleted by DeleteObjects` counts the keys in their bodies. */
  take(): Counts;
  stop(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  let counts: Counts = {};
  const add = (k: string, n = 1) => { counts[k] = (counts[k] ?? 0) + n; };
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const server = createServer((req, res) => {
    const kind = classify(req);
    add(kind);
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      if ((upRes.statusCode ?? 0) >= 400) add(`(answered ${upRes.statusCode})`);
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502).end(String(e));
      else res.destroy();
    });
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
    if (kind.startsWith('DeleteObjects')) {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => { body += c; up.write(c); });
      req.on('end', () => { add('keys deleted by DeleteObjects', (body.match(/<Key>/g) ?? []).length); up.end(); });
    } else {
      req.pipe(up);
    }
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    take: () => { const c = counts; counts = {}; return c; },
    stop: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); agent.destroy(); }),
  };
}
