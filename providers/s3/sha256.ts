// SHA-256 for SigV4 payload signing, computed on libuv's thread pool (WebCrypto's digest is an
// async job there) instead of the event loop: with several 8 MiB parts in flight over plain http,
// hashing every body on the main thread was the largest single cost of an upload.
// Keyed use (HMAC of the small signing strings) stays synchronous.
import { createHash, createHmac, webcrypto, type Hmac } from 'node:crypto';

type SourceData = string | ArrayBuffer | ArrayBufferView;

const OFF_THREAD_MIN = 256 * 1024;

function toBuffer(data: SourceData, encoding?: BufferEncoding): Buffer {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

export class OffThreadSha256 {
  private readonly secret?: Buffer;
  private hmac?: Hmac;
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(secret?: SourceData) {
    if (secret !== undefined) {
      this.secret = toBuffer(secret);
      this.hmac = createHmac('sha256', this.secret);
    }
  }

  update(data: SourceData, encoding?: BufferEncoding): void {
    const b = toBuffer(data, encoding);
    if (this.hmac) this.hmac.update(b);
    else {
      this.chunks.push(b);
      this.size += b.length;
    }
  }

  async digest(): Promise<Uint8Array> {
    if (this.hmac) return new Uint8Array(this.hmac.digest());
    if (this.size < OFF_THREAD_MIN) {
      const h = createHash('sha256');
      for (const c of this.chunks) h.update(c);
      return new Uint8Array(h.digest());
    }
    const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    return new Uint8Array(await webcrypto.subtle.digest('SHA-256', data));
  }

  reset(): void {
    this.hmac = this.secret ? createHmac('sha256', this.secret) : undefined;
    this.chunks = [];
    this.size = 0;
  }
}
