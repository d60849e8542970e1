// GCS resumable upload sessions, spoken by cairn over the JSON API rather than through
// @google-cloud/storage's Upload class (File#createWriteStream), for two reasons:
//  - memory: the library's Upload keeps its own queue and copies of a chunk, several per upload,
//    outside any budget; here a chunk is one buffer of the env's pool, sent as it is and held
//    only until GCS acknowledges it;
//  - integrity: through createWriteStream the library cannot send a CRC32C computed during the
//    upload; here the request that finalizes the session carries `X-Goog-Hash: crc32c=` of the
//    whole object, which GCS checks before the object exists.
// Protocol: POST ?uploadType=resumable opens a session (its URI is its own credential); each PUT
// sends `Content-Range: bytes a-b/*` and is answered 308 with the bytes persisted so far (a
// server may keep fewer than were sent: the rest is sent again); the last PUT names the total and
// is answered with the object. After a failed request, `Content-Range: bytes */*` asks where the
// session stands, and the chunk, still held, is resent from there.
import type { FileMetadata } from '@google-cloud/storage';
import { ioError } from '../../src/errors.ts';
import { GcsHttpError, send, type Reply } from './http.ts';
import type { GcsStore, Signal } from './client.ts';

/** The next byte GCS wants, from a 308's `Range: bytes=0-N` (no header: nothing persisted). */
function persistedEnd(reply: Reply): number {
  const m = /^bytes=0-(\d+)$/.exec(String(reply.headers.range ?? ''));
  return m ? Number(m[1]) + 1 : 0;
}

const finished = (r: Reply) => r.status === 200 || r.status === 201;

export interface SessionStart {
  key: string;
  /** The object's metadata (content type, storage class, retention, a declared crc32c). */
  metadata: FileMetadata;
  /** ifGenerationMatch: 0 creates only, the current generation replaces only that. */
  generation: number;
  signal: Signal;
}

export class ResumableSession {
  private readonly store: GcsStore;
  private readonly uri: URL;
  private readonly where: string;
  private readonly signal: Signal;
  /** Bytes GCS has persisted. */
  offset = 0;

  private constructor(store: GcsStore, uri: URL, key: string, signal: Signal) {
    this.store = store;
    this.uri = uri;
    this.where = store.loc.where(key);
    this.signal = signal;
  }

  /** Opens a session (retried: the request is conditional on a generation, so it is idempotent). */
  static async start(store: GcsStore, s: SessionStart): Promise<ResumableSession> {
    const url = new URL(`${store.storage.apiEndpoint}/upload/storage/v1/b/${encodeURIComponent(store.loc.bucket)}/o`);
    url.searchParams.set('uploadType', 'resumable');
    url.searchParams.set('name', s.key);
    url.searchParams.set('ifGenerationMatch', String(s.generation));
    for (const [k, v] of Object.entries(store.uploadParams())) url.searchParams.set(k, v);
    const body = Buffer.from(JSON.stringify(s.metadata));
    const reply = await store.retry(
      async () => {
        store.requests.add('POST');
        const r = await send(url, 'POST', { ...(await store.authHeaders()), 'Content-Type': 'application/json; charset=UTF-8', 'X-Upload-Content-Type': String(s.metadata.contentType ?? 'application/octet-stream') }, body, s.signal, store.settings.socketTimeout);
        if (r.status !== 200 && r.status !== 201) throw new GcsHttpError(`starting a resumable upload to ${store.loc.where(s.key)}`, r);
        return r;
      },
      (e) => store.isRetryable(e),
      s.signal,
    );
    const location = reply.headers.location;
    if (!location) throw ioError(`starting a resumable upload to ${store.loc.where(s.key)}: no session URI in the answer`);
    return new ResumableSession(store, new URL(location, url), s.key, s.signal);
  }

  /**
   * Sends `data`, the bytes that follow `offset`; `last` finalizes the object with its total size
   * and the CRC32C (base64) GCS must find. Resolves with the object's metadata after the last
   * chunk. A failed request is retried from where GCS says the session stands, while this chunk
   * still covers it.
   */
  async put(data: Buffer, last?: { crc32c: string }): Promise<FileMetadata | undefined> {
    const { store } = this;
    const start = this.offset;
    const end = start + data.length;
    const total = last ? String(end) : '*';
    return store.retry(
      async (attempt) => {
        if (attempt > 0) {
          const r = await this.send({ 'Content-Range': `bytes */${total}` }, undefined);
          if (finished(r) && last) return this.object(r);
          if (r.status !== 308) throw new GcsHttpError(`asking where the resumable upload to ${this.where} stands`, r);
          this.offset = persistedEnd(r);
          if (this.offset < start || this.offset > end) throw ioError(`resumable upload to ${this.where}: GCS holds ${this.offset} bytes, this chunk covers ${start}-${end}`);
        }
        for (;;) {
          const body = data.subarray(this.offset - start);
          const range = body.length > 0 ? `bytes ${this.offset}-${end - 1}/${total}` : `bytes */${total}`;
          const r = await this.send({ 'Content-Range': range, ...(last ? { 'X-Goog-Hash': `crc32c=${last.crc32c}` } : {}) }, body);
          if (finished(r) && last) return this.object(r);
          if (r.status !== 308) throw new GcsHttpError(`uploading a chunk to ${this.where}`, r);
          const persisted = persistedEnd(r);
          // No progress (none of the bytes kept, or a complete upload not finalized): not looped on.
          if (persisted <= this.offset) throw ioError(`resumable upload to ${this.where}: GCS kept none of the ${body.length} bytes sent at ${this.offset}${body.length === 0 ? ' and did not finalize the object' : ''}`);
          if (persisted > end) throw ioError(`resumable upload to ${this.where}: GCS claims ${persisted} bytes, only ${end} were sent`);
          this.offset = persisted;
          if (!last && this.offset === end) return undefined;
        }
      },
      (e) => store.isRetryable(e),
      this.signal,
    );
  }

  /** Best effort: a DELETE of the session URI cancels it (otherwise it expires within a week). */
  async cancel(): Promise<void> {
    try {
      this.store.requests.add('DELETE');
      await send(this.uri, 'DELETE', {}, undefined, AbortSignal.timeout(10_000), 10_000);
    } catch {
      /* the session expires by itself */
    }
  }

  private async send(headers: Record<string, string>, body: Buffer | undefined): Promise<Reply> {
    this.store.requests.add('PUT');
    // The session URI is its own credential: GCS needs no Authorization on it.
    return send(this.uri, 'PUT', headers, body, this.signal, this.store.settings.socketTimeout);
  }

  private object(r: Reply): FileMetadata {
    try {
      return JSON.parse(r.body.toString('utf8')) as FileMetadata;
    } catch (e) {
      throw ioError(`resumable upload to ${this.where}: the final answer is not the object's JSON (${r.body.length} bytes)`, { cause: e });
    }
  }
}
