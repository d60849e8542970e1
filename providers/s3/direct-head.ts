// HEAD requests cairn sends itself, for the commands that send one per file (verify
// --server-checksum: one per distinct table file). Through the SDK each HEAD pays for its
// middleware stack, schema serde and endpoint rules, several times what signing and sending it
// cost (README, Benchmark: verify --server-checksum).
//
// The SDK keeps deciding everything its rules decide: an env's first HEADs go through it, and the
// first one answered 200 becomes the template: where it went (protocol, host, port, the path
// before the key) and how it was signed (SigV4's scope: region and service). Later HEADs go to
// the same place with the key swapped, signed by the SDK's own SigV4 signer with the client's
// credential provider (refreshed as the SDK refreshes it) and clock offset. No template is taken
// where the SDK signed otherwise (SigV4a, S3 Express sessions) or encoded the key differently.
//
// Only a 200 or a 404 is taken as the answer. Anything else (a redirect, 400, 403, 5xx, a network
// error, a silent connection) is sent again through the SDK, which retries, follows redirects
// and maps errors; where the SDK then succeeds after a 3xx/4xx, cairn stops sending its own.
import * as http from 'node:http';
import * as https from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { Signal } from './client.ts';
import { OffThreadSha256 } from './sha256.ts';
import { openRequest } from '../object-store/http.ts';

/** What cairn reads from a HEAD answer. */
export type HeadOutput = Pick<
  HeadObjectCommandOutput,
  'ContentLength' | 'ETag' | 'ChecksumCRC32C' | 'ChecksumType' | 'LastModified' | 'VersionId' | 'ObjectLockMode' | 'ObjectLockRetainUntilDate'
>;

/** The signed request of an SDK HEAD, as the SDK's deserialize step sees it. */
export interface SentRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, unknown>;
  headers: Record<string, string>;
}

/** The SDK's encoding of a key in a path: each segment as encodeURIComponent, plus !'()*. */
export function encodeKeyPath(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SIGV4_SCOPE = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request,/;
/** Headers of the SDK's request kept as they were (the rest are the signer's or not needed). */
const KEPT = ['host', 'user-agent', 'x-amz-user-agent'];

/** Where and how to send HEADs: copied from one the SDK sent. */
export interface HeadTemplate {
  origin: Pick<SentRequest, 'protocol' | 'hostname' | 'port'>;
  /** The path before the key (path-style: `/bucket/`). */
  pathPrefix: string;
  /** SigV4's scope. */
  region: string;
  service: string;
  /** Sent as they were: host and user agents. */
  headers: Record<string, string>;
}

/** Where and how to send HEADs like one the SDK sent for `key`; undefined where that is not safe to copy. */
export function templateOf(sent: SentRequest, key: string): HeadTemplate | undefined {
  if (sent.method !== 'HEAD' || Object.keys(sent.query ?? {}).length > 0) return undefined;
  const lower = Object.fromEntries(Object.entries(sent.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const scope = SIGV4_SCOPE.exec(lower['authorization'] ?? '');
  if (!scope || lower['x-amz-s3session-token'] !== undefined || lower['host'] === undefined) return undefined;
  const enc = encodeKeyPath(key);
  if (!sent.path.endsWith(enc)) return undefined;
  const headers: Record<string, string> = {};
  for (const h of KEPT) if (lower[h] !== undefined) headers[h] = lower[h];
  return {
    origin: { protocol: sent.protocol, hostname: sent.hostname, ...(sent.port === undefined ? {} : { port: sent.port }) },
    pathPrefix: sent.path.slice(0, sent.path.length - enc.length),
    region: scope[1]!,
    service: scope[2]!,
    headers,
  };
}

export type DirectAnswer = { status: 'found'; head: HeadOutput } | { status: 'missing' } | { status: 'retry'; refused: boolean };

export class DirectHead {
  private readonly t: HeadTemplate;
  private readonly clockOffset: () => number;
  private readonly idleMs: number;
  private readonly signer: SignatureV4;
  private readonly agent: http.Agent;

  constructor(t: HeadTemplate, credentials: AwsCredentialIdentityProvider, clockOffset: () => number, idleMs: number) {
    this.t = t;
    this.clockOffset = clockOffset;
    this.idleMs = idleMs;
    this.signer = new SignatureV4({ credentials, region: t.region, service: t.service, sha256: OffThreadSha256, uriEscapePath: false, applyChecksum: false });
    this.agent = new (t.origin.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: 64 });
  }

  /** HEAD of `key`; `retry` means "ask the SDK" (`refused`: the store said no to this request, not a passing failure). */
  async head(key: string, checksumMode: boolean, signal: Signal): Promise<DirectAnswer> {
    const path = this.t.pathPrefix + encodeKeyPath(key);
    const headers: Record<string, string> = { ...this.t.headers, 'x-amz-content-sha256': EMPTY_SHA256 };
    if (checksumMode) headers['x-amz-checksum-mode'] = 'ENABLED';
    const signed = await this.signer.sign({ method: 'HEAD', ...this.t.origin, path, query: {}, headers }, { signingDate: new Date(Date.now() + this.clockOffset()) });
    let res: http.IncomingMessage;
    try {
      res = await openRequest({ ...this.t.origin, path }, { method: 'HEAD', headers: signed.headers, agent: this.agent, signal, idleMs: this.idleMs });
    } catch (e) {
      if (signal?.aborted) throw e;
      return { status: 'retry', refused: false };
    }
    res.resume();
    const s = res.statusCode ?? 0;
    if (s === 404) return { status: 'missing' };
    if (s !== 200) return { status: 'retry', refused: s < 500 && s !== 429 };
    return { status: 'found', head: outputOf(res.headers) };
  }

  close(): void {
    this.agent.destroy();
  }
}

function outputOf(h: http.IncomingHttpHeaders): HeadOutput {
  const one = (n: string): string | undefined => {
    const v = h[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const out: HeadOutput = {};
  const len = one('content-length');
  if (len !== undefined) out.ContentLength = Number(len);
  const set = <K extends keyof HeadOutput>(k: K, v: HeadOutput[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('ETag', one('etag'));
  set('ChecksumCRC32C', one('x-amz-checksum-crc32c'));
  set('ChecksumType', one('x-amz-checksum-type') as HeadOutput['ChecksumType']);
  set('VersionId', one('x-amz-version-id'));
  set('ObjectLockMode', one('x-amz-object-lock-mode') as HeadOutput['ObjectLockMode']);
  const lm = one('last-modified');
  if (lm !== undefined) out.LastModified = new Date(lm);
  const until = one('x-amz-object-lock-retain-until-date');
  if (until !== undefined) out.ObjectLockRetainUntilDate = new Date(until);
  return out;
}
