// GCS uploads against a real fake-gcs-server behind the fault proxy: the resumable session cairn
// drives (chunks resent, a lost last answer, the whole object's CRC32C on the last request),
// transfers corrupted in flight, and aborts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer } from '../support/gcs-server.ts';
import { match } from '../support/gcs-fault-proxy.ts';
import { useGcsHarness } from '../support/gcs-harness.ts';
import { chunked, listAll, readAll } from '../support/env-conformance.ts';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';

const server = await startGcsServer();
const skip = requireOrSkip(server !== undefined, 'fake-gcs-server (run scripts/install-gcs-server.sh)');
after(async () => {
  await server?.stop();
});

const MiB = 1 << 20;

describe('gcs uploads on fake-gcs-server', { skip }, () => {
  const h = useGcsHarness(() => server!);
  const { open, rawCrc, rawExists } = h;

  it('a small upload flipped in flight is rejected by the server (declared crc32c) and never published', async () => {
    const { env, prefix } = await open();
    h.proxy.addRule({ match: match.simpleUpload, action: { kind: 'flipRequest', at: 20_000 } });
    const data = randomBytes(100_000);
    await assert.rejects(env.write('shared_checksum/flip-small.sst', chunked(data)), (e) => isCairnError(e, 'Corruption'));
    assert.equal(h.proxy.log.filter((r) => r.fault === 'flipRequest').length, 1);
    assert.equal(h.proxy.log.find((r) => r.fault === 'flipRequest')?.status, 400);
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-small.sst`), false);
  });

  it('a large upload with expectedCrc32c flipped in flight is rejected by the server before it is visible', async () => {
    // One chunk: fake-gcs-server checks the crc32c declared at session start only when the upload
    // completes in the request that carried the first bytes (see docs/gcs.md).
    const { env, prefix } = await open({ chunkSize: 4 * MiB });
    h.proxy.addRule({ match: match.resumableChunk, action: { kind: 'flipRequest', at: MiB + 3 } });
    const data = randomBytes(3 * MiB);
    await assert.rejects(env.write('shared_checksum/flip-large.sst', chunked(data), { expectedCrc32c: crc32c(data) }), (e) => isCairnError(e, 'Corruption'));
    assert.equal(h.proxy.log.find((r) => r.fault === 'flipRequest')?.status, 400);
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-large.sst`), false);
  });

  it('a large upload without expectedCrc32c flipped in flight: stored crc32c differs, object deleted, Corruption', async () => {
    const { env, prefix } = await open();
    h.proxy.addRule({ match: match.resumableChunk, action: { kind: 'flipRequest', at: 1000 } });
    const data = randomBytes(3 * MiB);
    await assert.rejects(env.write('shared_checksum/flip-nocrc.sst', chunked(data)), (e) => isCairnError(e, 'Corruption'));
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-nocrc.sst`), false);
  });

  it('the request that completes a resumable upload carries the whole object\'s crc32c (X-Goog-Hash), the others none', async () => {
    const { env, prefix } = await open();
    const data = randomBytes(MiB + 1000);
    await env.write('shared_checksum/hashed.sst', chunked(data, 100_000));
    const chunks = h.proxy.log.filter((r) => match.resumableChunk(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/hashed.sst`)));
    assert.equal(chunks.length, 5, 'four chunks of 256 KiB and a tail');
    assert.deepEqual(chunks.map((r) => r.headers['x-goog-hash']), [undefined, undefined, undefined, undefined, `crc32c=${crc32cToBase64(crc32c(data))}`]);
    assert.equal(chunks.at(-1)?.headers['content-range'], `bytes ${4 * 256 * 1024}-${data.length - 1}/${data.length}`);
  });

  for (const [label, action] of [
    ['answered 503', { kind: 'status', status: 503 }],
    ['cut off (connection reset)', { kind: 'reset' }],
  ] as const) {
    it(`a chunk ${label} is resent from where the session stands, and the object is whole`, async () => {
      const { env, prefix } = await open();
      const from = h.proxy.log.length;
      h.proxy.addRule({ match: match.chunkAt(512 * 1024), action });
      const data = randomBytes(MiB + 1000);
      assert.deepEqual(await env.write('shared_checksum/resent.sst', chunked(data, 100_000)), { size: data.length, crc32c: crc32c(data) });
      const log = h.proxy.log.slice(from);
      assert.equal(log.filter((r) => r.fault).length, 1);
      assert.equal(log.find(match.statusQuery)?.status, 308, 'the session was asked where it stands');
      assert.equal(log.filter(match.chunkAt(512 * 1024)).length, 2, 'the failed chunk was sent again');
      assert.ok((await readAll(env, 'shared_checksum/resent.sst')).equals(data));
      assert.equal(await rawCrc(`${prefix}/shared_checksum/resent.sst`), crc32cToBase64(crc32c(data)));
    });
  }

  it('a chunk whose connection goes silent is dropped after socketTimeout and resent', { timeout: 60_000 }, async () => {
    const { env, prefix } = await open({ socketTimeout: 2000 });
    const from = h.proxy.log.length;
    h.proxy.addRule({ match: match.chunkAt(256 * 1024), action: { kind: 'stall' } });
    const data = randomBytes(MiB + 1000);
    assert.deepEqual(await env.write('shared_checksum/stalled.sst', chunked(data, 100_000)), { size: data.length, crc32c: crc32c(data) });
    const log = h.proxy.log.slice(from);
    assert.equal(log.filter((r) => r.fault === 'stall').length, 1);
    assert.equal(log.filter(match.chunkAt(256 * 1024)).length, 2, 'the stalled chunk was sent again');
    assert.equal(await rawCrc(`${prefix}/shared_checksum/stalled.sst`), crc32cToBase64(crc32c(data)));
  });

  it('a session that answers nonsense fails the write with IOError and publishes nothing, without looping', { timeout: 60_000 }, async () => {
    const data = randomBytes(MiB + 1000);
    // A chunk "persisted" beyond what was sent.
    const { env, prefix } = await open();
    h.proxy.addRule({ match: match.chunkAt(256 * 1024), action: { kind: 'status', status: 308, headers: { range: `bytes=0-${10 * MiB}` } } });
    await assert.rejects(env.write('shared_checksum/nonsense.sst', chunked(data, 100_000)), (e) => isCairnError(e, 'IOError') && /claims/.test((e as Error).message));
    assert.equal(await rawExists(`${prefix}/shared_checksum/nonsense.sst`), false);
    // The last chunk acknowledged with 308 and never finalized.
    const { env: env2, prefix: prefix2 } = await open();
    h.proxy.addRule({ match: match.lastChunk, action: { kind: 'status', status: 308, headers: { range: `bytes=0-${data.length - 1}` } } });
    await assert.rejects(env2.write('shared_checksum/unfinished.sst', chunked(data, 100_000)), (e) => isCairnError(e, 'IOError') && /did not finalize/.test((e as Error).message));
    assert.equal(await rawExists(`${prefix2}/shared_checksum/unfinished.sst`), false);
  });

  it('the last chunk\'s lost answer: the session reports the object complete, the write succeeds once', async () => {
    const { env, prefix } = await open();
    const from = h.proxy.log.length;
    h.proxy.addRule({ match: match.lastChunk, action: { kind: 'dropResponse' } });
    const data = randomBytes(MiB + 1000);
    assert.deepEqual(await env.write('shared_checksum/lost.sst', chunked(data, 100_000), { createOnly: true }), { size: data.length, crc32c: crc32c(data) });
    const log = h.proxy.log.slice(from);
    assert.equal(log.filter((r) => r.fault === 'dropResponse').length, 1);
    assert.equal(log.find(match.statusQuery)?.status, 200);
    assert.equal(await rawCrc(`${prefix}/shared_checksum/lost.sst`), crc32cToBase64(crc32c(data)));
  });

  it('refuses a chunkSize that is not a positive multiple of 256 KiB, naming it', async () => {
    for (const chunkSize of [0, 100_000]) {
      await assert.rejects(open({ chunkSize }), (e) => isCairnError(e, 'InvalidArgument') && /chunkSize/.test((e as Error).message), String(chunkSize));
    }
  });

  it('an abort mid-upload leaves nothing, and stops sending', async () => {
    for (const chunkSize of [256 * 1024, MiB]) {
      const { env, prefix } = await open({ chunkSize });
      const ac = new AbortController();
      let sent = 0;
      async function* src(): AsyncIterable<Buffer> {
        for (let i = 0; i < 40; i++) {
          if (i === 12) ac.abort(new Error('user cancelled'));
          sent++;
          yield randomBytes(256 * 1024);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      await assert.rejects(env.write('shared_checksum/aborted.sst', src(), { signal: ac.signal }), (e) => isCairnError(e, 'Aborted'));
      assert.ok(sent < 40, `source read to the end (${sent} chunks)`);
      assert.equal(await env.stat('shared_checksum/aborted.sst'), undefined);
      assert.equal(await rawExists(`${prefix}/shared_checksum/aborted.sst`), false);
      assert.deepEqual(await listAll(env, ''), new Map());
    }
  });
});
