// Reading from GCS: listings (pages carrying each object's crc32c), and downloads of a whole
// object or a range. A whole-object download is checked against the CRC32C GCS sends with it.
import { Readable, Transform, addAbortSignal, type TransformCallback } from 'node:stream';
import type { FileInfo, ReadOptions, StoredChecksum } from '../../src/env.ts';
import { CairnError, corruption, invalidArgument, notFound, throwIfAborted } from '../../src/errors.ts';
import { crc32cFromBase64, crc32cUpdate } from '../../src/crc32c.ts';
import { statusOf } from './errors.ts';
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
  return store.retry(() => readOnce(store, key, name, offset, length, signal), retryable, signal);
}

async function readOnce(store: GcsStore, key: string, name: string, offset: number, length: number | undefined, signal: Signal): Promise<Readable> {
  const whole = offset === 0 && length === undefined;
  const file = store.file(key, undefined, store.readBucket);
  // Library validation is off: it only runs when the server sends x-goog-stored-content-encoding,
  // which emulators may omit. cairn checks whole-object reads itself below.
  const rs = file.createReadStream({
    validation: false,
    decompress: false,
    ...(whole ? {} : { start: offset, ...(length !== undefined ? { end: offset + length - 1 } : {}) }),
  });
  let headers: Record<string, string | string[] | undefined> = {};
  // The library pipes the response into `rs` when the response arrives, and that pipe throws
  // (uncaught, ERR_STREAM_UNABLE_TO_PIPE) if `rs` was destroyed before: so a stream aborted
  // while its request is in flight is destroyed only once the response has come.
  let responded = false;
  let abortedEarly = false;
  const destroyWhenSafe = () => {
    if (responded) rs.destroy();
    else abortedEarly = true;
  };
  rs.once('response', () => {
    responded = true;
    if (abortedEarly) setImmediate(() => rs.destroy());
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        destroyWhenSafe();
        reject(new CairnError('Aborted', `read ${store.loc.where(key)}: aborted`, { file: name, cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      rs.once('response', (res: { statusCode?: number; status?: number; headers?: Record<string, string | string[] | undefined> }) => {
        const status = res.statusCode ?? res.status ?? 0;
        if (status >= 200 && status < 300) {
          headers = res.headers ?? {};
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
        // Otherwise the library reads the error body and emits 'error'.
      });
      rs.once('error', (e) => {
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      });
      // The library sends the request on the first read.
      rs.read(0);
    });
  } catch (e) {
    destroyWhenSafe();
    if (statusOf(e) === 416) return Readable.from([]); // offset at or past the end
    throw store.mapError(e, 'read', name, key, signal);
  }
  let out: Readable = rs;
  if (whole) {
    const hashHeader = headers['x-goog-hash'];
    const m = /(?:^|,)\s*crc32c=([^,]+)/.exec(Array.isArray(hashHeader) ? hashHeader.join(',') : (hashHeader ?? ''));
    const expected = m ? crc32cFromBase64(m[1]!.trim()) : undefined;
    const encoding = headers['content-encoding'];
    if (expected !== undefined && (encoding === undefined || encoding === 'identity')) {
      out = verifying(rs, expected, `read ${store.loc.where(key)}`, name);
    }
  }
  out.on('error', () => rs.destroy());
  if (signal) addAbortSignal(signal, out);
  return out;
}

/** Passes bytes through and fails with Corruption at the end if their CRC32C is not `expected`. */
function verifying(src: Readable, expected: number, what: string, name: string): Readable {
  let crc = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      crc = crc32cUpdate(crc, chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (crc !== expected) cb(corruption(`${what}: received bytes have crc32c ${crc}, the object's is ${expected}`, { file: name }));
      else cb();
    },
  });
  src.on('error', (e) => t.destroy(e));
  src.pipe(t);
  return t;
}
