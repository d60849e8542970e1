// Reading from S3: listings (ListObjectsV2 pages), HEAD-based stat and stored checksum, and
// GetObject of a whole object or a range, its body streamed with errors mapped as it flows.
import { addAbortSignal, type Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { isSafeRelativeName } from '../../src/names.ts';
import type { FileInfo, ReadOptions, StoredChecksum } from '../../src/env.ts';
import { invalidArgument, ioError, notFound, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64 } from '../../src/crc32c.ts';
import { isCode, isStatus, locationOf, mapS3Error, type ErrorWhere } from './errors.ts';
import type { S3Store, Signal } from './client.ts';
import { rangeHeader } from '../object-store/raw-http.ts';

export async function* listObjects(store: S3Store, prefix: string, pageSize: number | undefined, signal: Signal): AsyncIterable<FileInfo> {
  const full = store.loc.listKey(prefix);
  let token: string | undefined;
  for (;;) {
    const page = await store.listPage(full, token, pageSize, signal);
    // Keys cairn could never have written (folder placeholders "x/", "a//b") are not files.
    for (const f of page.entries) if (isSafeRelativeName(f.name)) yield f;
    if (!page.truncated) return;
    if (page.next === undefined || page.next === token) {
      throw ioError(`ListObjectsV2 ${store.loc.where(full)}: truncated page without a new continuation token`);
    }
    token = page.next;
  }
}

export async function statObject(store: S3Store, name: string, signal: Signal): Promise<FileInfo | undefined> {
  const h = await store.head(store.loc.key(name), signal, name);
  return h === undefined ? undefined : { name, size: h.ContentLength ?? 0 };
}

/** A composite (per-part) checksum is not the file's CRC32C: nothing to compare. */
export function fullObjectCrc(h: { ChecksumCRC32C?: string; ChecksumType?: string }): number | undefined {
  const v = h.ChecksumCRC32C;
  return v !== undefined && h.ChecksumType !== 'COMPOSITE' && !v.includes('-') ? crc32cFromBase64(v) : undefined;
}

export async function storedChecksum(store: S3Store, name: string, signal: Signal): Promise<StoredChecksum> {
  const key = store.loc.key(name);
  const h = await store.head(key, signal, name);
  if (h === undefined) throw notFound(`${store.loc.where(key)} does not exist`, { file: name });
  return { size: h.ContentLength ?? 0, crc32c: fullObjectCrc(h) };
}

/** One GetObject, of the whole object or of a range; at or past the end reads as empty. */
export async function readObject(store: S3Store, name: string, opts: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
  const key = store.loc.key(name);
  const { signal, offset = 0, length } = opts;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw invalidArgument(`invalid range offset=${opts.offset} length=${opts.length} for ${name}`);
  }
  const empty = async (): Promise<AsyncIterable<Uint8Array>> => {
    if ((await store.head(key, signal, name)) === undefined) throw notFound(`${store.loc.where(key)} does not exist`, { file: name });
    return (async function* (): AsyncGenerator<Uint8Array> {})();
  };
  if (length === 0) return await empty();
  const where = store.request('GetObject', key, signal, name);
  // Reads that take each chunk before asking for the next: cairn's own GET, into reused buffers.
  let refused = false;
  if (opts.reuseBuffers) {
    const d = await store.getDirect(key, offset, length, signal, name);
    if (d.body) return guarded(d.body, where, name);
    refused = d.refused;
  }
  const range = rangeHeader(offset, length);
  let body: Readable;
  try {
    throwIfAborted(signal);
    const res = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: key, ...(range === undefined ? {} : { Range: range }) }), store.sendOpts(signal));
    body = res.Body as Readable;
  } catch (e) {
    // 416: offset at or past the end; a local file reads as empty there.
    if (isStatus(e, 416) || isCode(e, 'InvalidRange')) return await empty();
    throw mapS3Error(e, where);
  }
  store.afterSdkGet(refused, key);
  // A body opened and then left unread (read-ahead given up) is freed by the abort too.
  if (signal) addAbortSignal(signal, body);
  return guarded(body, where, name, () => body.destroy());
}

/**
 * A body whose errors while streaming (connection lost, abort) become CairnErrors too. Leaving
 * the loop early (break, throw) frees the body and its connection.
 */
async function* guarded(body: AsyncIterable<Uint8Array>, where: ErrorWhere, name: string, free?: () => void): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (e) {
    const m = mapS3Error(e, where);
    throw m.code !== 'IOError' ? m : ioError(`reading ${locationOf(where)} failed: ${(e as Error).message}`, { cause: e, file: name });
  } finally {
    free?.();
  }
}
