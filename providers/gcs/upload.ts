// Writing to GCS (see docs/gcs.md for the checksum protocol):
//  - cairn computes the CRC32C of every byte it sends, in the same pass that sends it.
//  - Small files (< resumableThreshold) are buffered, hashed, and sent in one multipart upload whose
//    metadata declares `crc32c`: GCS recomputes it and rejects a mismatch (400) before anything is
//    visible. A known `expectedCrc32c` that differs from the bytes is refused locally: nothing is sent.
//  - Large files go through a resumable upload, streamed (memory: one chunk). The library, as called
//    through File#createWriteStream, cannot declare a CRC32C computed during the upload (it sends no
//    X-Goog-Hash header on the last chunk on this path), so:
//      * when the caller gives `expectedCrc32c`, it is declared in the metadata of the session's
//        initiation request: GCS validates it when the upload is finalized, before the object is
//        visible;
//      * in all cases, when the source is exhausted cairn compares its own CRC32C (and size) with
//        what is expected *before* ending the stream: on a mismatch the stream is destroyed, the upload
//        is never completed (the last chunk is not sent), the session is cancelled, nothing is published;
//      * after the upload, the object's stored crc32c (returned in the final response) is compared
//        with cairn's: on a mismatch (bytes altered in flight with no expectedCrc32c declared) the
//        object is deleted - conditionally on its generation, so a later writer is never hit - and
//        the write fails with Corruption. This is validation after the fact: the bad object existed
//        for the time of one request.
//  - Every write is conditional (ifGenerationMatch: 0 for createOnly, the current generation - or
//    0 when absent - for a replace), which is what lets the library retry uploads
//    (IdempotencyStrategy.RetryConditional).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileMetadata } from '@google-cloud/storage';
import type { WriteOptions, WriteResult, WriteSource } from '../../src/env.ts';
import { CairnError, ioError, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64, crc32cToBase64 } from '../../src/crc32c.ts';
import { CHUNK_SIZE } from '../../src/io/file-chunks.ts';
import { MemoryBudget } from '../../src/io/memory-budget.ts';
import { WriteTally, checkStored } from '../object-store/write-checks.ts';
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

/** The source's first chunks, then the rest of it. */
function concatChunks(first: Uint8Array[], it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      for (const c of first) yield c;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    },
  };
}

const asBuffer = (c: Uint8Array) => (Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));

export class GcsUploader {
  private readonly store: GcsStore;
  private readonly storageClass: string | undefined;
  private readonly retention: GcsRetention | undefined;
  /** What every upload in flight buffers comes out of this (settings.memoryBudget). */
  private readonly budget: MemoryBudget;

  constructor(store: GcsStore, storageClass: string | undefined, retention?: GcsRetention) {
    this.store = store;
    this.storageClass = storageClass;
    this.retention = retention;
    this.budget = new MemoryBudget(store.settings.memoryBudget);
  }

  /**
   * What one upload may hold: a small file its bytes; a resumable upload the chunk the library
   * keeps until it is acknowledged (or the head read before choosing) plus a chunk being read.
   */
  private memoryFor(size: number | undefined): number {
    const { resumableThreshold, chunkSize } = this.store.settings;
    if (size !== undefined && size < resumableThreshold) return Math.max(1, size);
    return Math.max(resumableThreshold, chunkSize ?? 0) + 2 * CHUNK_SIZE;
  }

  async write(name: string, source: WriteSource, opts: WriteOptions): Promise<WriteResult> {
    throwIfAborted(opts.signal);
    const bytes = this.memoryFor(opts.size);
    await this.budget.acquire(bytes, opts.signal);
    try {
      return await this.writeWithin(name, source, opts);
    } finally {
      this.budget.release(bytes);
    }
  }

  private async writeWithin(name: string, source: WriteSource, opts: WriteOptions): Promise<WriteResult> {
    const { store } = this;
    const key = store.loc.key(name);
    const { signal } = opts;
    const up: Upload = { name, key, opts, tally: new WriteTally(name, opts) };
    // Like `for await`, accept a plain (sync) iterable too, such as [buffer].
    const anySource = source as AsyncIterable<Uint8Array> & Partial<Iterable<Uint8Array>>;
    const it: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
      typeof anySource[Symbol.asyncIterator] === 'function' ? anySource[Symbol.asyncIterator]() : anySource[Symbol.iterator]!();
    const release = async () => {
      try {
        await it.return?.();
      } catch {
        /* the source's own clean-up failed: the write's error matters more */
      }
    };
    // Read up to the threshold: a source that ends before it is sent in one request.
    const head: Uint8Array[] = [];
    let headLen = 0;
    let ended = false;
    try {
      while (headLen < store.settings.resumableThreshold) {
        const r = await it.next();
        throwIfAborted(signal);
        if (r.done) {
          ended = true;
          break;
        }
        head.push(r.value);
        headLen += r.value.length;
      }
    } catch (e) {
      await release();
      throw store.mapError(e, 'write', name, key, signal);
    }
    if (ended) return this.simpleWrite(up, Buffer.concat(head.map(asBuffer), headLen));
    try {
      return await this.resumableWrite(up, concatChunks(head, it));
    } catch (e) {
      // Release the source (close its file) when the upload failed before reading it all.
      await release();
      throw e;
    }
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
    up.tally.add(data);
    up.tally.checkEnd();
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

  /** A streamed resumable upload; see the protocol at the top of this file. */
  private async resumableWrite(up: Upload, source: AsyncIterable<Uint8Array>): Promise<WriteResult> {
    const { store } = this;
    const { signal, createOnly, expectedCrc32c } = up.opts;
    const { chunkSize } = store.settings;
    const generation = await this.generationFor(up);
    const metadata = this.metadata(up.opts);
    if (expectedCrc32c !== undefined) metadata.crc32c = crc32cToBase64(expectedCrc32c);
    const file = store.file(up.key);
    const ws = file.createWriteStream({
      resumable: true,
      validation: false,
      metadata,
      preconditionOpts: { ifGenerationMatch: generation },
      ...(chunkSize ? { chunkSize } : {}),
    });
    let sessionUri: string | undefined;
    ws.on('uri', (u: string) => {
      sessionUri = u;
      store.requests.add('POST');
    });
    const { tally } = up;
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const c of source) {
        tally.add(c);
        yield asBuffer(c);
      }
      // Before the stream ends, so that on a mismatch the last chunk is never sent.
      tally.checkEnd();
    }
    try {
      // One chunk read ahead, not Readable.from's default of 16.
      await pipeline(Readable.from(hashed(), { highWaterMark: 1 }), ws, signal ? { signal } : {});
    } catch (e) {
      if (sessionUri) void this.cancelSession(sessionUri);
      const status = statusOf(e);
      if (status === 412 && createOnly) throw this.alreadyExists(up, e);
      if (status === 412) throw ioError(`write ${store.loc.where(up.key)}: the object was replaced concurrently; not overwritten`, { file: up.name, cause: e });
      if (status === 404 && !sessionUri) throw store.missingBucket('write', up.key, up.name, e);
      throw store.mapError(e, 'write', up.name, up.key, signal);
    } finally {
      // The library sends the session's bytes in chunks of chunkSize (one request without).
      if (sessionUri) store.requests.add('PUT');
      if (sessionUri && chunkSize) for (let sent = chunkSize; sent < tally.size; sent += chunkSize) store.requests.add('PUT');
    }
    return this.verifyStored(up, file.metadata);
  }

  /** Best effort: DELETE on a resumable session URI cancels it (the URI is its own credential). */
  private async cancelSession(uri: string): Promise<void> {
    try {
      this.store.requests.add('DELETE');
      await fetch(uri, { method: 'DELETE', signal: AbortSignal.timeout(10_000) });
    } catch {
      /* the session expires by itself within a week */
    }
  }
}
