// Requests cairn signs and sends itself instead of through the SDK, for the kinds a command sends
// by the thousand or reads by the gigabyte: HEADs (verify --server-checksum, one per table file),
// ListObjectsV2 pages (a listing of 400k objects is 400 pages) and GETs of object bodies (restore,
// verify --checksum). Through the SDK each pays for its middleware stack, schema serde and
// endpoint rules, a listing page for its XML parsed into objects that turn into garbage at once,
// and a body for node:http's 64 KiB socket reads (README, Benchmark: verify --server-checksum,
// Memory, restore).
//
// The SDK keeps deciding everything its rules decide: an env's first requests of a kind go
// through it, and the first one answered 200 becomes the template: where it went (protocol, host,
// port, path) and how it was signed (SigV4's scope: region and service). Later requests of that
// kind go to the same place, signed by the SDK's own SigV4 signer with the client's credential
// provider (refreshed as the SDK refreshes it) and clock offset. No template is taken where the
// SDK signed otherwise (SigV4a, S3 Express sessions).
//
// Only an answer the caller understands is taken (a HEAD's 200 or 404, a list page's 200 that
// parses). Anything else (a redirect, 400, 403, 5xx, a network error, a silent connection) is
// sent again through the SDK, which retries, follows redirects and maps errors; where the SDK
// then succeeds after a refusal, cairn stops sending its own requests of that kind (client.ts).
import * as http from 'node:http';
import * as https from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { Signal } from './client.ts';
import { OffThreadSha256 } from './sha256.ts';
import { openRequest } from '../object-store/http.ts';

/** A signed request of the SDK's, as its deserialize step sees it. */
export interface SentRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, unknown>;
  headers: Record<string, string>;
}

/** Where and how to sign requests: copied from one the SDK sent. */
export interface SigningTemplate {
  origin: Pick<SentRequest, 'protocol' | 'hostname' | 'port'>;
  /** SigV4's scope. */
  region: string;
  service: string;
  /** Sent as they were: host and user agents. */
  headers: Record<string, string>;
}

/** RFC 3986 escaping, as SigV4 and the SDK do it: encodeURIComponent plus !'()*. */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The SDK's encoding of a key in a path: each segment escaped, the slashes kept. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(escapeUri).join('/');
}

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SIGV4_SCOPE = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request,/;
/** Headers of the SDK's request kept as they were (the rest are the signer's or not needed). */
const KEPT = ['host', 'user-agent', 'x-amz-user-agent'];

/** The origin, SigV4 scope and static headers of a request the SDK signed; undefined where copying them is not safe. */
export function signingOf(sent: SentRequest): SigningTemplate | undefined {
  const lower = Object.fromEntries(Object.entries(sent.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const scope = SIGV4_SCOPE.exec(lower['authorization'] ?? '');
  if (!scope || lower['x-amz-s3session-token'] !== undefined || lower['host'] === undefined) return undefined;
  const headers: Record<string, string> = {};
  for (const h of KEPT) if (lower[h] !== undefined) headers[h] = lower[h];
  return {
    origin: { protocol: sent.protocol, hostname: sent.hostname, ...(sent.port === undefined ? {} : { port: sent.port }) },
    region: scope[1]!,
    service: scope[2]!,
    headers,
  };
}

/** Signs bodiless requests to one origin as the SDK would, with the client's credentials and clock offset. */
export class RequestSigner {
  readonly t: SigningTemplate;
  private readonly clockOffset: () => number;
  private readonly signer: SignatureV4;

  constructor(t: SigningTemplate, credentials: AwsCredentialIdentityProvider, clockOffset: () => number) {
    this.t = t;
    this.clockOffset = clockOffset;
    this.signer = new SignatureV4({ credentials, region: t.region, service: t.service, sha256: OffThreadSha256, uriEscapePath: false, applyChecksum: false });
  }

  /** `method` of `path` (escaped already) with `query` (raw values): the request target (path and query) and its signed headers. */
  async sign(method: 'GET' | 'HEAD', path: string, query: Record<string, string>, extraHeaders: Record<string, string>): Promise<{ target: string; headers: Record<string, string> }> {
    const headers: Record<string, string> = { ...this.t.headers, 'x-amz-content-sha256': EMPTY_SHA256, ...extraHeaders };
    const signed = await this.signer.sign({ method, ...this.t.origin, path, query, headers }, { signingDate: new Date(Date.now() + this.clockOffset()) });
    const qs = Object.entries(query).map(([k, v]) => `${escapeUri(k)}=${escapeUri(v)}`).join('&');
    return { target: qs === '' ? path : `${path}?${qs}`, headers: signed.headers };
  }
}

/** Signs and sends bodiless requests to one origin over its own keep-alive agent. */
export class SignedSender {
  private readonly signer: RequestSigner;
  private readonly idleMs: number;
  private readonly agent: http.Agent;

  constructor(t: SigningTemplate, credentials: AwsCredentialIdentityProvider, clockOffset: () => number, idleMs: number) {
    this.signer = new RequestSigner(t, credentials, clockOffset);
    this.idleMs = idleMs;
    this.agent = new (t.origin.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: 64 });
  }

  /**
   * Sends `method` to `path` (escaped already) with `query` (raw values); resolves once the
   * headers arrived, or rejects with the network error (or the abort).
   */
  async open(method: 'GET' | 'HEAD', path: string, query: Record<string, string>, extraHeaders: Record<string, string>, signal: Signal): Promise<http.IncomingMessage> {
    const { target, headers } = await this.signer.sign(method, path, query, extraHeaders);
    return openRequest({ ...this.signer.t.origin, path: target }, { method, headers, agent: this.agent, signal, idleMs: this.idleMs });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Whether cairn sends one kind of request itself: not yet (no template taken), yes (its sender),
 * or no more for this env (off, or refused where the SDK was not).
 */
export class DirectSwitch<T extends { close(): void }> {
  private state: T | null | undefined;

  constructor(enabled: boolean) {
    this.state = enabled ? undefined : null;
  }

  get sender(): T | null | undefined {
    return this.state;
  }

  /**
   * After the SDK answered a request of this kind: a refusal of cairn's own just before turns
   * them off; else the first request `make` can copy becomes the template.
   */
  afterSdk(directRefused: boolean, make: () => T | undefined): void {
    if (directRefused) {
      this.close();
      this.state = null;
    } else if (this.state === undefined) {
      this.state = make();
    }
  }

  close(): void {
    this.state?.close();
  }
}
