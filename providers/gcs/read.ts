// Reading from GCS: listings (pages carrying each object's crc32c), and downloads of a whole
// object or a range. A whole-object download is checked against the CRC32C GCS sends with it.
// Downloads are cairn's own GETs (http.ts): through the library, each went through three
// streams (node-fetch's, teeny-request's, the library's) on its way from the socket. Reads that
// take each chunk before asking for the next (restore, verify --checksum, manifests) go over
// cairn's raw HTTP client into reused buffers instead of node:http's 64 KiB reads.
import { Readable, addAbortSignal } from 'node:stream';
import type { FileInfo, ReadOptions, StoredChecksum } from '../../src/env.ts';
import { CairnError, corruption, invalidArgument, notFound, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64, crc32cUpdate } from '../../src/crc32c.ts';
import { statusOf } from './errors.ts';
import { GcsHttpError, open, replyOf } from './http.ts';
import { UnframedAnswer, framedAsAsked, rangeHeader, smallBody, type RawHttpClient, type RawResponse } from '../object-store/raw-http.ts';
import type { GcsStore, Signal } from './client.ts';

/** A listed object as the library returns it when asked for `fields`. */
interface ListedObject {
  name: string;
  size?: string | number;
  crc32c?: string;
  updated?: string;
  metadata?: { size?: string | number; crc32c?: string; updated?: string };
}

export async function* listObjects(store: GcsStore, prefix: string, signal: Signal): AsyncIterable<FileInfo> {
  const full = store.loc.listKey(prefix);
  let pageToken: string | undefined;
  do {
    throwIfAborted(signal);
    let files: ListedObject[];
    let next: { pageToken?: string } | undefined;
    try {
      // With `fields`, the library returns the raw items ({name, size, crc32c}) instead of File objects.
      const res = await store.bucket.getFiles({
        prefix: full,
        autoPaginate: false,
        maxResults: store.settings.listPageSize,
        pageToken,
        fields: 'items(name,size,crc32c,updated),nextPageToken',
      });
      files = res[0] as unknown as ListedObject[];
      next = res[1] as { pageToken?: string } | undefined;
    } catch (e) {
      if (statusOf(e) === 404) throw store.missingBucket('list', full, undefined, e);
      throw store.mapError(e, 'list', prefix, full, signal);
    }
    for (const f of files) {
      const name = store.loc.nameOf(f.name);
      if (name === undefined) continue;
      const crc = f.metadata?.crc32c ?? f.crc32c;
      // (The time the object was written: gc keeps young unreferenced files for a resumed backup.)
      const updated = f.metadata?.updated ?? f.updated;
      yield { name, size: Number(f.metadata?.size ?? f.size ?? 0), ...(typeof updated === 'string' ? { modified: Date.parse(updated) } : {}), ...(typeof crc === 'string' ? { crc32c: crc32cFromBase64(crc) } : {}) };
    }
    pageToken = next?.pageToken;
  } while (pageToken);
}

export async function statObject(store: GcsStore, name: string, signal: Signal): Promise<FileInfo | undefined> {
  const md = await store.metadata(store.loc.key(name), name, signal);
  return md ? { name, size: Number(md.size ?? 0) } : undefined;
}

export async function storedChecksum(store: GcsStore, name: string, signal: Signal): Promise<StoredChecksum> {
  const key = store.loc.key(name);
  const md = await store.metadata(key, name, signal);
  if (!md) throw notFound(`checksum ${store.loc.where(key)}: object does not exist`, { file: name });
  return { size: Number(md.size ?? 0), crc32c: typeof md.crc32c === 'string' ? crc32cFromBase64(md.crc32c) : undefined };
}

/**
 * One GET (ranged or not); resolves once the response headers arrived, so a missing object
 * rejects here. A retryable failure before the response (429, 5xx, connection reset) is retried;
 * a failure in the middle of the body reaches the reader as an error.
 */
export async function readObject(store: GcsStore, name: string, opts: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
  const key = store.loc.key(name);
  const { signal, offset = 0, length } = opts;
  throwIfAborted(signal);
  if (offset < 0 || (length !== undefined && length < 0)) throw invalidArgument(`read ${store.loc.where(key)}: negative offset or length`, { file: name });
  if (length === 0) {
    if (!(await store.metadata(key, name, signal))) throw notFound(`read ${store.loc.where(key)}: object does not exist`, { file: name });
    return Readable.from([]);
  }
  const retryable = (e: unknown) => (!(e instanceof CairnError) || e.code === 'IOError') && store.isRetryable(e instanceof CairnError ? e.cause : e);
  // Reads that take each chunk before asking for the next: into reused buffers (readOnceRaw).
  const raw = opts.reuseBuffers ? store.rawClient() : undefined;
  const body = (raw && (await store.retry(() => readOnceRaw(store, raw, key, name, offset, length, signal), retryable, signal))) ?? (await store.retry(() => readOnce(store, key, name, offset, length, signal), retryable, signal));
  return guarded(store, body, name, key, signal);
}

/**
 * A body whose failures midway (connection lost, silence, abort) are CairnErrors: an IOError
 * there lets a ranged read resume from the bytes received.
 */
async function* guarded(store: GcsStore, body: AsyncIterable<Uint8Array>, name: string, key: string, signal: Signal): AsyncGenerator<Uint8Array> {
  try {
    for await (const c of body) yield c;
  } catch (e) {
    throw store.mapError(e, 'read', name, key, signal);
  }
}

/**
 * One GET over cairn's raw HTTP client (object-store/raw-http.ts), each chunk valid until the
 * next is asked for. Undefined: an answer that client does not read (cairn's raw downloads stop
 * for this env) or not the bytes asked for; node:http then asks again.
 */
async function readOnceRaw(store: GcsStore, raw: RawHttpClient, key: string, name: string, offset: number, length: number | undefined, signal: Signal): Promise<AsyncIterable<Uint8Array> | undefined> {
  const { url, headers, whole } = await download(store, key, offset, length);
  let res: RawResponse;
  try {
    store.requests.add('GET');
    res = await raw.get(url.pathname + url.search, { host: url.host, ...headers }, signal);
  } catch (e) {
    if (signal?.aborted) throw store.mapError(e, 'read', name, key, signal);
    // A failure before any answer is node:http's to retry and report, as before; an answer this
    // client does not frame would come every time.
    if (e instanceof UnframedAnswer) store.stopRaw();
    return undefined;
  }
  if (res.status === 416) {
    await smallBody(res);
    return Readable.from([]); // offset at or past the end
  }
  if (res.status !== 200 && res.status !== 206) {
    const body = await smallBody(res).catch(() => Buffer.alloc(0));
    throw store.mapError(new GcsHttpError(`GET ${store.loc.where(key)}`, { status: res.status, headers: Object.fromEntries(res.headers), body }), 'read', name, key, signal);
  }
  if (!framedAsAsked(res, offset, length)) {
    res.discard();
    store.stopRaw();
    return undefined;
  }
  const expected = whole ? sentCrc(res.headers.get('x-goog-hash'), res.headers.get('content-encoding')) : undefined;
  return expected === undefined ? res.body : checkedAtEnd(res.body, expected, `read ${store.loc.where(key)}`, name);
}

/** The CRC32C GCS sent with a whole object (X-Goog-Hash), where the bytes are the stored ones. */
function sentCrc(hash: string | undefined, encoding: string | undefined): number | undefined {
  const m = /(?:^|,)\s*crc32c=([^,]+)/.exec(hash ?? '');
  if (!m || !(encoding === undefined || encoding === 'identity' || encoding === 'gzip')) return undefined;
  return crc32cFromBase64(m[1]!.trim());
}

/** Passes chunks on and fails with Corruption at the end if their CRC32C is not `expected`. */
async function* checkedAtEnd(body: AsyncIterable<Uint8Array>, expected: number, what: string, name: string): AsyncGenerator<Uint8Array> {
  let crc = 0;
  for await (const c of body) {
    crc = crc32cUpdate(crc, c);
    yield c;
  }
  if (crc !== expected) throw corruption(`${what}: received bytes have crc32c ${crc}, the object's is ${expected}`, { file: name });
}

/** A download's URL and headers; `whole`: not a range (GCS then sends the object's CRC32C). */
async function download(store: GcsStore, key: string, offset: number, length: number | undefined): Promise<{ url: URL; headers: Record<string, string>; whole: boolean }> {
  const url = store.objectUrl(key);
  url.searchParams.set('alt', 'media');
  // gzip accepted: GCS then serves the stored bytes as they are (no decompressive transcoding),
  // the bytes its crc32c describes; neither client decompresses anything.
  const headers: Record<string, string> = { ...(await store.authHeaders()), 'accept-encoding': 'gzip' };
  const range = rangeHeader(offset, length);
  if (range !== undefined) headers.range = range;
  return { url, headers, whole: range === undefined };
}

async function readOnce(store: GcsStore, key: string, name: string, offset: number, length: number | undefined, signal: Signal): Promise<AsyncIterable<Uint8Array>> {
  const { url, headers, whole } = await download(store, key, offset, length);
  let res;
  try {
    store.requests.add('GET');
    res = await open(url, 'GET', headers, undefined, signal, store.settings.socketTimeout);
    if (res.statusCode === 416) {
      res.resume();
      return Readable.from([]); // offset at or past the end
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) throw new GcsHttpError(`GET ${store.loc.where(key)}`, await replyOf(res));
  } catch (e) {
    throw store.mapError(e, 'read', name, key, signal);
  }
  // A body opened and then left unread (read-ahead given up) is freed by the abort too.
  if (signal) addAbortSignal(signal, res);
  if (!whole) return res;
  const hashHeader = res.headers['x-goog-hash'];
  const expected = sentCrc(Array.isArray(hashHeader) ? hashHeader.join(',') : hashHeader, res.headers['content-encoding']);
  // (A reader that stops early ends the iteration of `res`, which frees the connection.)
  return expected === undefined ? res : checkedAtEnd(res, expected, `read ${store.loc.where(key)}`, name);
}
