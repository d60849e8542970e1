// cairn's own GETs of object bodies (providers/s3/direct-get.ts on object-store/raw-http.ts):
// which answers count as the bytes asked for, then against MinIO behind the fault proxy: after
// the SDK's first GET, reads with reused buffers go without the SDK (no amz-sdk-invocation-id
// header) and return exactly the stored bytes; a body cut midway resumes where it stopped;
// answers other than the bytes are asked again through the SDK, and a refusal (or a body framed
// as this client does not read) the SDK does not get turns cairn's own GETs off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { REUSABLE_CHUNK_MIN } from '../../src/env.ts';
import { readReusing as read } from '../support/env-conformance.ts';
import { readParallelRanges } from '../../src/io/parallel-ranges.ts';
import { framedAsAsked, getTemplateOf } from '../../providers/s3/direct-get.ts';
import type { SentRequest } from '../../providers/s3/direct-request.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled } from '../support/s3-servers.ts';
import { minioBehindProxies, viaSdk } from './direct-harness.ts';
import type { FaultProxy, ProxiedRequest } from '../support/fault-proxy.ts';

const isGetObject = (r: ProxiedRequest) => r.method === 'GET' && r.url.includes('/shared_checksum/');
const gets = (p: FaultProxy) => p.log.filter(isGetObject);
const mine = (r: ProxiedRequest) => isGetObject(r) && !viaSdk(r);

describe('getTemplateOf and framedAsAsked', () => {
  const sent = (o: Partial<SentRequest> = {}): SentRequest => ({
    method: 'GET',
    protocol: 'https:',
    hostname: 's3.eu-west-1.amazonaws.com',
    path: '/b/p/a%20b/000001.sst',
    query: { 'x-id': 'GetObject' },
    headers: { host: 's3.eu-west-1.amazonaws.com', range: 'bytes=0-9', authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00' },
    ...o,
  });
  it("takes the path before the key, the SDK's x-id and the SigV4 scope, not the range", () => {
    assert.deepEqual(getTemplateOf(sent(), 'p/a b/000001.sst'), {
      origin: { protocol: 'https:', hostname: 's3.eu-west-1.amazonaws.com' },
      pathPrefix: '/b/',
      query: { 'x-id': 'GetObject' },
      region: 'eu-west-1',
      service: 's3',
      headers: { host: 's3.eu-west-1.amazonaws.com' },
    });
  });
  it('copies nothing it cannot copy safely', () => {
    assert.equal(getTemplateOf(sent({ query: { 'x-id': 'GetObject', versionId: 'v' } }), 'p/a b/000001.sst'), undefined, 'another query');
    assert.equal(getTemplateOf(sent({ method: 'HEAD' }), 'p/a b/000001.sst'), undefined, 'not a GET');
    assert.equal(getTemplateOf(sent(), 'p/other.sst'), undefined, 'path not ending in the key');
  });
  it('takes exactly the bytes asked for: a whole object as 200, a range as 206 with its Content-Range', () => {
    const res = (status: number, length: number, range?: string) => ({ status, length, headers: new Map(range === undefined ? [] : [['content-range', range]]) });
    assert.ok(framedAsAsked(res(200, 100), 0, undefined));
    assert.ok(framedAsAsked(res(206, 10, 'bytes 5-14/100'), 5, 10));
    assert.ok(framedAsAsked(res(206, 5, 'bytes 95-99/100'), 95, 10), 'fewer bytes where the object ends');
    assert.ok(framedAsAsked(res(206, 95, 'bytes 5-99/100'), 5, undefined), 'to the end');
    assert.ok(!framedAsAsked(res(200, 100), 5, 10), 'the range ignored');
    assert.ok(!framedAsAsked(res(206, 10, 'bytes 6-15/100'), 5, 10), 'another range');
    assert.ok(!framedAsAsked(res(206, 5, 'bytes 5-9/100'), 5, 10), 'short, not at the end');
    assert.ok(!framedAsAsked(res(206, 10, 'bytes 5-14/*'), 5, undefined), 'to the end, the end unknown');
    assert.ok(!framedAsAsked(res(206, 10), 5, 10), 'no Content-Range');
    assert.ok(!framedAsAsked(res(206, 100, 'bytes 0-99/100'), 0, undefined), '206 to a request without a range');
  });
});

describe("cairn's own GETs against MinIO", { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (bash scripts/install-s3-servers.sh minio)') ?? false }, () => {
  const envVia = minioBehindProxies('direct-get');
  const big = randomBytes(5 * 1024 * 1024 + 321);
  const small = randomBytes(1000);

  const setup = async (o: Parameters<typeof envVia>[0] = {}) => {
    const r = await envVia(o);
    await r.env.write('shared_checksum/big.sst', [big]);
    await r.env.write('shared_checksum/small.sst', [small]);
    await r.env.write('shared_checksum/empty.sst', []);
    return r;
  };

  it('after the first GET through the SDK, reads return the stored bytes without the SDK, in large chunks', async () => {
    const { env, proxy } = await setup();
    assert.ok((await read(env, 'shared_checksum/small.sst')).bytes.equals(small));
    const whole = await read(env, 'shared_checksum/big.sst');
    assert.ok(whole.bytes.equals(big));
    assert.ok(whole.sizes.slice(0, -1).every((n) => n >= REUSABLE_CHUNK_MIN), `chunks: ${whole.sizes}`);
    for (const [offset, length] of [
      [0, 1],
      [1_000_000, 2_000_000],
      [big.length - 10, 10],
      [big.length - 10, 1000],
      [3, undefined],
    ] as const) {
      const got = await read(env, 'shared_checksum/big.sst', { offset, ...(length === undefined ? {} : { length }) });
      assert.ok(got.bytes.equals(big.subarray(offset, length === undefined ? undefined : offset + length)), `bytes ${offset}+${length}`);
    }
    assert.equal((await read(env, 'shared_checksum/empty.sst')).bytes.length, 0);
    assert.equal((await read(env, 'shared_checksum/big.sst', { offset: big.length, length: 5 })).bytes.length, 0, 'at the end: empty');
    await assert.rejects(read(env, 'shared_checksum/missing.sst'), (e) => isCairnError(e, 'NotFound'));
    const log = gets(proxy);
    assert.ok(viaSdk(log[0]!), 'the template came from an SDK GET');
    // Past the first: cairn's own, but for the two answers that are not bytes (416 at the end, 404), asked again through the SDK.
    assert.deepEqual(
      log.slice(1).map((r) => (viaSdk(r) ? `sdk ${r.status}` : `own ${r.status}`)),
      ['own 200', 'own 206', 'own 206', 'own 206', 'own 206', 'own 206', 'own 200', 'own 416', 'sdk 416', 'own 404', 'sdk 404'],
    );
    assert.equal(env.requestCounts()['GET'], proxy.log.filter((r) => r.method === 'GET' && !r.url.includes('list-type=2')).length, 'cairn counts its own GETs');
  });

  it('a body cut midway resumes from the first byte not received; a parallel-range read completes with the right CRC32C', async () => {
    const { env, proxy } = await setup();
    await read(env, 'shared_checksum/small.sst');
    proxy.addRule({ match: (r) => mine(r) && r.url.includes('big.sst'), action: { kind: 'cutResponse', afterBytes: 1_500_000 } });
    const partSize = 2 * 1024 * 1024;
    const crc = await readParallelRanges(
      (offset, length, signal) => env.openRead('shared_checksum/big.sst', { offset, length, signal, reuseBuffers: true }),
      () => ({ chunk: () => {} }),
      { name: 'big.sst', size: big.length, partSize, concurrency: 2 },
    );
    assert.equal(crc, crc32c(big));
    assert.equal(proxy.faultsApplied(), 1);
    const ranges = gets(proxy)
      .filter((r) => r.url.includes('big.sst'))
      .map((r) => String(r.headers['range']));
    // The cut range (the first) is asked again from the last whole chunk received, not from its start.
    const asked = ['bytes=0-2097151', 'bytes=2097152-4194303', `bytes=4194304-${big.length - 1}`];
    assert.deepEqual(asked.filter((r) => !ranges.includes(r)), [], `ranges: ${ranges}`);
    const resumed = ranges.filter((r) => !asked.includes(r));
    assert.equal(resumed.length, 1, `ranges: ${ranges}`);
    const from = Number(/^bytes=(\d+)-/.exec(resumed[0]!)![1]);
    assert.ok(from > 0 && from <= 1_500_000, `resumed at ${from}`);
  });

  it('an answer other than the bytes is asked again through the SDK; a refusal the SDK does not get turns them off', async () => {
    const { env, proxy } = await setup();
    await read(env, 'shared_checksum/small.sst');
    // A passing failure: the SDK's retry gets the bytes, and the next read is cairn's own again.
    proxy.addRule({ match: mine, action: { kind: 'status', status: 503 } });
    assert.ok((await read(env, 'shared_checksum/big.sst')).bytes.equals(big));
    assert.ok((await read(env, 'shared_checksum/small.sst')).bytes.equals(small));
    assert.deepEqual(gets(proxy).slice(1).map((r) => `${viaSdk(r) ? 'sdk' : 'own'} ${r.status}`), ['own 503', 'sdk 200', 'own 200']);
    // A refusal only cairn's requests get (a 403, say): off for this env.
    const n = gets(proxy).length;
    proxy.addRule({ match: mine, action: { kind: 'status', status: 403, code: 'AccessDenied' } });
    for (let i = 0; i < 3; i++) assert.ok((await read(env, 'shared_checksum/big.sst')).bytes.equals(big));
    assert.deepEqual(gets(proxy).slice(n).map((r) => `${viaSdk(r) ? 'sdk' : 'own'} ${r.status}`), ['own 403', 'sdk 200', 'sdk 200', 'sdk 200']);
  });

  it('a store that frames bodies as chunked: asked again through the SDK, then the SDK reads every body', async () => {
    const { env, proxy } = await setup();
    await read(env, 'shared_checksum/small.sst');
    proxy.addRule({ match: isGetObject, action: { kind: 'chunked' }, times: 100 });
    for (let i = 0; i < 3; i++) assert.ok((await read(env, 'shared_checksum/big.sst')).bytes.equals(big));
    assert.deepEqual(gets(proxy).slice(1).map((r) => (viaSdk(r) ? 'sdk' : 'own')), ['own', 'sdk', 'sdk', 'sdk']);
  });

  it('an abort stops a body midway with Aborted; with directGet: false every GET goes through the SDK', async () => {
    const { env } = await setup();
    await read(env, 'shared_checksum/small.sst');
    const ac = new AbortController();
    await assert.rejects(
      (async () => {
        for await (const _ of await env.openRead('shared_checksum/big.sst', { reuseBuffers: true, signal: ac.signal })) ac.abort();
      })(),
      (e) => isCairnError(e, 'Aborted'),
    );
    const off = await setup({ directGet: false });
    for (let i = 0; i < 2; i++) assert.ok((await read(off.env, 'shared_checksum/big.sst')).bytes.equals(big));
    assert.ok(gets(off.proxy).every(viaSdk));
  });
});
