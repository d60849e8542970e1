// Reads the manifests of a backup directory in a given order, streaming the one being parsed and
// a few after it read ahead (each is a round trip on an object store), within a byte budget so
// that opening a directory of large manifests never holds more than that many of their bytes.
import type { BackupEnv } from '../env.ts';
import { corruption } from '../errors.ts';
import { metaName } from './layout.ts';
import { MAX_META_FILE_SIZE } from './meta-codec.ts';

/** Manifests read ahead at most, and their bytes held at most. */
const READ_AHEAD = 8;
const READ_AHEAD_BYTES = 8 << 20;

export interface MetaToRead {
  id: number;
  /** As listed: a manifest over the size limit is refused without being read. */
  size: number;
}

export class MetaReader {
  private readonly env: BackupEnv;
  private readonly metas: MetaToRead[];
  private readonly ac = new AbortController();
  private readonly signal: AbortSignal;
  private readonly ahead = new Map<number, Promise<Uint8Array[]>>();
  /**
   * Read-ahead hides round trips; a local disk (a store without parallel ranged reads) has none
   * worth hiding, and reading ahead would only hold more buffers (each of them new, not reused).
   */
  private readonly readAheadCount: number;
  private bytesAhead = 0;
  /** Every manifest before this one has been started (read ahead, or streamed). */
  private nextToStart = 0;

  constructor(env: BackupEnv, metas: MetaToRead[], signal?: AbortSignal) {
    this.env = env;
    this.metas = metas;
    this.signal = signal ? AbortSignal.any([signal, this.ac.signal]) : this.ac.signal;
    this.readAheadCount = env.capabilities.parallelRanges ? READ_AHEAD : 0;
  }

  /**
   * The bytes of the k-th manifest, as chunks, each to be used before the next is asked for (the
   * provider may reuse its buffer); also starts reading the next manifests.
   */
  read(k: number): AsyncIterable<Uint8Array> {
    const { id, size } = this.metas[k];
    const file = metaName(id);
    const buffered = this.ahead.get(k);
    if (buffered) {
      this.ahead.delete(k);
      this.bytesAhead -= size;
    }
    this.nextToStart = Math.max(this.nextToStart, k + 1);
    this.readAhead(k + 1);
    if (size > MAX_META_FILE_SIZE) return refuse(corruption(`${file} is ${size} bytes, over the ${MAX_META_FILE_SIZE} limit`, { file, backupId: id }));
    if (buffered) return replay(buffered);
    return this.stream(id, false);
  }

  /** Stops what is still being read ahead and waits for it. */
  async close(): Promise<void> {
    this.ac.abort();
    await Promise.allSettled(this.ahead.values());
    this.ahead.clear();
  }

  private readAhead(from: number): void {
    for (let j = Math.max(from, this.nextToStart); j < Math.min(this.metas.length, from + this.readAheadCount); j++) {
      const { id, size } = this.metas[j];
      if (size > MAX_META_FILE_SIZE) {
        this.nextToStart = j + 1;
        continue;
      }
      if (this.bytesAhead + size > READ_AHEAD_BYTES) return;
      const chunks = (async () => {
        const out: Uint8Array[] = [];
        for await (const c of this.stream(id, true)) out.push(c);
        return out;
      })();
      chunks.catch(() => {}); // its error is thrown to whoever reads it, or dropped by close()
      this.ahead.set(j, chunks);
      this.bytesAhead += size;
      this.nextToStart = j + 1;
    }
  }

  /** `kept`: the chunks are held (read ahead), so the provider may not hand their buffers out again. */
  private async *stream(id: number, kept: boolean): AsyncIterable<Uint8Array> {
    const file = metaName(id);
    let total = 0;
    for await (const c of await this.env.openRead(file, { signal: this.signal, reuseBuffers: !kept })) {
      total += c.length;
      if (total > MAX_META_FILE_SIZE) throw corruption(`${file} grew over the size limit while read`, { file, backupId: id });
      yield c;
    }
  }
}

async function* replay(chunks: Promise<Uint8Array[]>): AsyncIterable<Uint8Array> {
  yield* await chunks;
}

// eslint-disable-next-line require-yield
async function* refuse(e: Error): AsyncIterable<Uint8Array> {
  throw e;
}
