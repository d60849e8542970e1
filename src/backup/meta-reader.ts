// Reads the manifests of a backup directory in a given order, streaming the one being parsed and
// opening the requests of a few after it ahead of time (each is a round trip on an object store).
// A manifest opened ahead is not read: its response waits, held back by TCP flow control in the
// socket's buffers, so reading ahead hides the round trips without holding any manifest's bytes
// in the process (buffering whole manifests ahead raised peak memory: README, Scale).
import type { BackupEnv } from '../env.ts';
import { corruption } from '../errors.ts';
import { metaName } from './layout.ts';
import { MAX_META_FILE_SIZE } from './meta-codec.ts';

/** Manifests whose requests are opened ahead of the one being read. */
const OPEN_AHEAD = 8;

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
  private readonly ahead = new Map<number, Promise<AsyncIterable<Uint8Array>>>();
  /**
   * Opening ahead hides round trips; a local disk (a store without parallel ranged reads) has
   * none worth hiding.
   */
  private readonly openAheadCount: number;
  /** Every manifest before this one has been opened (ahead, or when read). */
  private nextToOpen = 0;

  constructor(env: BackupEnv, metas: MetaToRead[], signal?: AbortSignal) {
    this.env = env;
    this.metas = metas;
    this.signal = signal ? AbortSignal.any([signal, this.ac.signal]) : this.ac.signal;
    this.openAheadCount = env.capabilities.parallelRanges ? OPEN_AHEAD : 0;
  }

  /**
   * The bytes of the k-th manifest, as chunks, each to be used before the next is asked for (the
   * provider may reuse its buffer); also opens the next manifests.
   */
  read(k: number): AsyncIterable<Uint8Array> {
    const { id, size } = this.metas[k];
    const file = metaName(id);
    const opened = this.ahead.get(k);
    this.ahead.delete(k);
    this.nextToOpen = Math.max(this.nextToOpen, k + 1);
    this.openAhead(k + 1);
    if (size > MAX_META_FILE_SIZE) return refuse(corruption(`${file} is ${size} bytes, over the ${MAX_META_FILE_SIZE} limit`, { file, backupId: id }));
    return this.stream(id, opened ?? this.open(id));
  }

  /** Stops the requests opened ahead and not read, and waits for them. */
  async close(): Promise<void> {
    this.ac.abort();
    // (The abort also lets go of the streams opened and never read: ReadOptions.signal.)
    await Promise.allSettled(this.ahead.values());
    this.ahead.clear();
  }

  private open(id: number): Promise<AsyncIterable<Uint8Array>> {
    return this.env.openRead(metaName(id), { signal: this.signal, reuseBuffers: true });
  }

  private openAhead(from: number): void {
    for (let j = Math.max(from, this.nextToOpen); j < Math.min(this.metas.length, from + this.openAheadCount); j++) {
      this.nextToOpen = j + 1;
      if (this.metas[j].size > MAX_META_FILE_SIZE) continue;
      const opened = this.open(this.metas[j].id);
      opened.catch(() => {}); // its error is thrown to whoever reads it, or dropped by close()
      this.ahead.set(j, opened);
    }
  }

  private async *stream(id: number, opened: Promise<AsyncIterable<Uint8Array>>): AsyncIterable<Uint8Array> {
    const file = metaName(id);
    let total = 0;
    for await (const c of await opened) {
      total += c.length;
      if (total > MAX_META_FILE_SIZE) throw corruption(`${file} grew over the size limit while read`, { file, backupId: id });
      yield c;
    }
  }
}

// eslint-disable-next-line require-yield
async function* refuse(e: Error): AsyncIterable<Uint8Array> {
  throw e;
}
