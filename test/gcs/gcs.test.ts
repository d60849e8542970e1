// GCS-specific behaviour against a real fake-gcs-server (no mocked client), with a fault-injecting
// proxy in front of it for corrupted transfers and 503s.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer } from '../support/gcs-server.ts';
import { match } from '../support/gcs-fault-proxy.ts';
import { useGcsHarness } from '../support/gcs-harness.ts';
import { chunked, listAll, readAll } from '../support/env-conformance.ts';
import { GcsEnv, gcsOptionsFromEnv, openGcsEnv } from '../../providers/gcs/index.ts';
import { BucketLocation } from '../../providers/object-store/location.ts';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import type { BackupEnv, FileInfo } from '../../src/env.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { fakeWal, table, writeFakeDb } from '../support/fake-db.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const server = await startGcsServer();
const skip = requireOrSkip(server !== undefined, 'fake-gcs-server (run scripts/install-gcs-server.sh)');
after(async () => {
  await server?.stop();
});

const MiB = 1 << 20;

describe('gcs provider on fake-gcs-server', { skip }, () => {
  const h = useGcsHarness(() => server!);
  const { open, rawCrc, rawExists } = h;

  it('parses gs:// URLs', () => {
    const parse = (u: string) => {
      const env = new GcsEnv(u, { apiEndpoint: h.s.endpoint });
      return { bucket: env.bucket, prefix: env.prefix, url: env.url };
    };
    assert.deepEqual(parse('gs://my-bucket'), { bucket: 'my-bucket', prefix: '', url: 'gs://my-bucket' });
    assert.deepEqual(parse('gs://my-bucket/a/b/'), { bucket: 'my-bucket', prefix: 'a/b/', url: 'gs://my-bucket/a/b' });
    assert.equal(BucketLocation.parse('gs://my-bucket/a%20b', 'gs').key('c'), 'a b/c');
    for (const bad of ['s3://x/y', 'gs://bucket/a%2F..%2F..%2Fc', 'gs://UPPER/x', 'gs://bucket/x?q=1']) {
      assert.throws(() => parse(bad), (e) => isCairnError(e, 'InvalidArgument'), bad);
    }
  });

  for (const chunkSize of [256 * 1024, 4 * MiB]) {
    it(`small and large writes store crc32c(file), under <prefix>/<name> (chunkSize ${chunkSize})`, async () => {
      const { env, prefix } = await open({ chunkSize });
      const small = randomBytes(100_000);
      const large = randomBytes(5 * MiB + 17);
      const rs = await env.write('shared_checksum/small.sst', chunked(small));
      const rl = await env.write('shared_checksum/large.sst', chunked(large, 100_000), { size: large.length });
      assert.deepEqual(rs, { size: small.length, crc32c: crc32c(small) });
      assert.deepEqual(rl, { size: large.length, crc32c: crc32c(large) });
      assert.equal(await rawCrc(`${prefix}/shared_checksum/small.sst`), crc32cToBase64(crc32c(small)));
      assert.equal(await rawCrc(`${prefix}/shared_checksum/large.sst`), crc32cToBase64(crc32c(large)));
      assert.deepEqual(await env.serverChecksum('shared_checksum/large.sst'), { size: large.length, crc32c: crc32c(large) });
      // The small one went as one multipart request, the large one as a resumable upload.
      assert.ok(h.proxy.log.some((r) => match.simpleUpload(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/small.sst`))));
      assert.ok(h.proxy.log.some((r) => match.resumableStart(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/large.sst`))));
      assert.equal(crc32c(await readAll(env, 'shared_checksum/large.sst')), crc32c(large));
    });
  }

  it('createOnly twice: AlreadyExists, small and large, the first content kept', async () => {
    const { env } = await open();
    for (const size of [1000, 2 * MiB]) {
      const a = randomBytes(size);
      await env.write(`meta/${size}`, chunked(a), { createOnly: true });
      await assert.rejects(env.write(`meta/${size}`, chunked(randomBytes(size)), { createOnly: true }), (e) => isCairnError(e, 'AlreadyExists'));
      assert.equal(crc32c(await readAll(env, `meta/${size}`)), crc32c(a));
    }
  });

  it('expectedCrc32c mismatch: Corruption and no object, small and large, nothing sent for the last chunk', async () => {
    const { env, prefix } = await open();
    for (const size of [5000, 3 * MiB]) {
      const data = randomBytes(size);
      await assert.rejects(
        env.write(`shared_checksum/bad${size}.sst`, chunked(data), { expectedCrc32c: (crc32c(data) ^ 0x10) >>> 0 }),
        (e) => isCairnError(e, 'Corruption'),
      );
      assert.equal(await env.stat(`shared_checksum/bad${size}.sst`), undefined);
      assert.equal(await rawExists(`${prefix}/shared_checksum/bad${size}.sst`), false);
    }
    // A replace that fails this way keeps the old content.
    const old = randomBytes(2 * MiB);
    await env.write('shared_checksum/keep.sst', chunked(old));
    const neu = randomBytes(2 * MiB);
    await assert.rejects(env.write('shared_checksum/keep.sst', chunked(neu), { expectedCrc32c: (crc32c(neu) + 1) >>> 0 }), (e) => isCairnError(e, 'Corruption'));
    assert.equal(crc32c(await readAll(env, 'shared_checksum/keep.sst')), crc32c(old));
  });

  it('wrong size declared: Corruption, nothing published', async () => {
    const { env } = await open();
    const data = randomBytes(2 * MiB);
    await assert.rejects(env.write('x/size', chunked(data), { size: data.length + 1 }), (e) => isCairnError(e, 'Corruption'));
    assert.equal(await env.stat('x/size'), undefined);
  });

  it('an object changed behind cairn\'s back: serverChecksum differs, and so does what is read', async () => {
    const { env, prefix } = await open({ direct: true });
    const data = randomBytes(50_000);
    const { crc32c: written } = await env.write('shared_checksum/000010.sst', chunked(data));
    const tampered = Buffer.from(data);
    tampered[25_000] ^= 1;
    await h.raw.bucket(h.s.bucket).file(`${prefix}/shared_checksum/000010.sst`).save(tampered, { resumable: false });
    const server = await env.serverChecksum('shared_checksum/000010.sst');
    assert.notEqual(server.crc32c, written);
    assert.deepEqual(server, { size: tampered.length, crc32c: crc32c(tampered) });
    const back = await readAll(env, 'shared_checksum/000010.sst');
    assert.notEqual(crc32c(back), written);
  });

  it('listings carry each object\'s crc32c, so server-checksum verify makes no request per file', async () => {
    const { env, prefix } = await open({ direct: true });
    const a = randomBytes(3000);
    const b = randomBytes(70_000);
    await env.write('x/a', chunked(a));
    await env.write('x/b', chunked(b));
    const listed: FileInfo[] = [];
    for await (const f of env.list('x/')) listed.push(f);
    listed.sort((p, q) => p.name.localeCompare(q.name));
    // (And the time each was written, within a minute of this host's clock: gc's grace period uses it.)
    for (const f of listed) assert.ok(Math.abs(f.modified! - Date.now()) < 60_000, `${f.name} modified ${f.modified}`);
    assert.deepEqual(listed.map(({ modified: _, ...f }) => f), [{ name: 'x/a', size: a.length, crc32c: crc32c(a) }, { name: 'x/b', size: b.length, crc32c: crc32c(b) }]);

    const db = await mkdtemp(join(tmpdir(), 'cairn-gcs-db-'));
    try {
      await writeFakeDb(db, { tables: [table(7, 200_000), table(9, 70_000)], wals: [{ number: 4, data: fakeWal(10) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 10 });
      const engine = await BackupEngine.open({ env });
      const { id } = await engine.createBackup(db);
      let perFile = 0;
      const original = env.serverChecksum.bind(env);
      env.serverChecksum = (...args) => { perFile++; return original(...args); };
      assert.deepEqual((await engine.verifyBackup(id, { serverChecksum: true })).problems, []);
      // changed behind cairn's back, same size: the listing's crc32c tells
      const sst = engine.getBackupInfo(id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000009_'))!;
      const bytes = await readAll(env, sst.name);
      bytes[100] ^= 1;
      await h.raw.bucket(h.s.bucket).file(`${prefix}/${sst.name}`).save(bytes, { resumable: false });
      const r = await engine.verifyBackup(id, { serverChecksum: true });
      assert.deepEqual(r.problems.map((p) => [p.file, p.code]), [[sst.name, 'Corruption']]);
      assert.equal(perFile, 0);
    } finally {
      await rm(db, { recursive: true, force: true });
    }
  });

  it('a download flipped in flight fails a whole-object read with Corruption', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const data = randomBytes(200_000);
    await env.write('shared_checksum/rd.sst', chunked(data));
    h.proxy.addRule({ match: match.download, action: { kind: 'flipResponse', at: 150_000 } });
    await assert.rejects(readAll(env, 'shared_checksum/rd.sst'), (e) => isCairnError(e, 'Corruption'));
    // Parallel ranged reads check the whole object against its crc32c too.
    const { env: penv } = await open({ readConcurrency: 3, readPartSize: 256 * 1024 });
    const big = randomBytes(2 * MiB);
    await penv.write('shared_checksum/prd.sst', chunked(big));
    h.proxy.addRule({ match: match.download, action: { kind: 'flipResponse', at: 10 } });
    await assert.rejects(readAll(penv, 'shared_checksum/prd.sst'), (e) => isCairnError(e, 'Corruption'));
    assert.equal(crc32c(await readAll(penv, 'shared_checksum/prd.sst')), crc32c(big));
  });

  it('retries 503 responses (stat, list, small upload, resumable start, download, delete)', async () => {
    const { env } = await open();
    const data = randomBytes(10_000);
    const big = randomBytes(2 * MiB);
    const rules = [match.metadata, match.list, match.simpleUpload, match.resumableStart, match.download, match.delete];
    const from = h.proxy.log.length;
    for (const m of rules) h.proxy.addRule({ match: m, action: { kind: 'status', status: 503 }, times: 1 });
    await env.write('r/small', chunked(data)); // stat (503, retried) + simple upload (503, retried)
    await env.write('r/big', chunked(big)); // resumable start (503, retried)
    assert.deepEqual(await listAll(env, 'r/'), new Map([['r/small', data.length], ['r/big', big.length]]));
    assert.ok((await readAll(env, 'r/small')).equals(data));
    await env.delete(['r/small']);
    assert.deepEqual(await listAll(env, 'r/'), new Map([['r/big', big.length]]));
    const injected = h.proxy.log.slice(from).filter((r) => r.fault === 'status').length;
    assert.equal(injected, rules.length, `every rule fired once: ${JSON.stringify(h.proxy.log.slice(from).filter((r) => r.fault).map((r) => `${r.method} ${r.url}`))}`);
  });

  it('retries a connection reset (download, small upload); a persistent one is IOError', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const from = h.proxy.log.length;
    h.proxy.addRule({ match: match.simpleUpload, action: { kind: 'reset' } });
    await env.write('c/x', chunked(Buffer.from('reset me')));
    h.proxy.addRule({ match: match.download, action: { kind: 'reset' } });
    assert.equal((await readAll(env, 'c/x')).toString(), 'reset me');
    assert.equal(h.proxy.log.slice(from).filter((r) => r.fault === 'reset').length, 2);
    const { env: once } = await open({ readConcurrency: 1, retry: { maxRetries: 1, maxRetryDelay: 1 } });
    await once.write('c/y', chunked(Buffer.from('y')));
    h.proxy.addRule({ match: match.download, action: { kind: 'reset' }, times: 10 });
    await assert.rejects(readAll(once, 'c/y'), (e) => isCairnError(e, 'IOError') && /c\/y/.test((e as Error).message));
  });

  it('a download whose connection goes silent is dropped after socketTimeout and retried', { timeout: 60_000 }, async () => {
    const { env } = await open({ readConcurrency: 1, socketTimeout: 1000 });
    const data = randomBytes(300_000);
    await env.write('st/x', chunked(data));
    const from = h.proxy.log.length;
    h.proxy.addRule({ match: match.download, action: { kind: 'stall' } });
    assert.ok((await readAll(env, 'st/x')).equals(data));
    assert.equal(h.proxy.log.slice(from).filter((r) => r.fault === 'stall').length, 1);
    await assert.rejects(open({ socketTimeout: 0 }), (e) => isCairnError(e, 'InvalidArgument') && /socketTimeout/.test((e as Error).message));
  });

  it('a createOnly upload whose response was lost is retried and recognised as our own write', async () => {
    const { env } = await open();
    h.proxy.addRule({ match: match.simpleUpload, action: { kind: 'dropResponse' } });
    const res = await env.write('meta/lost', chunked(Buffer.from('backup meta')), { createOnly: true });
    assert.deepEqual(res, { size: 11, crc32c: crc32c(Buffer.from('backup meta')) });
    const ups = h.proxy.log.filter(match.simpleUpload);
    assert.equal(ups.at(-2)?.fault, 'dropResponse');
    assert.equal(ups.at(-1)?.status, 412);
    // Someone else's object under the name is still AlreadyExists.
    await assert.rejects(env.write('meta/lost', chunked(Buffer.from('other meta!')), { createOnly: true }), (e) => isCairnError(e, 'AlreadyExists'));
  });

  it('new objects get the configured storage class', async () => {
    const { env, prefix } = await open({ storageClass: 'NEARLINE' });
    await env.write('sc/small', chunked(Buffer.from('s')));
    await env.write('sc/large', chunked(randomBytes(2 * MiB)));
    for (const n of ['small', 'large']) {
      const [md] = await h.raw.bucket(h.s.bucket).file(`${prefix}/sc/${n}`).getMetadata();
      assert.equal(md.storageClass, 'NEARLINE', n);
    }
    // The CLI's way: CAIRN_GCS_STORAGE_CLASS (an option given in code wins)
    process.env.CAIRN_GCS_STORAGE_CLASS = 'COLDLINE';
    let viaVar: Awaited<ReturnType<typeof open>>;
    try {
      viaVar = await open();
      assert.throws(() => gcsOptionsFromEnv({ CAIRN_GCS_STORAGE_CLASS: 'cold line' }), (e) => isCairnError(e, 'InvalidArgument') && /CAIRN_GCS_STORAGE_CLASS/.test((e as Error).message));
      assert.deepEqual(gcsOptionsFromEnv({ CAIRN_GCS_KMS_KEY_NAME: 'projects/p/locations/l/keyRings/r/cryptoKeys/k', CAIRN_GCS_USER_PROJECT: 'billing' }), { kmsKeyName: 'projects/p/locations/l/keyRings/r/cryptoKeys/k', userProject: 'billing' });
    } finally {
      delete process.env.CAIRN_GCS_STORAGE_CLASS;
    }
    await viaVar.env.write('sc/small', chunked(Buffer.from('s')));
    await viaVar.env.write('sc/large', chunked(randomBytes(2 * MiB)));
    for (const n of ['small', 'large']) {
      const [md] = await h.raw.bucket(h.s.bucket).file(`${viaVar.prefix}/sc/${n}`).getMetadata();
      assert.equal(md.storageClass, 'COLDLINE', n);
    }
  });

  it('does not retry forever: persistent 503 becomes IOError', async () => {
    const { env } = await open({ retry: { maxRetries: 1, maxRetryDelay: 1 } });
    h.proxy.addRule({ match: match.metadata, action: { kind: 'status', status: 503 }, times: 100 });
    await assert.rejects(env.stat('x'), (e) => isCairnError(e, 'IOError'));
  });

  it('401/403 map to PermissionDenied', async () => {
    const { env, prefix } = await open();
    h.proxy.addRule({ match: match.metadata, action: { kind: 'status', status: 403, message: 'caller does not have storage.objects.get access' } });
    await assert.rejects(env.stat('x'), (e) => isCairnError(e, 'PermissionDenied') && /gs:\/\//.test((e as Error).message));
    h.proxy.addRule({ match: match.simpleUpload, action: { kind: 'status', status: 401 } });
    await assert.rejects(env.write('y', chunked(Buffer.from('y'))), (e) => isCairnError(e, 'PermissionDenied'));
    // cairn's own requests (http.ts): a resumable session's start and a download.
    h.proxy.addRule({ match: match.resumableStart, action: { kind: 'status', status: 403, message: 'caller does not have storage.objects.create access' } });
    await assert.rejects(env.write('big', chunked(randomBytes(2 * MiB))), (e) => isCairnError(e, 'PermissionDenied') && /gs:\/\/.*big/.test((e as Error).message));
    assert.equal(await rawExists(`${prefix}/big`), false);
    await env.write('z', chunked(Buffer.from('zz')));
    h.proxy.addRule({ match: match.download, action: { kind: 'status', status: 403 } });
    await assert.rejects(readAll(env, 'z'), (e) => isCairnError(e, 'PermissionDenied') && /gs:\/\/.*z/.test((e as Error).message));
  });

  it('a missing bucket is NotFound naming the bucket', async () => {
    await assert.rejects(
      openGcsEnv(new URL('gs://no-such-bucket-cairn/p'), { apiEndpoint: h.s.endpoint }),
      (e) => isCairnError(e, 'NotFound') && /no-such-bucket-cairn does not exist/.test((e as Error).message),
    );
    const env = await openGcsEnv(new URL('gs://no-such-bucket-cairn/p'), { apiEndpoint: h.s.endpoint, verifyBucket: false });
    await assert.rejects(listAll(env, ''), (e) => isCairnError(e, 'NotFound') && /bucket no-such-bucket-cairn/.test((e as Error).message));
    await assert.rejects(env.write('a', chunked(Buffer.from('a'))), (e) => isCairnError(e, 'NotFound') && /bucket no-such-bucket-cairn/.test((e as Error).message));
    await assert.rejects(env.write('b', chunked(randomBytes(2 * MiB)), { createOnly: true }), (e) => isCairnError(e, 'NotFound') && /no-such-bucket-cairn/.test((e as Error).message));
  });

  it('lists across pages, names relative to the prefix', async () => {
    const { env, prefix } = await open({ listPageSize: 3 });
    const want = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      await env.write(`private/${i}/CURRENT`, chunked(Buffer.alloc(i + 1, i)));
      want.set(`private/${i}/CURRENT`, i + 1);
    }
    // Outside the prefix, and a look-alike prefix: neither listed.
    await h.raw.bucket(h.s.bucket).file(`${prefix}x/private/0/CURRENT`).save('no');
    await h.raw.bucket(h.s.bucket).file(`${prefix}/folder-placeholder/`).save('');
    const before = h.proxy.log.length;
    assert.deepEqual(await listAll(env, 'private/'), want);
    const pages = h.proxy.log.slice(before).filter(match.list);
    assert.ok(pages.length >= 4, `${pages.length} list requests`);
    assert.ok(pages.every((r) => /maxResults=3/.test(r.url)));
    assert.deepEqual([...(await listAll(env, ''))].map(([n]) => n).sort(), [...want.keys()].sort());
  });

  it('ranged reads, single and parallel', async () => {
    for (const readConcurrency of [1, 4]) {
      const { env } = await open({ readConcurrency, readPartSize: 256 * 1024 });
      const data = randomBytes(3 * MiB + 5);
      await env.write('r/x', chunked(data));
      const cases: Array<[number, number | undefined]> = [[0, 10], [1, 1], [MiB - 3, 2 * MiB], [100, undefined], [data.length - 1, undefined], [data.length, undefined], [0, undefined], [5, data.length * 2]];
      for (const [offset, length] of cases) {
        const got = await readAll(env, 'r/x', { offset, length });
        const want = data.subarray(offset, length === undefined ? undefined : offset + length);
        assert.ok(got.equals(want), `offset ${offset} length ${length}: ${got.length} bytes, want ${want.length}`);
      }
      await assert.rejects(env.openRead('r/missing', { offset: 5, length: 2 }), (e) => isCairnError(e, 'NotFound'));
    }
  });

  it('an aborted read stops the stream', async () => {
    const { env } = await open({ readConcurrency: 1 });
    await env.write('r/big', chunked(randomBytes(2 * MiB)));
    const ac = new AbortController();
    const rs = await env.openRead('r/big', { signal: ac.signal });
    await assert.rejects(
      (async () => {
        for await (const _ of rs) ac.abort();
      })(),
      (e) => (e as Error).name === 'AbortError' || isCairnError(e, 'Aborted'),
    );
  });

  it('serverChecksum answers size and crc32c, NotFound for a missing object; nothing to clean up', async () => {
    const { env } = await open();
    const data = randomBytes(3 * MiB);
    await env.write('a/src', chunked(data));
    assert.deepEqual(await env.serverChecksum('a/src'), { size: data.length, crc32c: crc32c(data) });
    await assert.rejects(env.serverChecksum('a/none'), (e) => isCairnError(e, 'NotFound'));
    assert.equal(await env.cleanupIncomplete(), 0);
  });

  it('replace is conditional on the generation it saw and is retried by the library', async () => {
    const { env, prefix } = await open();
    await env.write('m/1', chunked(Buffer.from('one')));
    await env.write('m/1', chunked(Buffer.from('two')));
    const ups = h.proxy.log.filter((r) => match.simpleUpload(r) && r.url.includes(encodeURIComponent(`${prefix}/m/1`)));
    assert.equal(ups.length, 2);
    assert.match(ups[0].url, /ifGenerationMatch=0/);
    assert.match(ups[1].url, /ifGenerationMatch=[1-9]/);
    // A 503 on the replace is retried (conditional, hence idempotent).
    h.proxy.addRule({ match: match.simpleUpload, action: { kind: 'status', status: 503 } });
    await env.write('m/1', chunked(Buffer.from('three')));
    assert.equal((await readAll(env, 'm/1')).toString(), 'three');
  });

  it('requestCounts agree with the requests the server received, by verb', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const verbOf = (r: Parameters<typeof match.list>[0]) =>
      match.simpleUpload(r) || match.resumableStart(r) ? 'POST' : match.resumableChunk(r) ? 'PUT' : match.download(r) ? 'GET' : match.metadata(r) ? 'HEAD' : match.list(r) ? 'LIST' : match.delete(r) ? 'DELETE' : `other ${r.method} ${r.url}`;
    const before = h.proxy.log.length;
    const counts0 = env.requestCounts();
    await env.write('n/small', chunked(randomBytes(1000)));
    await env.write('n/large', chunked(randomBytes(MiB + 300_000)), { size: MiB + 300_000 });
    await env.stat('n/small');
    await listAll(env, 'n/');
    await readAll(env, 'n/large');
    await env.delete(['n/small', 'n/large']);
    const seen: Record<string, number> = {};
    for (const r of h.proxy.log.slice(before)) seen[verbOf(r)] = (seen[verbOf(r)] ?? 0) + 1;
    const counted: Record<string, number> = {};
    for (const [verb, n] of Object.entries(env.requestCounts())) if (n !== (counts0[verb] ?? 0)) counted[verb] = n - (counts0[verb] ?? 0);
    assert.deepEqual(counted, seen);
    // MiB + 300,000 bytes in resumable chunks of 256 KiB.
    assert.equal(seen.PUT, 6);
  });

  it('an empty bucket prefix maps names to object names directly', async () => {
    const bucket = await h.s.createBucket();
    const env: BackupEnv = await openGcsEnv(new URL(`gs://${bucket}`), { apiEndpoint: h.s.endpoint });
    await env.write('meta/1', chunked(Buffer.from('x')));
    const [files] = await h.raw.bucket(bucket).getFiles();
    assert.deepEqual(files.map((f) => f.name), ['meta/1']);
    assert.equal(env.url, `gs://${bucket}`);
  });
});
