// Downloads arrive as fresh 64 KiB socket buffers (node:http allocates one per read), ~35,000 of
// them per 2 GiB restored. By default V8 answers every few tens of MiB of such external memory
// with a full mark-compact of the whole heap (the AWS SDK makes it ~14 MiB of objects to mark):
// 93 of them in one restore of the bench DB, ~1 s of CPU. With external memory counted in V8's
// global heap limit instead, the same restore runs ~27: user CPU 3.2 -> 2.2 s, peak RSS the same
// (~250 MiB: restore keeps no range in memory, src/io/parallel-ranges.ts).
// Not for backups: they reuse their upload part buffers instead (src/io/buffer-pool.ts, the same
// CPU saved); with fresh 8 MiB parts this setting let dead ones pile up (peak RSS 348 -> 776 MiB).
//
// A process-wide V8 setting, so only the CLI turns it on, for restore and verify --checksum (a
// library must not change its host's GC); library users may do the same at start-up. The flag
// exists from V8 13 (Node 24); on an older V8 setting it would print "unrecognized flag", so it
// is left alone there.
import * as v8 from 'node:v8';

export const STREAMING_GC_FLAG = '--external-memory-accounted-in-global-limit';

export function tuneGcForStreaming(): boolean {
  const major = Number(process.versions.v8.split('.')[0]);
  if (!(major >= 13)) return false;
  v8.setFlagsFromString(STREAMING_GC_FLAG);
  return true;
}
