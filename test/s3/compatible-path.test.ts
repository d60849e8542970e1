// The compatible write path (providers/s3/write-strategy.ts) end to end, against MinIO behind the
// fault proxy's compat mode: a store that returns no checksums and refuses If-None-Match. The
// probe must choose the MD5 path; backups, verify --server-checksum and restores must work, and a
// body corrupted in flight must be refused through Content-MD5 alone, publishing nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { S3Env, type S3EnvOptions } from '../../providers/s3/index.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError, type ErrorCode } from '../../src/errors.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3Server } from '../support/s3-servers.ts';
import { isPutObject, isUploadPart, startFaultProxy, type CompatMode, type FaultProxy, type FaultRule } from '../support/fault-proxy.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { runEnvConformance } from '../support/env-conformance.ts';
import { runEngineSuite } from '../support/engine-suite.ts';

const MiB = 1024 * 1024;
const COMPAT: CompatMode = { stripChecksums: true, rejectIfNoneMatch: true };
const isCode = (code: ErrorCode, text?: string) => (e: unknown) => isCairnError(e, code) && (text === undefined || e.message.includes(text));

describe('the compatible write path (MinIO behind a proxy that strips checksums and refuses If-None-Match)', { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (bash scripts/install-s3-servers.sh minio)') ?? false }, () => {
  let server: S3Server;
  let work: string;
  const proxies: FaultProxy[] = [];
  const envs: S3Env[] = [];
  before(async () => {
    server = (await startS3Server('minio'))!;
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-compat-'));
  });
  after(async () => {
    await Promise.all(envs.map((e) => e.close()));
    await Promise.all(proxies.map((p) => p.stop()));
    await server?.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  let n = 0;
  const envVia = async (o: S3EnvOptions & { compat?: CompatMode; rules?: FaultRule[]; prefix?: string } = {}) => {
    const { compat = COMPAT, rules = [], prefix = `compat-${++n}`, ...rest } = o;
    const proxy = await startFaultProxy({ target: server.endpoint, compat, rules, lifetimeMs: 900_000, maxRequests: 100_000 });
    proxies.push(proxy);
    const env = new S3Env(`s3://${server.bucket}/${prefix}`, {
      endpoint: proxy.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      partSize: 5 * MiB,
      maxAttempts: 2,
      ...rest,
    });
    envs.push(env);
    return { proxy, env };
  };
  const spec = (): FakeDbSpec => ({
    tables: [table(7, 11 * MiB + 321), table(9, 200_000)],
    wals: [{ number: 4, data: fakeWal(10) }],
    manifestNumber: 5,
    optionsNumber: 6,
    logNumber: 4,
    lastSequence: 10,
  });
  const sst = (t: { number: number }) => `${String(t.number).padStart(6, '0')}.sst`;

  it('the probe finds what the store lacks and chooses the MD5 path', async () => {
    const { env, proxy } = await envVia();
    assert.equal(env.writeStrategy.name, 'crc32c', 'before the probe');
    const r = await env.storeReport();
    assert.deepEqual(r.capabilities, {
      checksumHeaders: 'accepted',
      singleCrc32c: 'none',
      multipartCrc32c: 'none',
      ifNoneMatchPut: 'unsupported',
      ifNoneMatchComplete: 'unsupported',
      listUploadsByPrefix: 'exact-key',
      contentMd5Validated: true,
      etagIsMd5: { single: true, multipart: true },
    });
    assert.deepEqual(env.writeStrategy, {
      name: 'md5',
      sendCrc32c: true,
      fullObjectMultipart: false,
      contentMd5: true,
      ifNoneMatch: { put: false, complete: false },
      afterSingle: 'etag-md5',
      afterMultipart: 'etag-md5',
    });
    assert.equal(env.capabilities.atomicCreateOnly, false);
    assert.match(env.capabilities.serverChecksumGaps ?? '', /no full-object CRC32C for objects/);
    // The probe cleans up after itself.
    const left = [];
    for await (const f of env.list('')) left.push(f.name);
    assert.deepEqual(left, []);
    assert.ok(proxy.log.length <= 20, `the probe costs ${proxy.log.length} requests`);
  });

  it('without the proxy, on MinIO itself, auto keeps the CRC32C protocol and md5 adds Content-MD5', async () => {
    const direct = (checksum: 'auto' | 'md5') => {
      const env = new S3Env(`s3://${server.bucket}/direct-${++n}`, { endpoint: server.endpoint, region: server.region, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }, checksum });
      envs.push(env);
      return env;
    };
    const auto = direct('auto');
    await auto.prepare();
    assert.equal(auto.writeStrategy.name, 'crc32c');
    assert.equal(auto.capabilities.serverChecksumGaps, undefined);
    const md5 = direct('md5');
    await md5.prepare();
    assert.deepEqual({ ...md5.writeStrategy }, { name: 'md5', sendCrc32c: true, fullObjectMultipart: true, contentMd5: true, ifNoneMatch: { put: true, complete: true }, afterSingle: 'crc32c', afterMultipart: 'crc32c' });
  });

  it('backup, verify --server-checksum and restore work; every upload carries Content-MD5 and no If-None-Match', async () => {
    const db = path.join(work, 'db1');
    const s = spec();
    await writeFakeDb(db, s);
    const { env, proxy } = await envVia();
    const e = await BackupEngine.open({ env });
    try {
      const b = await e.createBackup(db);
      const uploads = proxy.log.filter((r) => isPutObject(r) || isUploadPart(r));
      assert.ok(uploads.some(isUploadPart), 'the 11 MiB table went as a multipart upload');
      for (const r of uploads) assert.equal(typeof r.headers['content-md5'], 'string', `${r.method} ${r.url} carries Content-MD5`);
      assert.deepEqual(proxy.log.filter((r) => r.headers['if-none-match'] !== undefined && r.fault !== 'compat').map((r) => r.url), [], 'no If-None-Match after the probe');

      const warnings: string[] = [];
      const [v] = await e.verifyBackups([b.id], { serverChecksum: true, onWarning: (m) => warnings.push(m) });
      assert.deepEqual(v!.problems, []);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /checks only that they exist with the right size, not their contents; `cairn verify --checksum`/);
      assert.deepEqual((await e.verifyBackup(b.id, { checksum: true })).problems, []);

      const out = path.join(work, 'restored1');
      await e.restore({ dbDir: out });
      for (const t of s.tables) assert.ok((await fsp.readFile(path.join(out, sst(t)))).equals(t.data), sst(t));
    } finally {
      await e.close();
    }
  });

  it('a store that refuses checksum headers too (as B2 documents): no x-amz-checksum-* at all, backup and restore work', async () => {
    const db = path.join(work, 'db-b2');
    const s = spec();
    await writeFakeDb(db, s);
    const { env, proxy } = await envVia({ compat: { ...COMPAT, rejectChecksumHeaders: true } });
    const r = await env.storeReport();
    assert.equal(r.capabilities.checksumHeaders, 'refused');
    assert.equal(r.strategy.sendCrc32c, false);
    const probeEnd = proxy.log.length;
    const e = await BackupEngine.open({ env });
    try {
      const b = await e.createBackup(db);
      const after = proxy.log.slice(probeEnd);
      assert.deepEqual(after.filter((q) => q.fault === 'compat').map((q) => `${q.method} ${q.url}`), [], 'nothing refused after the probe');
      assert.ok(after.every((q) => !Object.keys(q.headers).some((h) => h.startsWith('x-amz-checksum'))), 'no checksum header, HEAD included');
      const out = path.join(work, 'restored-b2');
      await e.restore({ dbDir: out, backupId: b.id });
      for (const t of s.tables) assert.ok((await fsp.readFile(path.join(out, sst(t)))).equals(t.data), sst(t));
    } finally {
      await e.close();
    }
  });

  it('create-only without If-None-Match: a HEAD first; an existing object is never replaced', async () => {
    const { env } = await envVia();
    await env.write('meta/1', [Buffer.from('first')], { createOnly: true });
    await assert.rejects(env.write('meta/1', [Buffer.from('second')], { createOnly: true }), isCode('AlreadyExists'));
    await assert.rejects(env.write('meta/1', [Buffer.alloc(6 * MiB, 2)], { createOnly: true, size: 6 * MiB }), isCode('AlreadyExists'));
    const chunks: Buffer[] = [];
    for await (const c of await env.openRead('meta/1')) chunks.push(Buffer.from(c));
    assert.equal(Buffer.concat(chunks).toString(), 'first');
  });

  it('writing without the writer lock (lock: false) is refused there: nothing would keep two writers apart', async () => {
    const db = path.join(work, 'db-nolock');
    await writeFakeDb(db, spec());
    const { env } = await envVia();
    await assert.rejects(BackupEngine.open({ env, lock: false }), isCode('NotSupported', 'does not enforce create-only writes'));
    const meta = [];
    for await (const f of env.list('')) meta.push(f.name);
    assert.deepEqual(meta, []);
  });

  for (const [what, match] of [
    ['a part of a multipart upload', isUploadPart],
    ['a single PUT', (r: Parameters<typeof isPutObject>[0]) => isPutObject(r) && /000009[^/]*\.sst/.test(r.url)],
  ] as const) {
    it(`a body corrupted in flight (${what}) is refused by Content-MD5: the backup fails, nothing is published`, async () => {
      const db = path.join(work, `db-flip-${++n}`);
      const s = spec();
      await writeFakeDb(db, s);
      const { env, proxy } = await envVia({ maxAttempts: 1 });
      await env.prepare();
      proxy.addRule({ match, action: { kind: 'flipByte' }, times: 1 });
      const e = await BackupEngine.open({ env });
      try {
        await assert.rejects(e.createBackup(db), isCode('Corruption', 'rejected the data'));
        assert.equal(proxy.faultsApplied(), 1);
        assert.deepEqual(e.listBackups(), []);
        const meta = [];
        for await (const f of env.list('meta/')) meta.push(f.name);
        assert.deepEqual(meta, [], 'no backup published');
        // Nothing damaged was stored under a table's name either.
        for await (const f of env.list('shared_checksum/')) {
          const t = s.tables.find((x) => f.name.includes(String(x.number).padStart(6, '0')));
          if (t) assert.equal(f.size, t.data.length);
        }
        // The next attempt, undisturbed, backs up and restores the same bytes.
        const b = await e.createBackup(db);
        const out = path.join(work, `restored-flip-${n}`);
        await e.restore({ dbDir: out, backupId: b.id });
        for (const t of s.tables) assert.ok((await fsp.readFile(path.join(out, sst(t)))).equals(t.data), sst(t));
      } finally {
        await e.close();
      }
    });
  }

  // The shared suites, every request through the proxy: the store they see keeps no checksums and
  // refuses If-None-Match, so every write goes the compatible way.
  const makeEnv = async () => {
    const { env } = await envVia({ prefix: `suite-${++n}`, readPartSize: MiB, readConcurrency: 3 });
    await env.prepare();
    assert.equal(env.writeStrategy.name, 'md5');
    return { env, cleanup: async () => {} };
  };
  runEnvConformance('s3 compatible path (MinIO behind the compat proxy)', makeEnv);
  runEngineSuite('s3 compatible path (MinIO behind the compat proxy)', makeEnv);
});
