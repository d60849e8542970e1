// Downloads: what a restore keeps alive is small (each socket read is written at its offset as it
// arrives, src/io/parallel-ranges.ts), but node:http makes fresh buffers of every socket read (the
// read itself and the HTTP parser's copy of the body), and V8 lets them pile up as garbage until
// its own heuristics start a collection: by then many times what is alive, whose pages the C
// allocator keeps. Every such buffer dies young, so a young-generation collection (a scavenge,
// which only visits live young objects) frees them all: one after every few MiB of downloaded
// bytes bounds the pile to that. Paced by bytes, not by a timer: under load the event loop can
// run reads for a long time between two timers. The measured effect is in the README (Memory).
//
// A process-wide setting, so only the CLI turns it on, for the commands that download (a library
// must not change its host's GC); library users may call paceGcByBytes() at start-up.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { REUSABLE_CHUNK_MIN } from './env.ts';

export const DEFAULT_GC_PACE = 8 * 1024 * 1024;

type Collect = (opts: { type: 'minor'; execution: 'sync' }) => void;
let collect: Collect | undefined;
let pace = 0;
let sinceLast = 0;

/**
 * From now on, collects the young generation after every `every` bytes reported to
 * bytesStreamed(). Returns false where V8 offers no way to start a collection.
 */
export function paceGcByBytes(every: number = DEFAULT_GC_PACE): boolean {
  if (!(Number.isSafeInteger(every) && every > 0)) throw new RangeError(`GC pace must be a positive number of bytes, not ${every}`);
  if (collect === undefined) {
    // gc() exists only in contexts created while --expose-gc is set: one is made for it, and the
    // flag is cleared again so that no other context (a library's vm use, say) gets a gc global.
    v8.setFlagsFromString('--expose-gc');
    try {
      const gc: unknown = vm.runInNewContext('typeof gc === "function" ? gc : undefined');
      if (typeof gc === 'function') collect = gc as Collect;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
    if (collect === undefined) return false;
  }
  pace = every;
  sinceLast = 0;
  return true;
}

/** Stops pacing (the collections V8 decides on itself go on as always). */
export function stopGcPacing(): void {
  pace = 0;
}

/**
 * Reports the size of a chunk a download delivered; a no-op unless pacing is on. Only chunks
 * under REUSABLE_CHUNK_MIN count: those are socket reads in fresh buffers, while larger ones may be
 * a provider's reused buffers (the local disk's, cairn's raw HTTP client's), which leave no garbage.
 */
export function bytesStreamed(bytes: number): void {
  if (pace === 0 || bytes >= REUSABLE_CHUNK_MIN) return;
  sinceLast += bytes;
  if (sinceLast < pace) return;
  sinceLast = 0;
  collect!({ type: 'minor', execution: 'sync' });
}

// Commands that send many small requests or parse many manifests (verify --server-checksum sends
// 32 HEADs at once; list, purge and gc parse every manifest): objects of the requests in flight
// live through scavenges and reach the old generation, where V8 lets garbage grow to several times
// what the last full collection kept before it starts the next one. A growth of half keeps the
// pile small for a little more CPU where the heap is large. Not for downloads: there the promoted
// write batches made full collections run back to back, at a multiple of the CPU. Settable at
// run time, unlike the young generation's size (bin/node-flags). Figures: README, Memory.
export const OLD_GENERATION_GROWTH_PERCENT = 50;

let growthLimited = false;

/** Starts a full collection once the old generation has grown by OLD_GENERATION_GROWTH_PERCENT. */
export function limitOldGenerationGrowth(): void {
  if (growthLimited) return;
  v8.setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT}`);
  growthLimited = true;
}

// A directory whose manifests are large (a year of dailies of a DB with 160k files: 3.9 GiB,
// a catalog of ~150 MiB live) is where peak memory matters most. There V8's optimize-for-size
// mode (smaller heap growth and memory-reducing collections) took verify on MinIO from 315 to
// 275 MiB at no measured CPU cost; on a small directory (161 MiB of manifests) it cost 24-33%
// more CPU on request-heavy commands for 5-10 MiB. So it is turned on by the size of what a
// command is about to parse, once the CLI allowed it. Figures: README, Scale.
export const LARGE_CATALOG_BYTES = 1024 * 1024 * 1024;

let sizeModeAllowed = false;
let sizeModeOn = false;

/** Lets manifestBytesToLoad() turn on optimize-for-size (the CLI calls this; a library host decides for itself). */
export function allowSizeModeForLargeCatalogs(): void {
  sizeModeAllowed = true;
}

/** Told by the catalog how many bytes of manifests it is about to parse. */
export function manifestBytesToLoad(bytes: number): void {
  if (!sizeModeAllowed || sizeModeOn || bytes < LARGE_CATALOG_BYTES) return;
  v8.setFlagsFromString('--optimize-for-size');
  sizeModeOn = true;
}

/** Whether optimize-for-size was turned on (for tests and diagnostics). */
export function sizeModeIsOn(): boolean {
  return sizeModeOn;
}
