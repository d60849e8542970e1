// One request over node:http(s) for the requests cairn sends itself instead of through a store's
// SDK (GCS's data path, S3 HEADs): the agent is the caller's (GCS's honours proxy variables, as
// its library does; S3's does not, as its SDK does not), the idle-connection policy is this one.
import * as http from 'node:http';
import * as https from 'node:https';
import { urlToHttpOptions } from 'node:url';

export interface RequestParts {
  method: string;
  headers: Record<string, string>;
  /** Written as it is; none: the request is ended without a body. */
  body?: Buffer | undefined;
  agent: http.Agent;
  signal?: AbortSignal | undefined;
  /** A connection silent this long is dropped. */
  idleMs: number;
}

/**
 * Sends a request to `target` (a URL, or protocol/host/port/path) and resolves with the response
 * once its headers arrived; its body is the caller's to read or drop. Network failures reject
 * with Node's error; a connection that goes silent (a stalled uplink, a hung server), in the
 * request or later in the body, is dropped as a reset (code ECONNRESET): retried, or resumed from
 * the bytes received.
 */
export function openRequest(target: URL | http.RequestOptions, p: RequestParts): Promise<http.IncomingMessage> {
  const base = target instanceof URL ? urlToHttpOptions(target) : target;
  const mod = base.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({ ...base, method: p.method, headers: p.headers, agent: p.agent, ...(p.signal ? { signal: p.signal } : {}) }, resolve);
    req.setTimeout(p.idleMs, () => {
      const host = base.port ? `${base.hostname}:${base.port}` : base.hostname;
      req.destroy(Object.assign(new Error(`${p.method} ${host}: no data for ${p.idleMs / 1000} s, connection dropped`), { code: 'ECONNRESET' }));
    });
    req.once('error', reject);
    req.end(p.body);
  });
}
