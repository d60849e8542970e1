// GC pacing for downloads (src/gc-tuning.ts): checked by its effect in a child process, so a Node
// upgrade that takes gc() away or changes what a young-generation collection frees fails here
// instead of silently bringing back restores' 250+ MiB peaks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { paceGcByBytes, stopGcPacing } from '../../src/gc-tuning.ts';

const gcTuning = pathToFileURL(path.join(import.meta.dirname, '../../src/gc-tuning.ts')).href;

// A download's allocation pattern: 512 MiB of fresh 64 KiB buffers, each reported to
// bytesStreamed() and dropped at once, a few alive at a time. Prints the most ArrayBuffer memory
// seen (dead buffers not yet collected included), whether pacing was on, and whether a gc global
// leaked into a new context.
const probe = `
import * as vm from 'node:vm';
const m = await import(${JSON.stringify(gcTuning)});
const paced = process.argv[1] === 'paced' ? m.paceGcByBytes(4 << 20) : false;
let peak = 0;
const live = [];
for (let i = 0; i < 8192; i++) {
  const b = Buffer.allocUnsafe(65536).fill(i);
  live.push(b); if (live.length > 16) live.shift();
  m.bytesStreamed(b.length);
  if (i % 16 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
}
console.log(JSON.stringify({ paced, peakMiB: peak / 1048576, gcLeaked: vm.runInNewContext('typeof gc') !== 'undefined' }));
`;

function run(mode: 'plain' | 'paced'): { paced: boolean; peakMiB: number; gcLeaked: boolean } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe, mode], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { paced: boolean; peakMiB: number; gcLeaked: boolean };
}

describe('GC pacing for downloads', () => {
  it('bounds the dead buffers a stream of fresh ones leaves to about the pace', () => {
    const plain = run('plain');
    const paced = run('paced');
    assert.equal(paced.paced, true);
    // Live: 1 MiB; pace: 4 MiB; the process's own ArrayBuffers and V8's deferred freeing add some
    // (measured: ~13 MiB paced, 80-87 MiB unpaced).
    assert.ok(paced.peakMiB <= 24, `paced: ${paced.peakMiB.toFixed(1)} MiB of ArrayBuffers at the peak`);
    assert.ok(plain.peakMiB >= 2 * paced.peakMiB, `unpaced ${plain.peakMiB.toFixed(1)} MiB vs paced ${paced.peakMiB.toFixed(1)} MiB`);
    assert.equal(paced.gcLeaked, false, 'no gc global in contexts created after pacing was turned on');
  });

  it('rejects a pace that is not a positive number of bytes, and can be turned on again and off', () => {
    assert.throws(() => paceGcByBytes(0), RangeError);
    assert.throws(() => paceGcByBytes(1.5), RangeError);
    assert.equal(paceGcByBytes(1 << 20), true);
    assert.equal(paceGcByBytes(), true);
    stopGcPacing();
  });
});

// Requests in flight: objects that live through scavenges, then die; a full collection frees them.
const growthProbe = `
const m = await import(${JSON.stringify(gcTuning)});
if (process.argv[1] === 'limited') m.limitOldGenerationGrowth();
let peak = 0;
const ring = new Array(20000);
for (let i = 0; i < 600000; i++) {
  ring[i % 20000] = { s: 'x'.repeat(200) + i, a: new Array(50).fill(i) };
  if (i % 2000 === 0) peak = Math.max(peak, v8.getHeapStatistics().used_heap_size);
}
console.log(JSON.stringify({ peakMiB: peak / 1048576 }));
`;

describe('old generation growth for the commands that do not download', () => {
  it('starts full collections sooner, so promoted garbage piles up less', () => {
    const peak = (mode: string) => {
      const r = spawnSync(process.execPath, ['--max-semi-space-size=2', '--input-type=module', '-e', growthProbe, mode], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout.trim()) as { peakMiB: number }).peakMiB;
    };
    const plain = peak('plain');
    const limited = peak('limited');
    // (measured: 84-85 MiB of heap in use at the peak by default, 58-60 MiB limited)
    assert.ok(limited <= plain * 0.85, `limited ${limited.toFixed(0)} MiB vs default ${plain.toFixed(0)} MiB`);
  });
});

describe('optimize-for-size for large catalogs', () => {
  // In a child: the V8 flag is process-wide.
  const probe = `
const m = await import(${JSON.stringify(gcTuning)});
const steps = [];
m.manifestBytesToLoad(m.LARGE_CATALOG_BYTES * 2);
steps.push(m.sizeModeIsOn());
m.allowSizeModeForLargeCatalogs();
m.manifestBytesToLoad(m.LARGE_CATALOG_BYTES - 1);
steps.push(m.sizeModeIsOn());
m.manifestBytesToLoad(m.LARGE_CATALOG_BYTES);
steps.push(m.sizeModeIsOn());
console.log(JSON.stringify(steps));
`;
  it('turns on only where the CLI allowed it, and only for a GiB of manifests or more', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), [false, false, true]);
  });
});
