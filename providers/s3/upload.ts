// Writing to S3. cairn computes the CRC32C of every byte it sends, in the same pass that reads
// them, and hands it to the store, which recomputes it and refuses the write on a mismatch before
// anything becomes visible:
//   - up to one part size: PutObject with x-amz-checksum-crc32c;
//   - larger: CreateMultipartUpload{CRC32C, FULL_OBJECT}, UploadPart with each part's CRC32C,
//     CompleteMultipartUpload{FULL_OBJECT, CRC32C of the whole file}.
// After the write, HeadObject(ChecksumMode=ENABLED) must return that same full-object CRC32C:
// it is what serverChecksum() later answers without downloading. Stores that keep no CRC32C get
// the compatible path instead (Content-MD5, ETag checked): write-strategy.ts.
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import type { WriteOptions, WriteResult, WriteSource } from '../../src/env.ts';
import { CairnError, invalidArgument, ioError, throwIfAborted } from '../../src/errors.ts';
import { crc32cToBase64, crc32cUpdate } from '../../src/crc32c.ts';
import { PartPool, type HeldBuffers, type Part as SplitPart } from '../object-store/parts.ts';
import { MemoryBudget } from '../../src/io/memory-budget.ts';
import { fanOut } from '../../src/io/fan-out.ts';
import { WriteTally } from '../object-store/write-checks.ts';
import { isCode, isPreconditionFailed, mapS3Error, s3ErrorInfo } from './errors.ts';
import { CRC32C_STRATEGY, md5Of, storedMatches, verifyStored, type SentDigests, type WriteStrategy } from './write-strategy.ts';
import { MAX_PARTS, MiB, type S3Settings } from './options.ts';
import type { S3Store, Signal } from './client.ts';
import type { UploadLeftovers } from './cleanup.ts';
import type { S3Retention } from './retention.ts';

/** A part, with its MD5 for Content-MD5 (md5 strategy). */
interface Part extends SplitPart {
  md5?: Buffer;
}

/** The part size for a file of `size` bytes (unknown: the configured one), within 10,000 parts. */
export function partSizeFor(configured: number, size: number | undefined): number {
  if (size === undefined || Math.ceil(size / configured) <= MAX_PARTS) return configured;
  return Math.ceil(size / MAX_PARTS / MiB) * MiB;
}

/** One write in progress: its key, its options and the tally of what it has read. */
interface Upload {
  name: string;
  key: string;
  opts: WriteOptions;
  tally: WriteTally;
  strategy: WriteStrategy;
  /** Per-part digests for the check after the write (write-strategy.ts). */
  md5s: Buffer[];
  partCrcs: number[];
  multipart: boolean;
  buffers: HeldBuffers;
}

export class S3Uploader {
  private readonly store: S3Store;
  private readonly settings: S3Settings;
  private readonly leftovers: UploadLeftovers;
  private readonly retention: S3Retention | undefined;
  /**
   * Default-size part buffers, reused across writes and emptied once no write has run for a
   * while; every part buffer of every write in flight comes out of its budget (settings.memoryBudget).
   */
  private readonly parts: PartPool;
  /** Set by the env once the store is known (probe.ts); until then, and with CAIRN_S3_CHECKSUM=crc32c, the CRC32C protocol. */
  strategy: WriteStrategy = CRC32C_STRATEGY;

  constructor(store: S3Store, settings: S3Settings, leftovers: UploadLeftovers, retention?: S3Retention) {
    this.store = store;
    this.settings = settings;
    this.leftovers = leftovers;
    this.retention = retention;
    this.parts = new PartPool(settings.partSize, new MemoryBudget(settings.memoryBudget));
  }

  private encryption() {
    const s = this.settings;
    return {
      ...(s.storageClass === undefined ? {} : { StorageClass: s.storageClass }),
      ...(s.sse === undefined ? {} : { ServerSideEncryption: s.sse }),
      ...(s.kmsKeyId === undefined ? {} : { SSEKMSKeyId: s.kmsKeyId }),
    };
  }

  /** Lets the pooled part buffers go now (the env is closing). */
  release(): void {
    this.parts.release();
  }

  async write(name: string, source: WriteSource, opts: WriteOptions): Promise<WriteResult> {
    const key = this.store.loc.key(name);
    throwIfAborted(opts.signal);
    const tally = new WriteTally(name, opts);
    // A file too large for 10,000 default parts gets larger ones, from the same budget.
    const partSize = partSizeFor(this.settings.partSize, opts.size);
    const strategy = this.strategy;
    const up = await this.parts.withParts(source, partSize, tally, opts, this.store.loc.where(key), name, async (read, buffers) => {
      const up: Upload = { name, key, opts, tally, buffers, strategy, md5s: [], partCrcs: [], multipart: false };
      const next = async (): Promise<Part | undefined> => {
        const part: Part | undefined = await read();
        if (part && strategy.contentMd5) part.md5 = md5Of(part.data);
        return part;
      };
      const first = (await next())!;
      if (first.last) {
        tally.checkEnd();
        if (first.md5) up.md5s.push(first.md5);
        await this.putSingle(up, first.data);
        buffers.give(first.pooled);
      } else {
        up.multipart = true;
        await this.putMultipart(up, first, next);
      }
      return up;
    });
    // Not abortable: the object is published at this point, an abort could only hide the result.
    await this.verifyStored(up);
    return { size: tally.size, crc32c: tally.crc32c };
  }

  private async putSingle(up: Upload, data: Buffer): Promise<void> {
    const { signal, createOnly } = up.opts;
    const { store } = this;
    const s = up.strategy;
    throwIfAborted(signal);
    // Without If-None-Match, create-only is a HEAD first (see write-strategy.ts).
    if (createOnly && !s.ifNoneMatch.put && (await store.head(up.key, signal, up.name)) !== undefined) throw this.alreadyExists(up, undefined);
    try {
      await store.client.send(
        new PutObjectCommand({
          Bucket: store.bucket,
          Key: up.key,
          Body: data,
          ContentLength: data.length,
          ContentType: 'application/octet-stream',
          // With the value precomputed, the SDK computes nothing; the algorithm header
          // (x-amz-sdk-checksum-algorithm) tells servers such as moto which checksum to keep.
          ...(s.sendCrc32c ? { ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crc32cToBase64(up.tally.crc32c) } : {}),
          ...(up.md5s[0] ? { ContentMD5: up.md5s[0].toString('base64') } : {}),
          ...(createOnly && s.ifNoneMatch.put ? { IfNoneMatch: '*' } : {}),
          ...this.encryption(),
          ...this.retention?.writeParams(up.opts),
        }),
        store.sendOpts(signal),
      );
    } catch (e) {
      if (createOnly && isPreconditionFailed(e)) {
        // A retried PUT whose first attempt did land finds "its own" object: not a conflict.
        if (s3ErrorInfo(e).attempts > 1 && (await this.isOurs(up, signal))) return;
        throw this.alreadyExists(up, e);
      }
      throw mapS3Error(e, store.request('PutObject', up.key, signal, up.name));
    }
  }

  private alreadyExists(up: Upload, cause: unknown): CairnError {
    return new CairnError('AlreadyExists', `${this.store.loc.where(up.key)} already exists (createOnly)`, { ...(cause === undefined ? {} : { cause }), file: up.name });
  }

  /** Whether the object under the key is the one this upload sent (its answer was lost). */
  private async isOurs(up: Upload, signal: Signal): Promise<boolean> {
    const h = await this.store.head(up.key, signal);
    return h !== undefined && storedMatches(up.strategy, h, this.sent(up));
  }

  private sent(up: Upload): SentDigests {
    return { size: up.tally.size, crc32c: up.tally.crc32c, multipart: up.multipart, md5s: up.md5s, partCrcs: up.partCrcs };
  }

  // Multipart upload, driven by hand rather than with @aws-sdk/lib-storage's Upload: Upload spreads
  // the same parameters into every request, so it cannot send the whole-file CRC32C on
  // CompleteMultipartUpload only (a whole-file ChecksumCRC32C would go out with every part and be
  // rejected, SDK issue 6742). Without that value on Complete the store cannot refuse a file whose
  // parts are each intact but wrong as a whole (e.g. a part uploaded twice, a buffer reused).
  // Driving the calls also lets an AbortSignal cancel the part requests in flight.
  private async putMultipart(up: Upload, first: Part, next: () => Promise<Part | undefined>): Promise<void> {
    const { store } = this;
    const { name, key, opts, tally, buffers } = up;
    const { signal, createOnly } = opts;
    // Cheap early refusal before uploading every part; IfNoneMatch on Complete stays the real guard.
    if (createOnly && (await store.head(key, signal, name)) !== undefined) throw this.alreadyExists(up, undefined);
    const created = await store.call(
      'CreateMultipartUpload',
      key,
      signal,
      () =>
        store.client.send(
          new CreateMultipartUploadCommand({
            Bucket: store.bucket,
            Key: key,
            ContentType: 'application/octet-stream',
            ...(up.strategy.sendCrc32c ? { ChecksumAlgorithm: 'CRC32C' as const } : {}),
            ...(up.strategy.fullObjectMultipart ? { ChecksumType: 'FULL_OBJECT' as const } : {}),
            ...this.encryption(),
            ...this.retention?.writeParams(opts),
          }),
          store.sendOpts(signal),
        ),
      name,
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw ioError(`CreateMultipartUpload ${store.loc.where(key)}: no UploadId in the answer`, { file: name });

    const completed: CompletedPart[] = [];
    // Bounded memory: fanOut asks for the next part only when fewer than `concurrency` are in
    // flight, and one failed part cancels the others.
    async function* allParts(): AsyncGenerator<Part> {
      let count = 0;
      for (let part: Part | undefined = first; part !== undefined; part = part.last ? undefined : await next()) {
        if (++count > MAX_PARTS) throw invalidArgument(`${name} needs more than ${MAX_PARTS} parts of ${part.data.length} bytes: pass its size (or a larger partSize)`, { file: name });
        yield part;
      }
    }
    const uploadPart = async (part: Part, i: number, partSignal: AbortSignal) => {
      const pn = i + 1;
      const crc = crc32cUpdate(0, part.data);
      const partCrc = crc32cToBase64(crc);
      const s = up.strategy;
      up.partCrcs[i] = crc;
      if (part.md5) up.md5s[i] = part.md5;
      let res;
      try {
        res = await store.client.send(
          new UploadPartCommand({
            Bucket: store.bucket, Key: key, UploadId: uploadId, PartNumber: pn, Body: part.data, ContentLength: part.data.length,
            ...(s.sendCrc32c ? { ChecksumAlgorithm: 'CRC32C' as const, ChecksumCRC32C: partCrc } : {}),
            ...(part.md5 ? { ContentMD5: part.md5.toString('base64') } : {}),
          }),
          { abortSignal: partSignal },
        );
      } catch (e) {
        // Dropped at once, not at the write's end: the reader of the next part may be waiting
        // for this memory, and the batch ends only once that reader has stopped.
        buffers.drop(part.pooled);
        throw mapS3Error(e, store.request(`UploadPart ${pn}`, key, signal, name));
      }
      // Sent and answered: its buffer is free.
      buffers.give(part.pooled);
      if (!res.ETag) throw ioError(`UploadPart ${pn} of ${store.loc.where(key)}: no ETag in the answer`, { file: name });
      completed[i] = { PartNumber: pn, ETag: res.ETag, ...(s.sendCrc32c ? { ChecksumCRC32C: partCrc } : {}) };
    };
    try {
      await fanOut(allParts(), uploadPart, { concurrency: this.settings.concurrency, ...(signal === undefined ? {} : { signal }) });
      throwIfAborted(signal);
      tally.checkEnd();
      await this.complete(up, uploadId, completed);
    } catch (e) {
      await this.leftovers.abort(key, uploadId);
      if (e instanceof CairnError) throw e;
      throw mapS3Error(e, store.request('multipart upload', key, signal, name));
    }
  }

  private async complete(up: Upload, uploadId: string, parts: CompletedPart[]): Promise<void> {
    const { store } = this;
    const { signal, createOnly } = up.opts;
    const s = up.strategy;
    try {
      await store.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: store.bucket,
          Key: up.key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          ...(s.fullObjectMultipart ? { ChecksumType: 'FULL_OBJECT' as const, ChecksumCRC32C: crc32cToBase64(up.tally.crc32c) } : {}),
          ...(createOnly && s.ifNoneMatch.complete ? { IfNoneMatch: '*' } : {}),
        }),
        store.sendOpts(signal),
      );
    } catch (e) {
      // A Complete retried after a lost answer may find its upload already completed.
      if (s3ErrorInfo(e).attempts > 1 && (isCode(e, 'NoSuchUpload') || (createOnly && isPreconditionFailed(e)))) {
        if (await this.isOurs(up, undefined)) return;
      }
      if (createOnly && isPreconditionFailed(e)) throw this.alreadyExists(up, e);
      throw mapS3Error(e, store.request('CompleteMultipartUpload', up.key, signal, up.name));
    }
  }

  /** After a write: the store must hold what was sent, as far as the strategy can tell (write-strategy.ts). */
  private async verifyStored(up: Upload): Promise<void> {
    const { store } = this;
    const h = await store.head(up.key, undefined, up.name);
    verifyStored(up.strategy, h, this.sent(up), { where: store.loc.where(up.key), name: up.name, server: `the S3 server at ${store.endpoint ?? 'AWS'}` });
    if (h !== undefined) this.retention?.checkApplied(up.opts, h, up.name);
  }
}
