// The S3 client of one env and the request helpers every S3 module shares: sending a command with
// its errors mapped to CairnErrors naming the key, HEAD with a missing bucket told apart from a
// missing key, and the counting of requests by verb.
import { HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CairnError, throwIfAborted } from '../../src/errors.ts';
import type { BucketLocation } from '../object-store/location.ts';
import { RequestCounter } from '../object-store/request-counts.ts';
import { OffThreadSha256 } from './sha256.ts';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { DirectHead, templateOf, type HeadOutput } from './direct-head.ts';
import { DirectList, listTemplateOf } from './direct-list.ts';
import { DirectGet, getTemplateOf } from './direct-get.ts';
import { DirectSwitch, type SentRequest } from './direct-request.ts';
import type { ListPage } from './list-page.ts';
import { isCode, isNotFound, isStatus, mapS3Error, type ErrorWhere } from './errors.ts';
import type { S3Settings } from './options.ts';

/** The commands whose requests cairn copies to send its own (direct-request.ts). */
const COPIED = new Set(['HeadObjectCommand', 'ListObjectsV2Command', 'GetObjectCommand']);

/** Idle time after which a connection is dropped (and the request retried). */
const SOCKET_TIMEOUT = 120_000;

function createClient(s: S3Settings, counter: RequestCounter, sent: (command: string, r: SentRequest) => void): S3Client {
  const client = new S3Client({
    ...(s.region === undefined ? {} : { region: s.region }),
    ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
    ...(s.credentials === undefined ? {} : { credentials: s.credentials }),
    ...(s.maxAttempts === undefined ? {} : { maxAttempts: s.maxAttempts }),
    forcePathStyle: s.forcePathStyle,
    followRegionRedirects: true,
    // cairn sends its own CRC32C on every upload and checks what the store kept; the SDK's
    // default (a CRC32 of its own, sent as an aws-chunked trailer) is neither comparable with
    // RocksDB's CRC32C nor understood by every S3-compatible server.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryMode: 'standard',
    sha256: OffThreadSha256,
    requestHandler: { connectionTimeout: 10_000, socketTimeout: SOCKET_TIMEOUT },
  });
  if (s.unsignedPayload) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const req = args.request as { headers?: Record<string, string> } | undefined;
        if (req?.headers && (context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand')) {
          req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
      { step: 'build', name: 'cairnUnsignedPayload' },
    );
  }
  // The deserialize step runs once per attempt (below the retry middleware): every request sent
  // is counted, retries included.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const method = (args.request as { method?: string } | undefined)?.method ?? 'UNKNOWN';
      counter.add(context.commandName?.startsWith('List') ? 'LIST' : method);
      if (context.commandName !== undefined && COPIED.has(context.commandName)) sent(context.commandName, args.request as SentRequest);
      return next(args);
    },
    { step: 'deserialize', name: 'cairnRequestCounter' },
  );
  return client;
}

export type Signal = AbortSignal | undefined;

export class S3Store {
  readonly client: S3Client;
  readonly loc: BucketLocation;
  readonly endpoint: string | undefined;
  readonly requests = new RequestCounter();
  /** HEAD asks for stored checksums; off where the store refuses x-amz-checksum-mode (probe.ts). */
  checksumMode = true;
  private bucketKnownToExist = false;
  /** HEADs, list pages and GETs cairn sends itself once the SDK has sent one it can copy (direct-request.ts). */
  private readonly directHead: DirectSwitch<DirectHead>;
  private readonly directList: DirectSwitch<DirectList>;
  private readonly directGet: DirectSwitch<DirectGet>;
  private readonly lastSdk = new Map<string, SentRequest>();

  constructor(loc: BucketLocation, settings: S3Settings) {
    this.loc = loc;
    this.endpoint = settings.endpoint;
    this.client = createClient(settings, this.requests, (command, r) => this.lastSdk.set(command, r));
    this.directHead = new DirectSwitch(settings.directHead);
    this.directList = new DirectSwitch(settings.directList);
    this.directGet = new DirectSwitch(settings.directGet);
  }

  get bucket(): string {
    return this.loc.bucket;
  }

  /** A request for error messages: the operation, the object, the file. */
  request(op: string, key: string | undefined, signal: Signal, file?: string): ErrorWhere {
    return {
      op,
      bucket: this.loc.bucket,
      ...(key === undefined ? {} : { key }),
      ...(file === undefined ? {} : { file }),
      ...(this.endpoint === undefined ? {} : { endpoint: this.endpoint }),
      ...(signal === undefined ? {} : { signal }),
    };
  }

  sendOpts(signal: Signal): { abortSignal?: AbortSignal } {
    return signal === undefined ? {} : { abortSignal: signal };
  }

  /** Runs one SDK call, converting whatever it throws. */
  async call<T>(op: string, key: string | undefined, signal: Signal, fn: () => Promise<T>, file?: string): Promise<T> {
    throwIfAborted(signal);
    try {
      return await fn();
    } catch (e) {
      throw mapS3Error(e, this.request(op, key, signal, file));
    }
  }

  /** HeadObject with the stored checksum; undefined when the key does not exist. */
  async head(key: string, signal: Signal, file?: string): Promise<HeadOutput | undefined> {
    throwIfAborted(signal);
    let refused = false;
    const direct = this.directHead.sender;
    if (direct) {
      this.requests.add('HEAD');
      const a = await direct.head(key, this.checksumMode, signal).catch((e: unknown) => {
        throw mapS3Error(e, this.request('HeadObject', key, signal, file));
      });
      if (a.status === 'found') return a.head;
      if (a.status === 'missing') {
        await this.checkBucket(signal);
        return undefined;
      }
      refused = a.refused;
    }
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: key, ...(this.checksumMode ? { ChecksumMode: 'ENABLED' as const } : {}) }), this.sendOpts(signal));
      this.directHead.afterSdk(refused, () => {
        const sent = this.lastSdk.get('HeadObjectCommand');
        const t = sent && templateOf(sent, key);
        return t && new DirectHead(t, ...this.signing());
      });
      return out;
    } catch (e) {
      if (isNotFound(e)) {
        await this.checkBucket(signal);
        return undefined;
      }
      throw mapS3Error(e, this.request('HeadObject', key, signal, file));
    }
  }

  /**
   * Bytes of `key` through cairn's own GET (direct-get.ts), each chunk valid until the next is
   * asked for; no body: send it through the SDK (`refused`: the store answered cairn's own GET
   * with something else than the bytes).
   */
  async getDirect(key: string, offset: number, length: number | undefined, signal: Signal, file?: string): Promise<{ body?: AsyncIterable<Uint8Array>; refused: boolean }> {
    const direct = this.directGet.sender;
    if (!direct) return { refused: false };
    this.requests.add('GET');
    const a = await direct.get(key, offset, length, signal).catch((e: unknown) => {
      throw mapS3Error(e, this.request('GetObject', key, signal, file));
    });
    return a.status === 'body' ? { body: a.body, refused: false } : { refused: a.refused };
  }

  /** After the SDK answered a GET of `key` (see DirectSwitch.afterSdk). */
  afterSdkGet(refused: boolean, key: string): void {
    this.directGet.afterSdk(refused, () => {
      const sent = this.lastSdk.get('GetObjectCommand');
      const t = sent && getTemplateOf(sent, key);
      return t && new DirectGet(t, ...this.signing());
    });
  }

  /** How cairn signs its own requests: the client's credential provider and clock offset, and the idle timeout. */
  private signing(): [AwsCredentialIdentityProvider, () => number, number] {
    const cfg = this.client.config as unknown as { credentials: AwsCredentialIdentityProvider; systemClockOffset?: number };
    return [cfg.credentials, () => cfg.systemClockOffset ?? 0, SOCKET_TIMEOUT];
  }

  /** One ListObjectsV2 page of the keys under `fullPrefix`, named relative to the env's prefix. */
  async listPage(fullPrefix: string, token: string | undefined, maxKeys: number | undefined, signal: Signal): Promise<ListPage> {
    throwIfAborted(signal);
    let refused = false;
    const direct = this.directList.sender;
    if (direct) {
      this.requests.add('LIST');
      const a = await direct.page(fullPrefix, token, maxKeys, signal).catch((e: unknown) => {
        throw mapS3Error(e, this.request('ListObjectsV2', fullPrefix, signal));
      });
      if (a.status === 'page') return a.page;
      refused = a.refused;
    }
    const page = await this.call('ListObjectsV2', fullPrefix, signal, () =>
      this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: fullPrefix,
          ...(token === undefined ? {} : { ContinuationToken: token }),
          ...(maxKeys === undefined ? {} : { MaxKeys: maxKeys }),
        }),
        this.sendOpts(signal),
      ),
    );
    this.directList.afterSdk(refused, () => {
      const sent = this.lastSdk.get('ListObjectsV2Command');
      const t = sent && listTemplateOf(sent, fullPrefix);
      return t && new DirectList(t, this.loc.prefix, ...this.signing());
    });
    const entries: ListPage['entries'] = [];
    for (const o of page.Contents ?? []) {
      const name = o.Key === undefined ? undefined : this.loc.relativeName(o.Key);
      if (name !== undefined) entries.push({ name, size: o.Size ?? 0, ...(o.LastModified ? { modified: o.LastModified.getTime() } : {}) });
    }
    return { entries, truncated: page.IsTruncated === true, next: page.NextContinuationToken || undefined };
  }

  close(): void {
    this.directHead.close();
    this.directList.close();
    this.directGet.close();
    this.client.destroy();
  }

  /** A 404 on HEAD does not say whether the key or the bucket is missing: ask once. */
  private async checkBucket(signal: Signal): Promise<void> {
    if (this.bucketKnownToExist) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.loc.bucket }), this.sendOpts(signal));
      this.bucketKnownToExist = true;
    } catch (e) {
      if (isStatus(e, 404) || isCode(e, 'NoSuchBucket', 'NotFound')) {
        throw new CairnError('NotFound', `bucket ${this.loc.bucket} does not exist (${this.loc.url})`, { cause: e });
      }
      // 403 and friends: HeadBucket needs s3:ListBucket, which object-level policies may lack. Unknown.
    }
  }
}
