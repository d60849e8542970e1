// GCS downloads against a real fake-gcs-server behind the fault proxy: reads that take each chunk
// before asking for the next go over cairn's raw HTTP client (large reused chunks) and return the
// stored bytes; a body cut midway resumes from the bytes received; a whole object damaged in
// flight fails with Corruption; with a proxy variable set, downloads stay on node:http.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer } from '../support/gcs-server.ts';
import { match } from '../support/gcs-fault-proxy.ts';
import { useGcsHarness } from '../support/gcs-harness.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { REUSABLE_CHUNK_MIN } from '../../src/env.ts';
import { readReusing as read } from '../support/env-conformance.ts';
import { readParallelRanges } from '../../src/io/parallel-ranges.ts';

const server = await startGcsServer();
const skip = requireOrSkip(server !== undefined, 'fake-gcs-server (run scripts/install-gcs-server.sh)');
after(async () => {
  await server?.stop();
});

const big = randomBytes(5 * 1024 * 1024 + 77);

describe('gcs downloads on fake-gcs-server', { skip }, () => {
  const h = useGcsHarness(() => server!);

  it('reads with reused buffers return the stored bytes in large chunks, whole and as ranges', async () => {
    const { env } = await h.open();
    await env.write('shared_checksum/big.sst', [big]);
    const whole = await read(env, 'shared_checksum/big.sst');
    assert.ok(whole.bytes.equals(big));
    assert.ok(whole.sizes.slice(0, -1).every((n) => n >= REUSABLE_CHUNK_MIN), `chunks: ${whole.sizes}`);
    for (const [offset, length] of [
      [1_000_000, 2_000_000],
      [big.length - 10, 1000],
      [7, undefined],
    ] as const) {
      const got = await read(env, 'shared_checksum/big.sst', { offset, ...(length === undefined ? {} : { length }) });
      assert.ok(got.bytes.equals(big.subarray(offset, length === undefined ? undefined : offset + length)), `bytes ${offset}+${length}`);
    }
    assert.equal((await read(env, 'shared_checksum/big.sst', { offset: big.length, length: 5 })).bytes.length, 0, 'at the end: empty');
    await assert.rejects(read(env, 'shared_checksum/missing.sst'), (e) => isCairnError(e, 'NotFound'));
    await env.close();
  });

  it('a body cut midway resumes from the bytes received; a whole object damaged in flight fails with Corruption', async () => {
    const { env } = await h.open({ readPartSize: 2 * 1024 * 1024, readConcurrency: 2 });
    await env.write('shared_checksum/big.sst', [big]);
    h.proxy.addRule({ match: match.download, action: { kind: 'cutResponse', afterBytes: 1_500_000 } });
    const mark = h.proxy.log.length;
    const crc = await readParallelRanges(
      (offset, length, signal) => env.openRead('shared_checksum/big.sst', { offset, length, signal, reuseBuffers: true }),
      () => ({ chunk: () => {} }),
      { name: 'big.sst', size: big.length, partSize: 2 * 1024 * 1024, concurrency: 2 },
    );
    assert.equal(crc, crc32c(big));
    const downloads = h.proxy.log.slice(mark).filter(match.download);
    assert.equal(downloads.filter((r) => r.fault === 'cutResponse').length, 1);
    const resumed = downloads.map((r) => String(r.headers['range'])).filter((r) => !['bytes=0-2097151', 'bytes=2097152-4194303', `bytes=4194304-${big.length - 1}`].includes(r));
    assert.equal(resumed.length, 1, `ranges: ${downloads.map((r) => r.headers['range'])}`);
    const from = Number(/^bytes=(\d+)-/.exec(resumed[0]!)![1]);
    assert.ok(from > 0 && from <= 1_500_000, `resumed at ${from}`);
    h.proxy.addRule({ match: match.download, action: { kind: 'flipResponse', at: 3_000_000 } });
    await assert.rejects(read(env, 'shared_checksum/big.sst'), (e) => isCairnError(e, 'Corruption'));
    await env.close();
  });

  it('with a proxy variable set, downloads stay on node:http (its socket-sized chunks)', async () => {
    const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, NO_PROXY: process.env.NO_PROXY };
    process.env.HTTPS_PROXY = 'http://proxy.invalid:3128';
    // (Loopback is excluded, so that the library's requests and node:http's still reach the server.)
    process.env.NO_PROXY = '127.0.0.1,localhost';
    try {
      const { env } = await h.open();
      await env.write('shared_checksum/big.sst', [big]);
      const got = await read(env, 'shared_checksum/big.sst');
      assert.ok(got.bytes.equals(big));
      assert.ok(got.sizes.every((n) => n <= 64 * 1024), `chunks of at most 64 KiB: ${Math.max(...got.sizes)}`);
      await env.close();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
