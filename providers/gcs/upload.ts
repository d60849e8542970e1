// Writing to GCS (see docs/gcs.md for the checksum protocol):
//  - cairn computes the CRC32C of every byte it sends, in the same pass that sends it. The source
//    is cut into chunks copied into buffers of the env's pool (providers/object-store/parts.ts).
//  - A file that fits in one chunk and is smaller than resumableThreshold is sent in one multipart
//    upload whose metadata declares `crc32c`: GCS recomputes it and rejects a mismatch (400) before
//    anything is visible. A known `expectedCrc32c` that differs from the bytes is refused locally:
//    nothing is sent.
//  - Larger files go through a resumable session driven by cairn (resumable.ts), one chunk held at
//    a time. The request that finalizes it carries the CRC32C of the whole object (X-Goog-Hash),
//    checked by GCS before the object exists; an `expectedCrc32c` is also declared when the session
//    opens. The source's own size and CRC32C are checked against what was announced before that
//    last request: on a mismatch the session is cancelled, nothing is published.
//  - After every upload, the object's stored crc32c and size (from the final answer) are compared
//    with cairn's: on a mismatch (a store that checks nothing) the object is deleted - conditionally
//    on its generation, so a later writer is never hit - and the write fails with Corruption.
//  - Every write is conditional (ifGenerationMatch: 0 for createOnly, the current generation - or
//    0 when absent - for a replace), which is what makes retrying its requests safe.
import type { FileMetadata } from '@google-cloud/storage';
import type { WriteOptions, WriteResult, WriteSource } from '../../src/env.ts';
import { CairnError, ioError, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64, crc32cToBase64 } from '../../src/crc32c.ts';
import { MemoryBudget } from '../../src/io/memory-budget.ts';
import { PartPool, type HeldBuffers, type Part } from '../object-store/parts.ts';
import { WriteTally, checkStored } from '../object-store/write-checks.ts';
import { ResumableSession } from './resumable.ts';
import { statusOf } from './errors.ts';
import type { GcsStore } from './client.ts';
import type { GcsRetention } from './retention.ts';

/** One write in progress. */
interface Upload {
  name: string;
  key: string;
  opts: WriteOptions;
  tally: WriteTally;
}

export class GcsUploader {
  private readonly store: GcsStore;
  private readonly storageClass: string | undefined;
  private readonly retention: GcsRetention | undefined;
  /** Chunk buffers of every upload in flight, within settings.memoryBudget. */
  private readonly parts: PartPool;

  constructor(store: GcsStore, storageClass: string | undefined, retention?: GcsRetention) {
    this.store = store;
    this.storageClass = storageClass;
    this.retention = retention;
    this.parts = new PartPool(store.settings.chunkSize, new MemoryBudget(store.settings.memoryBudget));
  }

  /** Lets the pooled chunk buffers go now (the env is closing). */
  release(): void {
    this.parts.release();
  }

  async write(name: string, source: WriteSource, opts: WriteOptions): Promise<WriteResult> {
    const { store } = this;
    throwIfAborted(opts.signal);
    const key = store.loc.key(name);
    const up: Upload = { name, key, opts, tally: new WriteTally(name, opts) };
    return this.parts.withParts(source, store.settings.chunkSize, up.tally, opts, store.loc.where(key), name, async (next, buffers) => {
      const first = (await next())!;
      if (first.last && first.data.length < store.settings.resumableThreshold) {
        up.tally.checkEnd();
        const written = await this.simpleWrite(up, first.data);
        buffers.give(first.pooled);
        return written;
      }
      return this.resumableWrite(up, first, next, buffers);
    });
  }

  private async generationFor(up: Upload): Promise<number> {
    if (up.opts.createOnly) return 0;
    const md = await this.store.metadata(up.key, up.name, up.opts.signal);
    return md ? Number(md.generation) : 0;
  }

  private metadata(opts: WriteOptions): FileMetadata {
    return { contentType: 'application/octet-stream', ...(this.storageClass ? { storageClass: this.storageClass } : {}), ...this.retention?.writeMetadata(opts) };
  }

  private alreadyExists(up: Upload, cause: unknown): CairnError {
    return new CairnError('AlreadyExists', `write ${this.store.loc.where(up.key)}: already exists`, { file: up.name, cause });
  }

  /**
   * After an upload: the object GCS stored must have cairn's CRC32C and size. Otherwise it is
   * deleted (only that generation) and the write fails.
   */
  private async verifyStored(up: Upload, md: FileMetadata | undefined): Promise<WriteResult> {
    const sent = { size: up.tally.size, crc32c: up.tally.crc32c };
    const stored = {
      ...(typeof md?.crc32c === 'string' ? { crc32c: crc32cFromBase64(md.crc32c) } : {}),
      ...(md?.size !== undefined ? { size: Number(md.size) } : {}),
    };
    if (stored.crc32c === sent.crc32c && stored.size === sent.size) return sent;
    const gen = md?.generation !== undefined ? Number(md.generation) : undefined;
    if (gen !== undefined) {
      await this.store
        .file(up.key)
        .delete({ ifGenerationMatch: gen })
        .catch(() => {});
    }
    checkStored(this.store.loc.where(up.key), up.name, sent, { size: stored.size ?? -1, ...stored }, gen !== undefined ? `generation ${gen} deleted` : 'nothing published');
    return sent;
  }

  /** One multipart upload of a buffered file, with the CRC32C declared so GCS rejects a mismatch. */
  private async simpleWrite(up: Upload, data: Buffer): Promise<WriteResult> {
    const { store } = this;
    const { signal, createOnly } = up.opts;
    const crcB64 = crc32cToBase64(up.tally.crc32c);
    let generation = await this.generationFor(up);
    let raced = 0;
    const once = async (attempt: number): Promise<WriteResult> => {
      for (;;) {
        throwIfAborted(signal);
        const file = store.file(up.key);
        try {
          await new Promise<void>((resolve, reject) => {
            const ws = file.createWriteStream({
              resumable: false,
              validation: false,
              metadata: { ...this.metadata(up.opts), crc32c: crcB64 },
              preconditionOpts: { ifGenerationMatch: generation },
            });
            ws.once('error', reject);
            ws.once('finish', () => resolve());
            ws.end(data);
          });
        } catch (e) {
          const status = statusOf(e);
          if (status === 412) {
            if (attempt > 0) {
              // Our own earlier attempt may have succeeded with its response lost: that is success.
              const md = await store.metadata(up.key, up.name, signal);
              if (md && md.crc32c === crcB64 && Number(md.size) === data.length) return { size: data.length, crc32c: up.tally.crc32c };
            }
            if (createOnly) throw this.alreadyExists(up, e);
            if (raced < 3) {
              // A concurrent writer replaced the object between our stat and our upload: last writer wins.
              raced++;
              generation = await this.generationFor(up);
              continue;
            }
          }
          if (status === 404) throw store.missingBucket('write', up.key, up.name, e);
          throw e;
        }
        return this.verifyStored(up, file.metadata);
      }
    };
    try {
      return await store.retry(once, (e) => !(e instanceof CairnError) && store.isRetryable(e), signal);
    } catch (e) {
      throw store.mapError(e, 'write', up.name, up.key, signal);
    }
  }

  /** A resumable upload, chunk after chunk; see the protocol at the top of this file. */
  private async resumableWrite(up: Upload, first: Part, next: () => Promise<Part | undefined>, buffers: HeldBuffers): Promise<WriteResult> {
    const { store } = this;
    const { signal, createOnly, expectedCrc32c } = up.opts;
    let session: ResumableSession | undefined;
    let md: FileMetadata | undefined;
    try {
      const generation = await this.generationFor(up);
      const metadata = this.metadata(up.opts);
      if (expectedCrc32c !== undefined) metadata.crc32c = crc32cToBase64(expectedCrc32c);
      session = await ResumableSession.start(store, { key: up.key, metadata, generation, signal });
      for (let part = first; ; part = (await next())!) {
        if (!part.last) {
          await session.put(part.data);
          buffers.give(part.pooled);
          continue;
        }
        // Before the last request, so that on a mismatch nothing is finalized.
        up.tally.checkEnd();
        md = await session.put(part.data, { crc32c: crc32cToBase64(up.tally.crc32c) });
        buffers.give(part.pooled);
        break;
      }
    } catch (e) {
      if (session) void session.cancel();
      const status = statusOf(e);
      if (status === 412 && createOnly) throw this.alreadyExists(up, e);
      if (status === 412) throw ioError(`write ${store.loc.where(up.key)}: the object was replaced concurrently; not overwritten`, { file: up.name, cause: e });
      if (status === 404 && !session) throw store.missingBucket('write', up.key, up.name, e);
      throw store.mapError(e, 'write', up.name, up.key, signal);
    }
    return this.verifyStored(up, md);
  }
}
