// HEAD requests cairn sends itself (direct-request.ts tells when and why), for the commands that
// send one per file (verify --server-checksum: one per distinct table file). A 200 or a 404 is
// the answer; anything else is asked again through the SDK.
import type * as http from 'node:http';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { Signal } from './client.ts';
import { SignedSender, encodeKeyPath, signingOf, type SentRequest, type SigningTemplate } from './direct-request.ts';

export { encodeKeyPath, type SentRequest } from './direct-request.ts';

/** What cairn reads from a HEAD answer. */
export type HeadOutput = Pick<
  HeadObjectCommandOutput,
  'ContentLength' | 'ETag' | 'ChecksumCRC32C' | 'ChecksumType' | 'LastModified' | 'VersionId' | 'ObjectLockMode' | 'ObjectLockRetainUntilDate'
>;

/** Where and how to send HEADs: copied from one the SDK sent. */
export interface HeadTemplate extends SigningTemplate {
  /** The path before the key (path-style: `/bucket/`). */
  pathPrefix: string;
}

/** Where and how to send HEADs like one the SDK sent for `key`; undefined where that is not safe to copy. */
export function templateOf(sent: SentRequest, key: string): HeadTemplate | undefined {
  if (sent.method !== 'HEAD' || Object.keys(sent.query ?? {}).length > 0) return undefined;
  const signing = signingOf(sent);
  const enc = encodeKeyPath(key);
  if (!signing || !sent.path.endsWith(enc)) return undefined;
  return { ...signing, pathPrefix: sent.path.slice(0, sent.path.length - enc.length) };
}

export type DirectAnswer = { status: 'found'; head: HeadOutput } | { status: 'missing' } | { status: 'retry'; refused: boolean };

export class DirectHead {
  private readonly pathPrefix: string;
  private readonly sender: SignedSender;

  constructor(t: HeadTemplate, credentials: AwsCredentialIdentityProvider, clockOffset: () => number, idleMs: number) {
    this.pathPrefix = t.pathPrefix;
    this.sender = new SignedSender(t, credentials, clockOffset, idleMs);
  }

  /** HEAD of `key`; `retry` means "ask the SDK" (`refused`: the store said no to this request, not a passing failure). */
  async head(key: string, checksumMode: boolean, signal: Signal): Promise<DirectAnswer> {
    let res: http.IncomingMessage;
    try {
      res = await this.sender.open('HEAD', this.pathPrefix + encodeKeyPath(key), {}, checksumMode ? { 'x-amz-checksum-mode': 'ENABLED' } : {}, signal);
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
    this.sender.close();
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
