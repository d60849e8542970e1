// cairn's own HEAD requests (providers/s3/direct-head.ts) against MinIO, behind the fault proxy
// to see each request: after the SDK's first HEAD answered 200, HEADs go without the SDK (no
// amz-sdk-invocation-id header) and answer what the SDK would (size, stored CRC32C, missing);
// answers other than 200/404 are sent again through the SDK, and a refusal the SDK does not get
// turns cairn's own HEADs off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import type { S3Env } from '../../providers/s3/index.ts';
import { encodeKeyPath, templateOf, type SentRequest } from '../../providers/s3/direct-head.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled } from '../support/s3-servers.ts';
import { minioBehindProxies, viaSdk, waitFor } from './direct-harness.ts';
import { isHead, type FaultProxy } from '../support/fault-proxy.ts';

const heads = (p: FaultProxy) => p.log.filter(isHead);

describe('encodeKeyPath and templateOf', () => {
  const sent = (o: Partial<SentRequest> = {}): SentRequest => ({
    method: 'HEAD',
    protocol: 'https:',
    hostname: 'b.s3.eu-west-1.amazonaws.com',
    path: '/p/a%20b/000001.sst',
    query: {},
    headers: { host: 'b.s3.eu-west-1.amazonaws.com', authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00', 'user-agent': 'ua' },
    ...o,
  });
  it('encodes each segment as the SDK does, keeping the slashes', () => {
    assert.equal(encodeKeyPath("a b/c!d'(e)*/é+f"), "a%20b/c%21d%27%28e%29%2A/%C3%A9%2Bf");
  });
  it('takes the path before the key, the SigV4 scope and the static headers', () => {
    assert.deepEqual(templateOf(sent(), 'p/a b/000001.sst'), {
      origin: { protocol: 'https:', hostname: 'b.s3.eu-west-1.amazonaws.com' },
      pathPrefix: '/',
      region: 'eu-west-1',
      service: 's3',
      headers: { host: 'b.s3.eu-west-1.amazonaws.com', 'user-agent': 'ua' },
    });
  });
  it('copies nothing it cannot copy safely', () => {
    assert.equal(templateOf(sent(), 'p/other.sst'), undefined, 'path not ending in the key');
    assert.equal(templateOf(sent({ query: { versionId: 'x' } }), 'p/a b/000001.sst'), undefined, 'a query');
    assert.equal(templateOf(sent({ method: 'GET' }), 'p/a b/000001.sst'), undefined, 'not a HEAD');
    const h = sent().headers;
    assert.equal(templateOf(sent({ headers: { ...h, authorization: 'AWS4-ECDSA-P256-SHA256 Credential=AKID/20261201/s3/aws4_request, SignedHeaders=host, Signature=00' } }), 'p/a b/000001.sst'), undefined, 'SigV4a');
    assert.equal(templateOf(sent({ headers: { ...h, 'x-amz-s3session-token': 't' } }), 'p/a b/000001.sst'), undefined, 'an S3 Express session');
  });
});

describe("cairn's own HEADs against MinIO", { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (bash scripts/install-s3-servers.sh minio)') ?? false }, () => {
  const envVia = minioBehindProxies('direct-head');
  const bodies = Array.from({ length: 6 }, (_, i) => Buffer.alloc(1000 + i * 777, i + 1));
  const put = async (env: S3Env) => {
    for (const [i, b] of bodies.entries()) await env.write(`shared_checksum/f${i}.sst`, [b]);
  };

  it('after the first HEAD, answers what the SDK answers without the SDK', async () => {
    const { env, proxy } = await envVia({ prefix: `direct head 0/é!(x)` });
    await put(env);
    const before = heads(proxy).length;
    for (const [i, b] of bodies.entries()) {
      assert.deepEqual(await env.serverChecksum(`shared_checksum/f${i}.sst`), { size: b.length, crc32c: crc32c(b) });
      assert.deepEqual(await env.stat(`shared_checksum/f${i}.sst`), { name: `shared_checksum/f${i}.sst`, size: b.length });
    }
    assert.equal(await env.stat('shared_checksum/missing.sst'), undefined);
    await assert.rejects(env.serverChecksum('shared_checksum/missing.sst'), (e) => isCairnError(e, 'NotFound'));
    const after = heads(proxy).slice(before);
    // (The first 404 asks, through the SDK, whether the bucket exists: HeadBucket.)
    assert.deepEqual(after.filter((r) => !r.url.includes('/shared_checksum/')).map(viaSdk), [true]);
    const mine = after.filter((r) => r.url.includes('/shared_checksum/'));
    assert.equal(mine.length, 2 * bodies.length + 2);
    assert.ok(mine.every((r) => !viaSdk(r)), `every HEAD after the writes' checks is cairn's own: ${mine.filter(viaSdk).map((r) => r.url).join(', ')}`);
    assert.ok(heads(proxy).slice(0, before).some(viaSdk), 'the template came from an SDK HEAD');
    assert.equal(mine.filter((r) => r.status === 404).length, 2);
    assert.equal(env.requestCounts()['HEAD'], heads(proxy).length, 'cairn counts its own HEADs');
  });

  it('with directHead: false every HEAD goes through the SDK', async () => {
    const { env, proxy } = await envVia({ directHead: false });
    await put(env);
    assert.deepEqual(await env.serverChecksum('shared_checksum/f1.sst'), { size: bodies[1]!.length, crc32c: crc32c(bodies[1]!) });
    assert.ok(heads(proxy).length > 0 && heads(proxy).every(viaSdk));
  });

  it('a HEAD answered 503 or dropped is sent again through the SDK, and cairn keeps sending its own', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    let mark = proxy.log.length;
    proxy.addRule({ match: (r) => isHead(r) && !viaSdk(r), action: { kind: 'status', status: 503, code: 'SlowDown' } });
    assert.deepEqual(await env.serverChecksum('shared_checksum/f2.sst'), { size: bodies[2]!.length, crc32c: crc32c(bodies[2]!) });
    assert.deepEqual(proxy.log.slice(mark).map((r) => [viaSdk(r), r.status]), [[false, 503], [true, 200]]);
    mark = proxy.log.length;
    proxy.addRule({ match: (r) => isHead(r) && !viaSdk(r), action: { kind: 'drop' } });
    assert.deepEqual(await env.serverChecksum('shared_checksum/f3.sst'), { size: bodies[3]!.length, crc32c: crc32c(bodies[3]!) });
    assert.deepEqual(proxy.log.slice(mark).map((r) => [viaSdk(r), r.status]), [[false, undefined], [true, 200]]);
    mark = proxy.log.length;
    assert.equal((await env.stat('shared_checksum/f4.sst'))?.size, bodies[4]!.length);
    assert.deepEqual(proxy.log.slice(mark).map((r) => viaSdk(r)), [false], 'still its own');
  });

  it('a HEAD refused (403) where the SDK succeeds turns cairn\'s own HEADs off', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    const mark = proxy.log.length;
    proxy.addRule({ match: (r) => isHead(r) && !viaSdk(r), action: { kind: 'status', status: 403, code: 'AccessDenied' } });
    assert.equal((await env.stat('shared_checksum/f0.sst'))?.size, bodies[0]!.length);
    assert.equal((await env.stat('shared_checksum/f1.sst'))?.size, bodies[1]!.length);
    assert.deepEqual(proxy.log.slice(mark).map((r) => [viaSdk(r), r.status]), [[false, 403], [true, 200], [true, 200]]);
  });

  it('a refusal the SDK gets too is the SDK\'s error', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    proxy.addRule({ match: isHead, action: { kind: 'status', status: 403, code: 'AccessDenied' }, times: 3 });
    await assert.rejects(env.serverChecksum('shared_checksum/f5.sst'), (e) => isCairnError(e, 'PermissionDenied') && e.message.includes('f5.sst'));
  });

  it('an aborted HEAD rejects with the abort, not through the SDK', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    const ac = new AbortController();
    proxy.addRule({ match: (r) => isHead(r) && !viaSdk(r), action: { kind: 'delay', ms: 60_000 } });
    const mark = proxy.log.length;
    const p = env.stat('shared_checksum/f0.sst', { signal: ac.signal });
    await waitFor(() => proxy.log.length > mark);
    ac.abort();
    await assert.rejects(p, (e) => isCairnError(e, 'Aborted'));
    assert.ok(proxy.log.slice(mark).every((r) => !viaSdk(r)));
  });
});
