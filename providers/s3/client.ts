// The S3 client of one env and the request helpers every S3 module shares: sending a command with
// its errors mapped to CairnErrors naming the key, HEAD with a missing bucket told apart from a
// missing key, and the counting of requests by verb.
import { HeadBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CairnError, throwIfAborted } from '../../src/errors.ts';
import type { BucketLocation } from '../object-store/location.ts';
import { RequestCounter } from '../object-store/request-counts.ts';
import { OffThreadSha256 } from './sha256.ts';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { DirectHead, templateOf, type HeadOutput, type SentRequest } from './direct-head.ts';
import { isCode, isNotFound, isStatus, mapS3Error, type ErrorWhere } from './errors.ts';
import type { S3Settings } from './options.ts';

/** Idle time after which a connection is dropped (and the request retried). */
const SOCKET_TIMEOUT = 120_000;

function createClient(s: S3Settings, counter: RequestCounter, sentHead: (r: SentRequest) => void): S3Client {
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
      if (context.commandName === 'HeadObjectCommand') sentHead(args.request as SentRequest);
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
  /** HEADs cairn sends itself once the SDK has sent one it can copy (direct-head.ts); null: not here. */
  private direct: DirectHead | null | undefined;
  private lastSdkHead: SentRequest | undefined;

  constructor(loc: BucketLocation, settings: S3Settings) {
    this.loc = loc;
    this.endpoint = settings.endpoint;
    this.client = createClient(settings, this.requests, (r) => (this.lastSdkHead = r));
    if (!settings.directHead) this.direct = null;
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
    if (this.direct) {
      this.requests.add('HEAD');
      const a = await this.direct.head(key, this.checksumMode, signal).catch((e: unknown) => {
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
      this.afterSdkHead(key, refused);
      return out;
    } catch (e) {
      if (isNotFound(e)) {
        await this.checkBucket(signal);
        return undefined;
      }
      throw mapS3Error(e, this.request('HeadObject', key, signal, file));
    }
  }

  /** After an SDK HEAD answered 200: copy it, unless cairn's own HEAD was just refused where the SDK's was not. */
  private afterSdkHead(key: string, directRefused: boolean): void {
    if (directRefused) {
      this.direct?.close();
      this.direct = null;
      return;
    }
    if (this.direct !== undefined) return;
    const sent = this.lastSdkHead;
    const t = sent && templateOf(sent, key);
    if (!t) return;
    const cfg = this.client.config as unknown as { credentials: AwsCredentialIdentityProvider; systemClockOffset?: number };
    this.direct = new DirectHead(t, cfg.credentials, () => cfg.systemClockOffset ?? 0, SOCKET_TIMEOUT);
  }

  close(): void {
    this.direct?.close();
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
