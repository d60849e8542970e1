// ListObjectsV2 pages cairn requests itself (direct-request.ts tells when and why) and reads
// without the SDK (list-page.ts): a page is taken when it is a 200 that parses; anything else is
// asked again through the SDK.
import type * as http from 'node:http';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { Signal } from './client.ts';
import { SignedSender, signingOf, type SentRequest, type SigningTemplate } from './direct-request.ts';
import { parseListPage, type ListPage } from './list-page.ts';

/** Where and how to send list requests: copied from one the SDK sent. */
export interface ListTemplate extends SigningTemplate {
  /** The bucket's path (path-style: `/bucket/`; virtual-hosted: `/`). */
  path: string;
  /** Query parameters the SDK sent that do not change per page (`list-type=2`, ...). */
  fixedQuery: Record<string, string>;
}

/** What changes per page, and what is therefore not copied. */
const PER_PAGE = new Set(['prefix', 'continuation-token', 'max-keys', 'start-after']);

/** Where and how to list like the SDK's request `sent`, which listed `prefix`; undefined where that is not safe to copy. */
export function listTemplateOf(sent: SentRequest, prefix: string): ListTemplate | undefined {
  const q = sent.query ?? {};
  if (sent.method !== 'GET' || q['list-type'] !== '2' || q['prefix'] !== prefix) return undefined;
  const fixedQuery: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) {
    if (typeof v !== 'string') return undefined;
    if (!PER_PAGE.has(k)) fixedQuery[k] = v;
  }
  const signing = signingOf(sent);
  return signing && { ...signing, path: sent.path, fixedQuery };
}

export type ListAnswer = { status: 'page'; page: ListPage } | { status: 'retry'; refused: boolean };

/** A page's body beyond this is not a page (1,000 keys of 1 KiB each, with their XML, is ~1.3 MiB). */
const MAX_PAGE_BYTES = 16 << 20;

export class DirectList {
  private readonly t: ListTemplate;
  private readonly keyPrefix: Buffer;
  private readonly sender: SignedSender;

  /** `keyPrefix`: the env's prefix, cut off every listed key. */
  constructor(t: ListTemplate, keyPrefix: string, credentials: AwsCredentialIdentityProvider, clockOffset: () => number, idleMs: number) {
    this.t = t;
    this.keyPrefix = Buffer.from(keyPrefix, 'utf8');
    this.sender = new SignedSender(t, credentials, clockOffset, idleMs);
  }

  /**
   * One page of the keys under `prefix`; `retry` means "ask the SDK" (`refused`: the store said
   * no to this request, or answered what this reader does not understand).
   */
  async page(prefix: string, token: string | undefined, maxKeys: number | undefined, signal: Signal): Promise<ListAnswer> {
    const query: Record<string, string> = { ...this.t.fixedQuery, prefix };
    if (token !== undefined) query['continuation-token'] = token;
    if (maxKeys !== undefined) query['max-keys'] = String(maxKeys);
    let body: Buffer | undefined;
    let status: number;
    try {
      const res = await this.sender.open('GET', this.t.path, query, {}, signal);
      status = res.statusCode ?? 0;
      if (status !== 200) res.resume();
      else body = await readBody(res);
    } catch (e) {
      if (signal?.aborted) throw e;
      return { status: 'retry', refused: false };
    }
    if (status !== 200) return { status: 'retry', refused: status < 500 && status !== 429 };
    const page = body && parseListPage(body, this.keyPrefix);
    return page ? { status: 'page', page } : { status: 'retry', refused: body !== undefined };
  }

  close(): void {
    this.sender.close();
  }
}

/** The whole body, or undefined when it is larger than any page. */
async function readBody(res: http.IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_PAGE_BYTES) {
      res.destroy();
      return undefined;
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}
