// GCS-specific behaviour against a real fake-gcs-server (no mocked client), with a fault-injecting
// proxy in front of it for corrupted transfers and 503s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer, type GcsServer } from '../support/gcs-server.ts';
import { startGcsFaultProxy, match, type GcsFaultProxy } from '../support/gcs-fault-proxy.ts';
import { chunked, listAll, readAll } from '../support/env-conformance.ts';
import { GcsEnv, gcsOptionsFromEnv, openGcsEnv, type GcsEnvOptions } from '../../providers/gcs/index.ts';
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
let seq = 0;

describe('gcs provider on fake-gcs-server', { skip }, () => {
  let s: GcsServer;
  let proxy: GcsFaultProxy;
  let raw: Storage;

  before(async () => {
    s = server!;
    proxy = await startGcsFaultProxy(s.endpoint);
    raw = new Storage({ apiEndpoint: s.endpoint, projectId: s.projectId });
  });
  after(async () => {
    await proxy?.stop();
  });

  /** A fresh prefix; through the fault proxy unless direct. */
  async function open(opts: GcsEnvOptions & { direct?: boolean } = {}): Promise<{ env: GcsEnv; prefix: string }> {
    const prefix = `t${++seq}`;
    const env = (await openGcsEnv(new URL(`gs://${s.bucket}/${prefix}`), {
      apiEndpoint: opts.direct ? s.endpoint : proxy.endpoint,
      projectId: s.projectId,
      resumableThreshold: MiB,
      chunkSize: 256 * 1024,
      retry: { maxRetries: 3, maxRetryDelay: 1 },
      ...opts,
    })) as GcsEnv;
    proxy.clearRules();
    return { env, prefix };
  }

  async function rawCrc(key: string): Promise<string | undefined> {
    const [md] = await raw.bucket(s.bucket).file(key).getMetadata();
    return md.crc32c;
  }

  async function rawExists(key: string): Promise<boolean> {
    const [e] = await raw.bucket(s.bucket).file(key).exists();
    return e;
  }

  it('parses gs:// URLs', () => {
    const parse = (u: string) => {
      const env = new GcsEnv(u, { apiEndpoint: s.endpoint });
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
      assert.ok(proxy.log.some((r) => match.simpleUpload(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/small.sst`))));
      assert.ok(proxy.log.some((r) => match.resumableStart(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/large.sst`))));
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
    await raw.bucket(s.bucket).file(`${prefix}/shared_checksum/000010.sst`).save(tampered, { resumable: false });
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
      await raw.bucket(s.bucket).file(`${prefix}/${sst.name}`).save(bytes, { resumable: false });
      const r = await engine.verifyBackup(id, { serverChecksum: true });
      assert.deepEqual(r.problems.map((p) => [p.file, p.code]), [[sst.name, 'Corruption']]);
      assert.equal(perFile, 0);
    } finally {
      await rm(db, { recursive: true, force: true });
    }
  });

  it('a small upload flipped in flight is rejected by the server (declared crc32c) and never published', async () => {
    const { env, prefix } = await open();
    proxy.addRule({ match: match.simpleUpload, action: { kind: 'flipRequest', at: 20_000 } });
    const data = randomBytes(100_000);
    await assert.rejects(env.write('shared_checksum/flip-small.sst', chunked(data)), (e) => isCairnError(e, 'Corruption'));
    assert.equal(proxy.log.filter((r) => r.fault === 'flipRequest').length, 1);
    assert.equal(proxy.log.find((r) => r.fault === 'flipRequest')?.status, 400);
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-small.sst`), false);
  });

  it('a large upload with expectedCrc32c flipped in flight is rejected by the server before it is visible', async () => {
    // One chunk: fake-gcs-server checks the crc32c declared at session start only when the upload
    // completes in the request that carried the first bytes (see docs/gcs.md).
    const { env, prefix } = await open({ chunkSize: 4 * MiB });
    proxy.addRule({ match: match.resumableChunk, action: { kind: 'flipRequest', at: MiB + 3 } });
    const data = randomBytes(3 * MiB);
    await assert.rejects(env.write('shared_checksum/flip-large.sst', chunked(data), { expectedCrc32c: crc32c(data) }), (e) => isCairnError(e, 'Corruption'));
    assert.equal(proxy.log.find((r) => r.fault === 'flipRequest')?.status, 400);
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-large.sst`), false);
  });

  it('a large upload without expectedCrc32c flipped in flight: stored crc32c differs, object deleted, Corruption', async () => {
    const { env, prefix } = await open();
    proxy.addRule({ match: match.resumableChunk, action: { kind: 'flipRequest', at: 1000 } });
    const data = randomBytes(3 * MiB);
    await assert.rejects(env.write('shared_checksum/flip-nocrc.sst', chunked(data)), (e) => isCairnError(e, 'Corruption'));
    assert.equal(await rawExists(`${prefix}/shared_checksum/flip-nocrc.sst`), false);
  });

  it('the request that completes a resumable upload carries the whole object\'s crc32c (X-Goog-Hash), the others none', async () => {
    const { env, prefix } = await open();
    const data = randomBytes(MiB + 1000);
    await env.write('shared_checksum/hashed.sst', chunked(data, 100_000));
    const chunks = proxy.log.filter((r) => match.resumableChunk(r) && r.url.includes(encodeURIComponent(`${prefix}/shared_checksum/hashed.sst`)));
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
      const from = proxy.log.length;
      proxy.addRule({ match: match.chunkAt(512 * 1024), action });
      const data = randomBytes(MiB + 1000);
      assert.deepEqual(await env.write('shared_checksum/resent.sst', chunked(data, 100_000)), { size: data.length, crc32c: crc32c(data) });
      const log = proxy.log.slice(from);
      assert.equal(log.filter((r) => r.fault).length, 1);
      assert.equal(log.find(match.statusQuery)?.status, 308, 'the session was asked where it stands');
      assert.equal(log.filter(match.chunkAt(512 * 1024)).length, 2, 'the failed chunk was sent again');
      assert.ok((await readAll(env, 'shared_checksum/resent.sst')).equals(data));
      assert.equal(await rawCrc(`${prefix}/shared_checksum/resent.sst`), crc32cToBase64(crc32c(data)));
    });
  }

  it('the last chunk\'s lost answer: the session reports the object complete, the write succeeds once', async () => {
    const { env, prefix } = await open();
    const from = proxy.log.length;
    proxy.addRule({ match: match.lastChunk, action: { kind: 'dropResponse' } });
    const data = randomBytes(MiB + 1000);
    assert.deepEqual(await env.write('shared_checksum/lost.sst', chunked(data, 100_000), { createOnly: true }), { size: data.length, crc32c: crc32c(data) });
    const log = proxy.log.slice(from);
    assert.equal(log.filter((r) => r.fault === 'dropResponse').length, 1);
    assert.equal(log.find(match.statusQuery)?.status, 200);
    assert.equal(await rawCrc(`${prefix}/shared_checksum/lost.sst`), crc32cToBase64(crc32c(data)));
  });

  it('refuses a chunkSize that is not a positive multiple of 256 KiB, naming it', async () => {
    for (const chunkSize of [0, 100_000]) {
      await assert.rejects(open({ chunkSize }), (e) => isCairnError(e, 'InvalidArgument') && /chunkSize/.test((e as Error).message), String(chunkSize));
    }
  });

  it('a download flipped in flight fails a whole-object read with Corruption', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const data = randomBytes(200_000);
    await env.write('shared_checksum/rd.sst', chunked(data));
    proxy.addRule({ match: match.download, action: { kind: 'flipResponse', at: 150_000 } });
    await assert.rejects(readAll(env, 'shared_checksum/rd.sst'), (e) => isCairnError(e, 'Corruption'));
    // Parallel ranged reads check the whole object against its crc32c too.
    const { env: penv } = await open({ readConcurrency: 3, readPartSize: 256 * 1024 });
    const big = randomBytes(2 * MiB);
    await penv.write('shared_checksum/prd.sst', chunked(big));
    proxy.addRule({ match: match.download, action: { kind: 'flipResponse', at: 10 } });
    await assert.rejects(readAll(penv, 'shared_checksum/prd.sst'), (e) => isCairnError(e, 'Corruption'));
    assert.equal(crc32c(await readAll(penv, 'shared_checksum/prd.sst')), crc32c(big));
  });

  it('retries 503 responses (stat, list, small upload, resumable start, download, delete)', async () => {
    const { env } = await open();
    const data = randomBytes(10_000);
    const big = randomBytes(2 * MiB);
    const rules = [match.metadata, match.list, match.simpleUpload, match.resumableStart, match.download, match.delete];
    const from = proxy.log.length;
    for (const m of rules) proxy.addRule({ match: m, action: { kind: 'status', status: 503 }, times: 1 });
    await env.write('r/small', chunked(data)); // stat (503, retried) + simple upload (503, retried)
    await env.write('r/big', chunked(big)); // resumable start (503, retried)
    assert.deepEqual(await listAll(env, 'r/'), new Map([['r/small', data.length], ['r/big', big.length]]));
    assert.ok((await readAll(env, 'r/small')).equals(data));
    await env.delete(['r/small']);
    assert.deepEqual(await listAll(env, 'r/'), new Map([['r/big', big.length]]));
    const injected = proxy.log.slice(from).filter((r) => r.fault === 'status').length;
    assert.equal(injected, rules.length, `every rule fired once: ${JSON.stringify(proxy.log.slice(from).filter((r) => r.fault).map((r) => `${r.method} ${r.url}`))}`);
  });

  it('retries a connection reset (download, small upload); a persistent one is IOError', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const from = proxy.log.length;
    proxy.addRule({ match: match.simpleUpload, action: { kind: 'reset' } });
    await env.write('c/x', chunked(Buffer.from('reset me')));
    proxy.addRule({ match: match.download, action: { kind: 'reset' } });
    assert.equal((await readAll(env, 'c/x')).toString(), 'reset me');
    assert.equal(proxy.log.slice(from).filter((r) => r.fault === 'reset').length, 2);
    const { env: once } = await open({ readConcurrency: 1, retry: { maxRetries: 1, maxRetryDelay: 1 } });
    await once.write('c/y', chunked(Buffer.from('y')));
    proxy.addRule({ match: match.download, action: { kind: 'reset' }, times: 10 });
    await assert.rejects(readAll(once, 'c/y'), (e) => isCairnError(e, 'IOError') && /c\/y/.test((e as Error).message));
  });

  it('a createOnly upload whose response was lost is retried and recognised as our own write', async () => {
    const { env } = await open();
    proxy.addRule({ match: match.simpleUpload, action: { kind: 'dropResponse' } });
    const res = await env.write('meta/lost', chunked(Buffer.from('backup meta')), { createOnly: true });
    assert.deepEqual(res, { size: 11, crc32c: crc32c(Buffer.from('backup meta')) });
    const ups = proxy.log.filter(match.simpleUpload);
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
      const [md] = await raw.bucket(s.bucket).file(`${prefix}/sc/${n}`).getMetadata();
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
      const [md] = await raw.bucket(s.bucket).file(`${viaVar.prefix}/sc/${n}`).getMetadata();
      assert.equal(md.storageClass, 'COLDLINE', n);
    }
  });

  it('does not retry forever: persistent 503 becomes IOError', async () => {
    const { env } = await open({ retry: { maxRetries: 1, maxRetryDelay: 1 } });
    proxy.addRule({ match: match.metadata, action: { kind: 'status', status: 503 }, times: 100 });
    await assert.rejects(env.stat('x'), (e) => isCairnError(e, 'IOError'));
  });

  it('401/403 map to PermissionDenied', async () => {
    const { env } = await open();
    proxy.addRule({ match: match.metadata, action: { kind: 'status', status: 403, message: 'caller does not have storage.objects.get access' } });
    await assert.rejects(env.stat('x'), (e) => isCairnError(e, 'PermissionDenied') && /gs:\/\//.test((e as Error).message));
    proxy.addRule({ match: match.simpleUpload, action: { kind: 'status', status: 401 } });
    await assert.rejects(env.write('y', chunked(Buffer.from('y'))), (e) => isCairnError(e, 'PermissionDenied'));
  });

  it('a missing bucket is NotFound naming the bucket', async () => {
    await assert.rejects(
      openGcsEnv(new URL('gs://no-such-bucket-cairn/p'), { apiEndpoint: s.endpoint }),
      (e) => isCairnError(e, 'NotFound') && /no-such-bucket-cairn does not exist/.test((e as Error).message),
    );
    const env = await openGcsEnv(new URL('gs://no-such-bucket-cairn/p'), { apiEndpoint: s.endpoint, verifyBucket: false });
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
    await raw.bucket(s.bucket).file(`${prefix}x/private/0/CURRENT`).save('no');
    await raw.bucket(s.bucket).file(`${prefix}/folder-placeholder/`).save('');
    const before = proxy.log.length;
    assert.deepEqual(await listAll(env, 'private/'), want);
    const pages = proxy.log.slice(before).filter(match.list);
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
    const ups = proxy.log.filter((r) => match.simpleUpload(r) && r.url.includes(encodeURIComponent(`${prefix}/m/1`)));
    assert.equal(ups.length, 2);
    assert.match(ups[0].url, /ifGenerationMatch=0/);
    assert.match(ups[1].url, /ifGenerationMatch=[1-9]/);
    // A 503 on the replace is retried (conditional, hence idempotent).
    proxy.addRule({ match: match.simpleUpload, action: { kind: 'status', status: 503 } });
    await env.write('m/1', chunked(Buffer.from('three')));
    assert.equal((await readAll(env, 'm/1')).toString(), 'three');
  });

  it('requestCounts agree with the requests the server received, by verb', async () => {
    const { env } = await open({ readConcurrency: 1 });
    const verbOf = (r: Parameters<typeof match.list>[0]) =>
      match.simpleUpload(r) || match.resumableStart(r) ? 'POST' : match.resumableChunk(r) ? 'PUT' : match.download(r) ? 'GET' : match.metadata(r) ? 'HEAD' : match.list(r) ? 'LIST' : match.delete(r) ? 'DELETE' : `other ${r.method} ${r.url}`;
    const before = proxy.log.length;
    const counts0 = env.requestCounts();
    await env.write('n/small', chunked(randomBytes(1000)));
    await env.write('n/large', chunked(randomBytes(MiB + 300_000)), { size: MiB + 300_000 });
    await env.stat('n/small');
    await listAll(env, 'n/');
    await readAll(env, 'n/large');
    await env.delete(['n/small', 'n/large']);
    const seen: Record<string, number> = {};
    for (const r of proxy.log.slice(before)) seen[verbOf(r)] = (seen[verbOf(r)] ?? 0) + 1;
    const counted: Record<string, number> = {};
    for (const [verb, n] of Object.entries(env.requestCounts())) if (n !== (counts0[verb] ?? 0)) counted[verb] = n - (counts0[verb] ?? 0);
    assert.deepEqual(counted, seen);
    // MiB + 300,000 bytes in resumable chunks of 256 KiB.
    assert.equal(seen.PUT, 6);
  });

  it('an empty bucket prefix maps names to object names directly', async () => {
    const bucket = await s.createBucket();
    const env: BackupEnv = await openGcsEnv(new URL(`gs://${bucket}`), { apiEndpoint: s.endpoint });
    await env.write('meta/1', chunked(Buffer.from('x')));
    const [files] = await raw.bucket(bucket).getFiles();
    assert.deepEqual(files.map((f) => f.name), ['meta/1']);
    assert.equal(env.url, `gs://${bucket}`);
  });
});
