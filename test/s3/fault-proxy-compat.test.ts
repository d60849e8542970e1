// The fault proxy's compat mode (test/support/fault-proxy.ts) in front of MinIO: it must make MinIO
// look like a store that keeps no checksums and ignores If-None-Match, while MinIO still validates
// what it receives, so that a corrupted body is caught by Content-MD5 alone. This tests the proxy,
// which the S3 provider's compatible write path is tested through (compatible-path.test.ts).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { rawS3Client, s3ServerInstalled, startS3Server, type S3Server } from '../support/s3-servers.ts';
import { PROBES, probeStore } from '../support/s3-probe.ts';
import { isCompleteMultipart, isPutObject, startFaultProxy, stripChecksumElements, type CompatMode, type FaultProxy, type FaultRule } from '../support/fault-proxy.ts';

const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest();
const statusOf = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

describe('fault proxy compat mode in front of MinIO', { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (bash scripts/install-s3-servers.sh minio)') ?? false }, () => {
  let server: S3Server;
  const proxies: FaultProxy[] = [];
  const clients: S3Client[] = [];
  before(async () => {
    server = (await startS3Server('minio'))!;
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(proxies.map((p) => p.stop()));
    await server?.stop();
  });

  const client = (endpoint: string) => {
    const c = rawS3Client(server, { endpoint });
    // As cairn sends bodies to a loopback endpoint: UNSIGNED-PAYLOAD, so the signature does not cover
    // the body and only Content-MD5 (or a checksum) can catch a corrupted one.
    c.middlewareStack.add(
      (next, context) => async (args) => {
        const req = args.request as { headers?: Record<string, string> } | undefined;
        if (req?.headers && (context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand')) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        return next(args);
      },
      { step: 'build', name: 'unsignedPayload' },
    );
    clients.push(c);
    return c;
  };
  const viaProxy = async (compat: CompatMode, rules: FaultRule[] = []) => {
    const proxy = await startFaultProxy({ target: server.endpoint, compat, rules, lifetimeMs: 60_000 });
    proxies.push(proxy);
    return { proxy, c: client(proxy.endpoint), direct: client(server.endpoint) };
  };
  let n = 0;
  const key = (w: string) => `compat-${++n}-${w}`;

  it('stripChecksumElements removes every checksum element and nothing else', () => {
    const xml =
      '<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e-2"</ETag><ChecksumCRC32C>AAAAAA==</ChecksumCRC32C><ChecksumType>FULL_OBJECT</ChecksumType><ChecksumSHA256>x</ChecksumSHA256></CompleteMultipartUploadResult>';
    assert.equal(stripChecksumElements(xml), '<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e-2"</ETag></CompleteMultipartUploadResult>');
  });

  it('stripChecksums: HEAD and GET answer no checksum for an object MinIO keeps one for; bytes and ETag pass', async () => {
    const { proxy, c, direct } = await viaProxy({ stripChecksums: true });
    const body = randomBytes(10_000);
    const k = key('single');
    const put = await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: body, ChecksumCRC32C: crc32cToBase64(crc32c(body)) }));
    assert.equal(put.ChecksumCRC32C, undefined, 'PUT answer stripped');
    assert.equal(put.ETag, `"${md5(body).toString('hex')}"`);
    const h = await c.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k, ChecksumMode: 'ENABLED' }));
    assert.equal(h.ChecksumCRC32C, undefined);
    assert.equal(h.ChecksumType, undefined);
    assert.equal(h.ContentLength, body.length);
    const g = await c.send(new GetObjectCommand({ Bucket: server.bucket, Key: k, ChecksumMode: 'ENABLED' }));
    assert.equal(g.ChecksumCRC32C, undefined);
    assert.ok(Buffer.from(await g.Body!.transformToByteArray()).equals(body));
    // MinIO itself still has it: the proxy, not the server, hid it.
    const hd = await direct.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k, ChecksumMode: 'ENABLED' }));
    assert.equal(hd.ChecksumCRC32C, crc32cToBase64(crc32c(body)));
    assert.ok(proxy.log.every((r) => r.fault === undefined));
  });

  it('stripChecksums: a FULL_OBJECT multipart Complete answers no checksum (headers and XML), ETag is MD5 of part MD5s', async () => {
    const { c, direct } = await viaProxy({ stripChecksums: true });
    const parts = [randomBytes(5 * MiB), randomBytes(1234)];
    const k = key('multi');
    const cr = await c.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: k, ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' }));
    assert.equal(cr.ChecksumAlgorithm, undefined);
    assert.equal(cr.ChecksumType, undefined);
    const done = [];
    for (const [i, p] of parts.entries()) {
      const r = await c.send(new UploadPartCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId, PartNumber: i + 1, Body: p, ChecksumCRC32C: crc32cToBase64(crc32c(p)) }));
      assert.equal(r.ChecksumCRC32C, undefined);
      done.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32C: crc32cToBase64(crc32c(p)) });
    }
    const whole = crc32cToBase64(crc32c(Buffer.concat(parts)));
    const res = await c.send(
      new CompleteMultipartUploadCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId, ChecksumType: 'FULL_OBJECT', ChecksumCRC32C: whole, MultipartUpload: { Parts: done } }),
    );
    assert.equal(res.ChecksumCRC32C, undefined);
    assert.equal(res.ChecksumType, undefined);
    assert.equal(res.ETag, `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-2"`);
    const hd = await direct.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k, ChecksumMode: 'ENABLED' }));
    assert.equal(hd.ChecksumCRC32C, whole, 'MinIO kept it');
  });

  it('rejectIfNoneMatch: PUT and Complete with If-None-Match get 501 NotImplemented and reach no server', async () => {
    const { proxy, c, direct } = await viaProxy({ rejectIfNoneMatch: true });
    const k = key('inm');
    await assert.rejects(c.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: 'x', IfNoneMatch: '*' })), (e: Error) => statusOf(e) === 501 && e.name === 'NotImplemented');
    await assert.rejects(direct.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k })), (e: Error) => statusOf(e) === 404);
    // the same PUT without the condition goes through
    await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: 'x' }));
    const cr = await c.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: k }));
    const p = await c.send(new UploadPartCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId, PartNumber: 1, Body: randomBytes(100) }));
    await assert.rejects(
      c.send(new CompleteMultipartUploadCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } })),
      (e: Error) => statusOf(e) === 501 && e.name === 'NotImplemented',
    );
    const open = await direct.send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: k }));
    assert.deepEqual((open.Uploads ?? []).map((u) => u.UploadId), [cr.UploadId], 'the refused Complete never reached MinIO');
    await c.send(new AbortMultipartUploadCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId }));
    assert.deepEqual(
      proxy.log.filter((r) => r.fault === 'compat').map((r) => [isPutObject(r) ? 'put' : isCompleteMultipart(r) ? 'complete' : r.method, r.status]),
      [['put', 501], ['complete', 501]],
    );
  });

  it('rejectChecksumHeaders: a request with x-amz-checksum-crc32c is refused with 400, one without passes', async () => {
    const { c } = await viaProxy({ rejectChecksumHeaders: true });
    const body = randomBytes(100);
    await assert.rejects(c.send(new PutObjectCommand({ Bucket: server.bucket, Key: key('crc'), Body: body, ChecksumCRC32C: crc32cToBase64(crc32c(body)) })), (e: Error) => statusOf(e) === 400 && e.name === 'InvalidArgument');
    await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: key('plain'), Body: body, ContentMD5: md5(body).toString('base64') }));
  });

  it('s3-probe sees the gaps the compat mode emulates, and none straight to MinIO', async () => {
    const { proxy } = await viaProxy({ stripChecksums: true, rejectIfNoneMatch: true });
    const target = (endpoint: string) => ({ name: endpoint, endpoint, region: server.region, bucket: server.bucket, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
    const [viaCompat, direct] = [await probeStore(target(proxy.endpoint)), await probeStore(target(server.endpoint))];
    const row = (r: Record<string, string>, i: number) => r[PROBES[i]!.row];
    assert.equal(row(viaCompat, 0), 'not it: none', 'single PUT: no CRC32C returned');
    assert.equal(row(direct, 0), 'the same CRC32C (FULL_OBJECT)');
    assert.equal(row(viaCompat, 2), 'not it: none', 'FULL_OBJECT multipart: no CRC32C returned');
    assert.equal(row(direct, 2), 'the whole-file CRC32C (FULL_OBJECT)');
    for (const i of [5, 6]) {
      assert.match(row(viaCompat, i)!, /^(first PUT )?refused \(501 NotImplemented\)$/, PROBES[i]!.row);
      assert.equal(row(direct, i), 'refused (412 PreconditionFailed)', PROBES[i]!.row);
    }
    // what the compat path relies on still holds through the proxy
    for (const i of [9, 10]) assert.equal(row(viaCompat, i), 'refused (400 BadDigest)', PROBES[i]!.row);
    for (const i of [11, 12]) assert.equal(row(viaCompat, i), 'yes', PROBES[i]!.row);
  });

  it('with checksums stripped, a body corrupted in flight is still refused through Content-MD5 (PUT and UploadPart)', async () => {
    const { proxy, c, direct } = await viaProxy({ stripChecksums: true, rejectIfNoneMatch: true }, [
      { match: isPutObject, action: { kind: 'flipByte', offset: 77 } },
      { match: (r) => r.method === 'PUT' && /[?&]partNumber=1(&|$)/.test(r.url), action: { kind: 'flipByte' } },
    ]);
    const body = randomBytes(50_000);
    const k = key('flip');
    await assert.rejects(c.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: body, ContentMD5: md5(body).toString('base64') })), (e: Error) => statusOf(e) === 400 && e.name === 'BadDigest');
    await assert.rejects(direct.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k })), (e: Error) => statusOf(e) === 404);
    const part = randomBytes(MiB);
    const cr = await c.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: k }));
    await assert.rejects(
      c.send(new UploadPartCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId, PartNumber: 1, Body: part, ContentMD5: md5(part).toString('base64') })),
      (e: Error) => statusOf(e) === 400 && e.name === 'BadDigest',
    );
    await c.send(new AbortMultipartUploadCommand({ Bucket: server.bucket, Key: k, UploadId: cr.UploadId }));
    assert.equal(proxy.faultsApplied(), 2, 'both bodies were corrupted');
    assert.ok(proxy.log.filter(isPutObject).every((r) => r.headers['x-amz-content-sha256'] === 'UNSIGNED-PAYLOAD'), 'the signature did not cover the body');
    // Without Content-MD5 nothing catches it: the corrupted bytes are stored.
    proxy.addRule({ match: isPutObject, action: { kind: 'flipByte', offset: 77 } });
    await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: body }));
    assert.equal(proxy.faultsApplied(), 3);
    const stored = Buffer.from(await (await direct.send(new GetObjectCommand({ Bucket: server.bucket, Key: k }))).Body!.transformToByteArray());
    assert.equal(stored.length, body.length);
    assert.ok(!stored.equals(body) && stored[77] === (body[77]! ^ 1), 'stored corrupted');
  });
});
