// Downloads arrive as fresh 64 KiB socket buffers (node:http allocates one per read). By default
// V8 answers every few tens of MiB of such external memory with a full mark-compact of the whole
// heap (the AWS SDK gives it many objects to mark), dozens of them per restore. With external
// memory counted in V8's global heap limit instead, far fewer run, at the same peak RSS (restore
// keeps no range in memory, src/io/parallel-ranges.ts). The measured effect is in the README.
// Not for backups: they reuse their upload part buffers instead (src/io/buffer-pool.ts, the same
// CPU saved); with fresh part buffers this setting let dead ones pile up and raised peak RSS.
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
