// GETs of object bodies cairn sends itself (direct-request.ts tells when and why), read by
// object-store/raw-http.ts into reused buffers: the reads that ask for reused buffers (restore,
// verify --checksum, manifests) and so take each chunk before asking for the next. Only a body
// framed as asked is taken: 200 for a whole object, 206 with the Content-Range of the range
// asked; anything else is asked again through the SDK.
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { Signal } from './client.ts';
import { RequestSigner, encodeKeyPath, signingOf, type SentRequest, type SigningTemplate } from './direct-request.ts';
import { RawHttpClient, UnframedAnswer, framedAsAsked, rangeHeader, type RawResponse } from '../object-store/raw-http.ts';

export { framedAsAsked } from '../object-store/raw-http.ts';

/** Where and how to send GETs: copied from one the SDK sent. */
export interface GetTemplate extends SigningTemplate {
  /** The path before the key (path-style: `/bucket/`). */
  pathPrefix: string;
  /** The SDK's own query (`x-id=GetObject`), sent as it was. */
  query: Record<string, string>;
}

/** Where and how to send GETs like one the SDK sent for `key`; undefined where that is not safe to copy. */
export function getTemplateOf(sent: SentRequest, key: string): GetTemplate | undefined {
  if (sent.method !== 'GET') return undefined;
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(sent.query ?? {})) {
    if (k !== 'x-id' || typeof v !== 'string') return undefined;
    query[k] = v;
  }
  const signing = signingOf(sent);
  const enc = encodeKeyPath(key);
  if (!signing || !sent.path.endsWith(enc)) return undefined;
  return { ...signing, pathPrefix: sent.path.slice(0, sent.path.length - enc.length), query };
}

export type GetAnswer = { status: 'body'; body: AsyncIterable<Uint8Array> } | { status: 'retry'; refused: boolean };

export class DirectGet {
  private readonly t: GetTemplate;
  private readonly signer: RequestSigner;
  private readonly client: RawHttpClient;

  constructor(t: GetTemplate, credentials: AwsCredentialIdentityProvider, clockOffset: () => number, idleMs: number) {
    this.t = t;
    this.signer = new RequestSigner(t, credentials, clockOffset);
    this.client = new RawHttpClient(t.origin, { idleMs });
  }

  /**
   * The bytes of `key` from `offset` (`length` of them, or to the end): each chunk valid until
   * the next is asked for. `retry` means "ask the SDK" (`refused`: the store answered something
   * other than the bytes asked for, not a passing failure).
   */
  async get(key: string, offset: number, length: number | undefined, signal: Signal): Promise<GetAnswer> {
    const range = rangeHeader(offset, length);
    const { target, headers } = await this.signer.sign('GET', this.t.pathPrefix + encodeKeyPath(key), this.t.query, range === undefined ? {} : { range });
    let res: RawResponse;
    try {
      res = await this.client.get(target, headers, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      // A body this client does not read (chunked, say) would come that way every time.
      return { status: 'retry', refused: e instanceof UnframedAnswer && e.status >= 200 && e.status < 300 };
    }
    if (framedAsAsked(res, offset, length)) return { status: 'body', body: res.body };
    res.discard();
    const s = res.status;
    return { status: 'retry', refused: s < 300 || (s < 500 && s !== 429 && s !== 416) };
  }

  close(): void {
    this.client.close();
  }
}
