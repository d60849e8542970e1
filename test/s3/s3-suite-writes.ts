// S3 provider tests (s3-suite.ts): the CRC32C protocol on single and multipart writes, create-only
// writes, corruption in flight, retries of lost answers, resumed downloads.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { mapS3Error } from '../../providers/s3/index.ts';
import { crc32c, crc32cFromBase64, crc32cToBase64 } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { isCompleteMultipart, isCreateMultipart, isHead, isPutObject, isUploadPart } from '../support/fault-proxy.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { chunks, readAll, listNames, openUploads, assertCairn, uniquePrefix, notHere, MiB } from './s3-suite-helpers.ts';
import type { S3Case } from './s3-suite.ts';

export function writeTests(c: S3Case): void {
  const { kind, traits, it, envFor, proxied, head } = c;
  it('single-part write: the stored CRC32C is crc32c(file), read back intact', async () => {
    const env = envFor();
    const data = randomBytes(700_001);
    const res = await env.write('shared_checksum/000011_s1_700001.sst', chunks(data), { size: data.length, createOnly: true });
    assert.deepEqual(res, { size: data.length, crc32c: crc32c(data) });
    const h = await head(env, 'shared_checksum/000011_s1_700001.sst');
    assert.equal(crc32cFromBase64(h.ChecksumCRC32C!), crc32c(data));
    assert.ok(h.ChecksumType === undefined || h.ChecksumType === 'FULL_OBJECT', `type ${h.ChecksumType}`);
    assert.deepEqual(await env.serverChecksum('shared_checksum/000011_s1_700001.sst'), { size: data.length, crc32c: crc32c(data) });
    assert.ok((await readAll(env, 'shared_checksum/000011_s1_700001.sst')).equals(data));
    assert.ok((await readAll(env, 'shared_checksum/000011_s1_700001.sst', { offset: 5, length: 10 })).equals(data.subarray(5, 15)));
    assert.equal((await readAll(env, 'shared_checksum/000011_s1_700001.sst', { offset: data.length })).length, 0);
  });

  it('multipart write (12 MiB, 5 MiB parts): FULL_OBJECT CRC32C of the whole file', async () => {
    const { proxy, env } = await proxied([]);
    const data = randomBytes(12 * MiB + 77);
    const res = await env.write('big.sst', chunks(data, 1 << 20), { size: data.length });
    assert.deepEqual(res, { size: data.length, crc32c: crc32c(data) });
    assert.equal(proxy.log.filter(isUploadPart).length, 3, 'three parts');
    const complete = proxy.log.find(isCompleteMultipart)!;
    assert.equal(complete.headers['x-amz-checksum-crc32c'], crc32cToBase64(crc32c(data)), 'whole-file CRC32C sent on Complete');
    assert.equal(complete.headers['x-amz-checksum-type'], 'FULL_OBJECT');
    const h = await head(env, 'big.sst');
    assert.equal(h.ChecksumType, 'FULL_OBJECT');
    assert.equal(crc32cFromBase64(h.ChecksumCRC32C!), crc32c(data));
    assert.deepEqual(await env.serverChecksum('big.sst'), { size: data.length, crc32c: crc32c(data) });
    assert.equal(crc32c(await readAll(env, 'big.sst')), crc32c(data));
    const mid = await readAll(env, 'big.sst', { offset: 5 * MiB - 3, length: 7 });
    assert.ok(mid.equals(data.subarray(5 * MiB - 3, 5 * MiB + 4)), 'range across a part boundary');
  });

  it('multipart write with unknown size and odd chunking', async () => {
    const env = envFor();
    const data = randomBytes(10 * MiB + 1);
    // chunks of 777 KiB: parts are cut across chunk boundaries
    const res = await env.write('unsized.bin', chunks(data, 777 * 1024));
    assert.equal(res.crc32c, crc32c(data));
    assert.deepEqual(await env.serverChecksum('unsized.bin'), { size: data.length, crc32c: crc32c(data) });
    // exactly one part size: a single PUT
    const exact = randomBytes(5 * MiB);
    const { proxy, env: env2 } = await proxied([]);
    await env2.write('exact.bin', [exact]);
    assert.equal(proxy.log.filter(isUploadPart).length, 0);
    assert.deepEqual(await env2.serverChecksum('exact.bin'), { size: exact.length, crc32c: crc32c(exact) });
  });

  it('createOnly: a second write is AlreadyExists (single-part and multipart), the first stays', async () => {
    const env = envFor();
    await env.write('meta/1', [Buffer.from('first')], { createOnly: true });
    await assert.rejects(env.write('meta/1', [Buffer.from('second')], { createOnly: true }), assertCairn('AlreadyExists', 'meta/1'));
    assert.equal((await readAll(env, 'meta/1')).toString(), 'first');
    const big = randomBytes(11 * MiB);
    await env.write('big', chunks(big), { createOnly: true });
    await assert.rejects(env.write('big', chunks(randomBytes(11 * MiB)), { createOnly: true }), assertCairn('AlreadyExists'));
    assert.deepEqual(await env.serverChecksum('big'), { size: big.length, crc32c: crc32c(big) });
    assert.deepEqual(await openUploads(env, 'big'), [], 'refused multipart upload aborted');
  });

  it('createOnly multipart: an object that appears during the upload wins (If-None-Match on Complete)', async () => {
    const { proxy, env } = await proxied([]);
    async function* racing() {
      yield randomBytes(6 * MiB);
      // the upload has been created by now: another writer publishes the same name
      await env.write('race', [Buffer.from('winner')], { createOnly: true });
      yield randomBytes(5 * MiB);
    }
    await assert.rejects(env.write('race', racing(), { createOnly: true }), assertCairn('AlreadyExists', 'race'));
    const complete = proxy.log.find(isCompleteMultipart);
    assert.ok(complete, 'refused at Complete');
    assert.equal(complete.headers['if-none-match'], '*');
    assert.equal(complete.status, 412);
    assert.equal((await readAll(env, 'race')).toString(), 'winner');
    assert.deepEqual(await openUploads(env, 'race'), []);
  });

  it('expectedCrc32c mismatch: Corruption, nothing visible, no open upload', async () => {
    const env = envFor();
    const small = randomBytes(1000);
    await assert.rejects(env.write('bad1', [small], { expectedCrc32c: crc32c(small) ^ 4 }), assertCairn('Corruption', 'bad1'));
    assert.equal(await env.stat('bad1'), undefined);
    const big = randomBytes(11 * MiB);
    await assert.rejects(env.write('bad2', chunks(big), { expectedCrc32c: crc32c(big) ^ 4, size: big.length }), assertCairn('Corruption', 'bad2'));
    assert.equal(await env.stat('bad2'), undefined);
    assert.deepEqual(await openUploads(env, 'bad2'), []);
    assert.deepEqual(await listNames(env, ''), []);
    // right value: accepted
    await env.write('good', chunks(big), { expectedCrc32c: crc32c(big) });
  });

  it('a declared size that the source does not deliver publishes nothing', async () => {
    const env = envFor();
    await assert.rejects(env.write('short', [randomBytes(100)], { size: 101 }), assertCairn('Corruption'));
    await assert.rejects(env.write('long', chunks(randomBytes(6 * MiB)), { size: 6 * MiB - 1 }), assertCairn('Corruption'));
    assert.deepEqual(await listNames(env, ''), []);
    assert.deepEqual(await openUploads(env, 'long'), []);
  });

  // Checksum rejection runs on the servers that validate (MinIO, LocalStack); moto only echoes.
  const itValidating = traits.validatesChecksums ? it : notHere;
  if (!traits.validatesChecksums) {
    it(`${kind} stores a body whose declared CRC32C is wrong (known gap: rejection is tested on MinIO and LocalStack)`, async () => {
      const env = envFor();
      const body = randomBytes(1000);
      await env.client.send(new PutObjectCommand({ Bucket: env.bucket, Key: `${env.prefix}gap`, Body: body, ChecksumCRC32C: crc32cToBase64(crc32c(body) ^ 1) }));
      assert.ok((await readAll(env, 'gap')).equals(body));
    });
  }
  itValidating('the store refuses a PUT body corrupted in flight; nothing is published', async () => {
    const { proxy, env } = await proxied([{ match: isPutObject, action: { kind: 'flipByte', offset: 1234 } }]);
    const data = randomBytes(100_000);
    await assert.rejects(env.write('flipped', [data]), assertCairn('Corruption', 'flipped'));
    assert.equal(proxy.faultsApplied(), 1);
    assert.equal(await env.stat('flipped'), undefined);
  });

  itValidating('the store refuses a part corrupted in flight; no object, upload aborted', async () => {
    const { proxy, env } = await proxied([{ match: (r) => isUploadPart(r) && /partNumber=2(&|$)/.test(r.url), action: { kind: 'flipByte' } }]);
    const data = randomBytes(11 * MiB);
    await assert.rejects(env.write('flipped-part', chunks(data)), assertCairn('Corruption'));
    assert.equal(proxy.faultsApplied(), 1);
    assert.equal(await env.stat('flipped-part'), undefined);
    assert.deepEqual(await openUploads(env, 'flipped-part'), []);
  });

  itValidating('with UNSIGNED-PAYLOAD the CRC32C alone catches a corrupted body', async () => {
    const { proxy, env } = await proxied([{ match: isPutObject, action: { kind: 'flipByte', offset: 10 } }], { unsignedPayload: true });
    const data = randomBytes(50_000);
    await assert.rejects(env.write('flipped-unsigned', [data]), (e: unknown) => {
      assert.ok(isCairnError(e, 'Corruption'), String(e));
      // BadDigest (S3, LocalStack) / XAmzContentChecksumMismatch (MinIO): the checksum, not the signature
      assert.match(e.message, /BadDigest|XAmzContentChecksumMismatch/);
      return true;
    });
    assert.equal(proxy.log.find(isPutObject)?.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.equal(await env.stat('flipped-unsigned'), undefined);
    // and an intact body goes through with an unsigned payload
    await env.write('intact-unsigned', [data]);
    assert.deepEqual(await env.serverChecksum('intact-unsigned'), { size: data.length, crc32c: crc32c(data) });
  });

  it('signs the body with its SHA-256 when asked (default over http to another host), unsigned to loopback by default', async () => {
    const data = randomBytes(600_000); // above the size hashed on the thread pool
    const signed = await proxied([], { unsignedPayload: false });
    await signed.env.write('signed-body', [data]);
    const sent = signed.proxy.log.find(isPutObject)?.headers['x-amz-content-sha256'];
    assert.equal(sent, createHash('sha256').update(data).digest('hex'));
    assert.deepEqual(await signed.env.serverChecksum('signed-body'), { size: data.length, crc32c: crc32c(data) });
    const byDefault = await proxied([]);
    await byDefault.env.write('default-body', [data]);
    assert.equal(byDefault.proxy.log.find(isPutObject)?.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
  });

  itValidating('the store refuses a Complete whose whole-file CRC32C does not match the parts', async () => {
    const env = envFor();
    const key = `${env.prefix}wrong-whole`;
    const part = randomBytes(5 * MiB);
    const c = await env.client.send(new CreateMultipartUploadCommand({ Bucket: env.bucket, Key: key, ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' }));
    const p = await env.client.send(
      new UploadPartCommand({ Bucket: env.bucket, Key: key, UploadId: c.UploadId, PartNumber: 1, Body: part, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crc32cToBase64(crc32c(part)) }),
    );
    const complete = env.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: env.bucket,
        Key: key,
        UploadId: c.UploadId,
        ChecksumType: 'FULL_OBJECT',
        ChecksumCRC32C: crc32cToBase64(crc32c(part) ^ 1),
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag, ChecksumCRC32C: crc32cToBase64(crc32c(part)) }] },
      }),
    );
    await assert.rejects(complete, (e: unknown) => {
      const m = mapS3Error(e, { op: 'CompleteMultipartUpload', bucket: env.bucket, key });
      assert.equal(m.code, 'Corruption', m.message);
      return true;
    });
    assert.equal(await env.stat('wrong-whole'), undefined);
    await env.client.send(new AbortMultipartUploadCommand({ Bucket: env.bucket, Key: key, UploadId: c.UploadId }));
  });

  it('dropped connections and 500/503 answers are retried; the write succeeds', async () => {
    const { proxy, env } = await proxied([
      { match: isPutObject, action: { kind: 'drop', afterBodyBytes: 20_000 } },
      { match: isPutObject, action: { kind: 'status', status: 503 } },
      { match: isHead, action: { kind: 'status', status: 500 } },
      { match: isCreateMultipart, action: { kind: 'status', status: 503 } },
      { match: isUploadPart, action: { kind: 'drop', afterBodyBytes: 1 * MiB }, times: 2 },
      { match: isUploadPart, action: { kind: 'status', status: 503 } },
      { match: isUploadPart, action: { kind: 'status', status: 500 } },
      { match: isCompleteMultipart, action: { kind: 'drop' } },
      { match: isCompleteMultipart, action: { kind: 'status', status: 503 } },
    ]);
    const small = randomBytes(100_000);
    assert.deepEqual(await env.write('small', [small]), { size: small.length, crc32c: crc32c(small) });
    const big = randomBytes(16 * MiB + 5);
    assert.deepEqual(await env.write('big', chunks(big), { size: big.length }), { size: big.length, crc32c: crc32c(big) });
    assert.equal(proxy.faultsApplied(), 10, 'every fault was hit');
    assert.deepEqual(await env.serverChecksum('small'), { size: small.length, crc32c: crc32c(small) });
    assert.deepEqual(await env.serverChecksum('big'), { size: big.length, crc32c: crc32c(big) });
    assert.equal(crc32c(await readAll(env, 'big')), crc32c(big));
    assert.deepEqual(await openUploads(env, 'big'), []);
  });

  it('a lost answer to a createOnly PUT or to a Complete: the retry recognises its own object', async () => {
    const { proxy, env } = await proxied([
      { match: isPutObject, action: { kind: 'dropResponse' } },
      { match: isCompleteMultipart, action: { kind: 'dropResponse' } },
    ]);
    const small = randomBytes(3000);
    assert.equal((await env.write('meta/9', [small], { createOnly: true })).crc32c, crc32c(small));
    const big = randomBytes(11 * MiB);
    assert.equal((await env.write('big-create-only', chunks(big), { createOnly: true })).crc32c, crc32c(big));
    assert.equal(proxy.faultsApplied(), 2);
    assert.equal(proxy.log.filter(isPutObject).length, 2, 'PUT retried');
    assert.deepEqual(await env.serverChecksum('big-create-only'), { size: big.length, crc32c: crc32c(big) });
    // and a real conflict is still refused
    await assert.rejects(env.write('meta/9', [Buffer.from('other')], { createOnly: true }), assertCairn('AlreadyExists'));
  });

  it('a download cut off mid-body resumes from the last byte received; restore and verify succeed', async () => {
    const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-cut-'));
    try {
      const db = path.join(work, 'db');
      const spec = {
        tables: [table(7, 3 * MiB + 777), table(9, 200_000)],
        wals: [{ number: 4, data: fakeWal(10) }],
        manifestNumber: 5,
        optionsNumber: 6,
        logNumber: 4,
        lastSequence: 10,
      };
      await writeFakeDb(db, spec);
      const prefix = uniquePrefix('cut');
      const { proxy, env } = await proxied([], { prefix, readPartSize: MiB, readConcurrency: 3 });
      const e = await BackupEngine.open({ env, lock: false });
      const b = await e.createBackup(db);
      const isRangedGet = (r: { method: string; headers: Record<string, unknown> }) => r.method === 'GET' && typeof r.headers.range === 'string';
      // Three ranges cut after 300,000 bytes: each is asked again from where it stopped.
      proxy.addRule({ match: isRangedGet, action: { kind: 'cutResponse', afterBytes: 300_000 }, times: 3 });
      const before = proxy.log.length;
      const out = path.join(work, 'restored');
      await e.restore({ dbDir: out });
      assert.equal(proxy.faultsApplied(), 3);
      for (const t of spec.tables) {
        const name = `${String(t.number).padStart(6, '0')}.sst`;
        assert.ok((await fsp.readFile(path.join(out, name))).equals(t.data), name);
      }
      // Which ranges are cut depends on timing, and so does how much of the 300,000 bytes sent
      // before the cut reaches the client (a reset can drop what it has not read yet): a
      // resumed range starts inside one asked for before, at most 300,000 bytes after its start.
      const starts = proxy.log.slice(before).filter(isRangedGet).map((r) => Number(/^bytes=(\d+)-/.exec(String(r.headers.range))![1]));
      const resumed = starts.filter((s, k) => starts.slice(0, k).some((e) => s > e && s - e <= 300_000));
      assert.ok(resumed.length >= 1, `a range was asked for again from where it was cut, not from its start: ${starts.join(', ')}`);
      proxy.addRule({ match: isRangedGet, action: { kind: 'cutResponse', afterBytes: 100_000 }, times: 2 });
      assert.deepEqual((await e.verifyBackup(b.id, { checksum: true })).problems, []);
      // A range that keeps failing: the restore fails as IOError, leaves no CURRENT.
      proxy.addRule({ match: isRangedGet, action: { kind: 'cutResponse', afterBytes: 1000 }, times: 1000 });
      const out2 = path.join(work, 'restored2');
      await assert.rejects(e.restore({ dbDir: out2 }), assertCairn('IOError'));
      assert.deepEqual((await fsp.readdir(out2)).filter((n) => n === 'CURRENT' || n.endsWith('.tmp')), []);
      proxy.clearRules();
      await e.close();
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
}
