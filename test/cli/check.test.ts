// `cairn check --backup-dir URL` as a user runs it (a separate process), on a local directory,
// MinIO, MinIO behind a proxy that makes it a store without checksums or If-None-Match,
// SeaweedFS and fake-gcs-server; and where cairn cannot work (wrong credentials, a missing
// bucket, a read-only directory): a clear error and a non-zero exit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { cairn } from './run-cli.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3Server, type S3ServerKind } from '../support/s3-servers.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { GCS_SERVER_BIN, startGcsServer, type GcsServer } from '../support/gcs-server.ts';
import { existsSync } from 'node:fs';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';

interface CheckJson {
  url: string;
  usable: boolean;
  access: Record<'list' | 'write' | 'read' | 'delete', { ok: boolean; code?: string; error?: string }>;
  writePath?: string;
  store?: { feature: string; store: string; cairn: string; ok: boolean }[];
}

const allAccess = (j: CheckJson) => Object.values(j.access).every((a) => a.ok);
const feature = (j: CheckJson, name: string) => j.store!.find((f) => f.feature === name)!;

const s3Vars = (s: S3Server, endpoint = s.endpoint) => ({
  AWS_ENDPOINT_URL_S3: endpoint,
  AWS_ACCESS_KEY_ID: s.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s.secretAccessKey,
  AWS_REGION: s.region,
  CAIRN_S3_CHECKSUM: '',
});

async function listKeys(where: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(where, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out;
}

describe('cairn check on a local directory', () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-check-'));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('every access works, the table says what the disk does; nothing is left behind', async () => {
    const dir = path.join(work, 'bk');
    const r = await cairn(['check', '--backup-dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as CheckJson;
    assert.equal(j.usable, true);
    assert.ok(allAccess(j));
    assert.equal(feature(j, 'create-only writes').store, 'atomic');
    assert.deepEqual(await listKeys(dir), [], 'the probe file is removed');
    const text = await cairn(['check', '--backup-dir', dir]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /list +ok\n +write +ok\n +read +ok\n +delete +ok/);
    assert.match(text.stdout, /cairn can work here\./);
  });

  it('a place cairn cannot write to (below a file): the write fails by name, exit 1', async () => {
    const file = path.join(work, 'a-file');
    await fsp.writeFile(file, 'x');
    const r = await cairn(['check', '--backup-dir', path.join(file, 'bk')]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /write +FAILED: /);
    assert.match(r.stdout, /cairn cannot work here/);
  });
});

for (const kind of ['minio', 'seaweedfs'] as S3ServerKind[]) {
  describe(`cairn check on ${kind}`, { skip: requireOrSkip(s3ServerInstalled(kind), `${kind} (bash scripts/install-s3-servers.sh ${kind})`) ?? false }, () => {
    let server: S3Server;
    const proxies: FaultProxy[] = [];
    before(async () => {
      server = (await startS3Server(kind))!;
    });
    after(async () => {
      await Promise.all(proxies.map((p) => p.stop()));
      await server?.stop();
    });

    it('the store keeps full-object CRC32Cs and enforces If-None-Match: the crc32c write path, exit 0', async () => {
      const r = await cairn(['check', '--backup-dir', `s3://${server.bucket}/checked`, '--json'], { env: s3Vars(server) });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const j = JSON.parse(r.stdout) as CheckJson;
      assert.ok(allAccess(j));
      assert.match(j.writePath!, /^crc32c: .*CAIRN_S3_CHECKSUM=auto/);
      assert.equal(feature(j, 'full-object CRC32C of a single PUT').store, 'kept');
      assert.equal(feature(j, 'CRC32C of a multipart upload').store, 'FULL_OBJECT kept');
      assert.equal(feature(j, 'If-None-Match: * on PutObject').store, 'enforced');
      assert.equal(feature(j, 'If-None-Match: * on CompleteMultipartUpload').store, 'enforced');
      assert.equal(feature(j, 'Content-MD5 validated').store, 'yes');
      // MinIO lists multipart uploads by exact key only (docs/s3.md): a gap cairn names, not a failure.
      assert.equal(feature(j, 'ListMultipartUploads by prefix').ok, kind !== 'minio');
    });

    if (kind === 'seaweedfs') {
      it('credentials that may read and list but not write: list ok, write PermissionDenied, exit 1; verify --server-checksum still works', async () => {
        const ro = server.readOnly!;
        const url = `s3://${server.bucket}/ro`;
        // A backup made with the full credentials, for the read-only verify below.
        const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-check-ro-'));
        try {
          const db = path.join(work, 'db');
          await writeFakeDb(db, { tables: [table(7, 5000)], wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
          assert.equal((await cairn(['backup', '--db', db, '--backup-dir', url], { env: s3Vars(server) })).code, 0);
          const roEnv = { ...s3Vars(server), AWS_ACCESS_KEY_ID: ro.accessKeyId, AWS_SECRET_ACCESS_KEY: ro.secretAccessKey };
          const r = await cairn(['check', '--backup-dir', url, '--json'], { env: roEnv });
          assert.equal(r.code, 1, r.stdout + r.stderr);
          const j = JSON.parse(r.stdout) as CheckJson;
          assert.equal(j.usable, false);
          assert.deepEqual(j.access.list, { ok: true });
          assert.equal(j.access.write.code, 'PermissionDenied');
          assert.match(j.access.write.error!, /access denied/);
          assert.equal(j.access.delete.code, 'NotTried');
          // The probe cannot write with these credentials: verify goes on without it.
          const v = await cairn(['verify', '--backup-dir', url, '--server-checksum'], { env: roEnv });
          assert.equal(v.code, 0, v.stdout + v.stderr);
          assert.match(v.stdout, /backup 1: OK/);
        } finally {
          await fsp.rm(work, { recursive: true, force: true });
        }
      });
    }

    if (kind === 'minio') {
      it('behind a proxy that strips checksums and refuses If-None-Match: the md5 write path, every gap named, exit 0', async () => {
        const proxy = await startFaultProxy({ target: server.endpoint, compat: { stripChecksums: true, rejectIfNoneMatch: true }, lifetimeMs: 120_000 });
        proxies.push(proxy);
        const r = await cairn(['check', '--backup-dir', `s3://${server.bucket}/compat`, '--json'], { env: s3Vars(server, proxy.endpoint) });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const j = JSON.parse(r.stdout) as CheckJson;
        assert.ok(allAccess(j));
        assert.match(j.writePath!, /^md5 \(compatible\): Content-MD5 on every PUT and part plus CRC32C headers, checked after the write by etag-md5/);
        assert.deepEqual(
          j.store!.filter((f) => !f.ok).map((f) => [f.feature, f.store]),
          [
            ['full-object CRC32C of a single PUT', 'not kept'],
            ['CRC32C of a multipart upload', 'not kept'],
            ['If-None-Match: * on PutObject', 'unsupported'],
            ['If-None-Match: * on CompleteMultipartUpload', 'unsupported'],
            ['ListMultipartUploads by prefix', 'by exact key only'],
          ],
        );
        assert.match(feature(j, 'If-None-Match: * on PutObject').cairn, /HEAD first/);
        const text = await cairn(['check', '--backup-dir', `s3://${server.bucket}/compat`], { env: s3Vars(server, proxy.endpoint) });
        assert.equal(text.code, 0);
        assert.match(text.stdout, /^! full-object CRC32C of a single PUT +not kept +the ETag is compared/m);
        assert.match(text.stdout, /cairn can work here\./);
      });

      it('behind that proxy, backup and restore work and verify --server-checksum says what it cannot check', async () => {
        const proxy = await startFaultProxy({ target: server.endpoint, compat: { stripChecksums: true, rejectIfNoneMatch: true }, lifetimeMs: 120_000 });
        proxies.push(proxy);
        const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-check-verify-'));
        try {
          const db = path.join(work, 'db');
          const t = table(7, 6 * 1024 * 1024 + 5);
          await writeFakeDb(db, { tables: [t, table(9, 1000)], wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
          const env = { ...s3Vars(server, proxy.endpoint), CAIRN_S3_PART_SIZE: '5MiB' };
          const url = `s3://${server.bucket}/cli-compat`;
          const b = await cairn(['backup', '--db', db, '--backup-dir', url], { env });
          assert.equal(b.code, 0, b.stderr);
          const v = await cairn(['verify', '--backup-dir', url, '--server-checksum'], { env });
          assert.equal(v.code, 0, v.stderr + v.stdout);
          assert.match(v.stdout, /backup 1: OK/);
          assert.match(v.stderr, /warning: s3:\/\/.*cli-compat: the store keeps no full-object CRC32C for objects: for those, --server-checksum checks only that they exist with the right size, not their contents; `cairn verify --checksum` reads them/);
          const r = await cairn(['restore', '--backup-dir', url, '--db', path.join(work, 'out')], { env });
          assert.equal(r.code, 0, r.stderr);
          assert.ok((await fsp.readFile(path.join(work, 'out', '000007.sst'))).equals(t.data));
        } finally {
          await fsp.rm(work, { recursive: true, force: true });
        }
      });

      it('CAIRN_S3_CHECKSUM=md5 forces the compatible path on a store that would not need it', async () => {
        const r = await cairn(['check', '--backup-dir', `s3://${server.bucket}/forced`, '--json'], { env: { ...s3Vars(server), CAIRN_S3_CHECKSUM: 'md5' } });
        assert.equal(r.code, 0, r.stderr);
        assert.match((JSON.parse(r.stdout) as CheckJson).writePath!, /^md5 \(compatible\).*CAIRN_S3_CHECKSUM=md5/);
        const bad = await cairn(['check', '--backup-dir', `s3://${server.bucket}/forced`], { env: { ...s3Vars(server), CAIRN_S3_CHECKSUM: 'sha1' } });
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /CAIRN_S3_CHECKSUM="sha1": expected auto, crc32c, md5/);
      });

      it('wrong credentials: every access fails as PermissionDenied, exit 1', async () => {
        const r = await cairn(['check', '--backup-dir', `s3://${server.bucket}/x`, '--json'], { env: { ...s3Vars(server), AWS_SECRET_ACCESS_KEY: 'not-the-secret' } });
        assert.equal(r.code, 1, r.stdout);
        const j = JSON.parse(r.stdout) as CheckJson;
        assert.equal(j.usable, false);
        assert.equal(j.access.list.code, 'PermissionDenied');
        assert.equal(j.access.write.code, 'PermissionDenied');
        assert.match(j.access.write.error!, /credentials rejected/);
        assert.equal(j.access.read.code, 'NotTried');
        assert.equal(j.store, undefined);
      });

      it('a missing bucket: NotFound naming it, exit 4', async () => {
        const r = await cairn(['check', '--backup-dir', 's3://cairn-no-such-bucket/x'], { env: s3Vars(server) });
        assert.equal(r.code, 4, r.stdout + r.stderr);
        assert.match(r.stdout, /list +FAILED: bucket cairn-no-such-bucket does not exist/);
        assert.match(r.stdout, /cairn cannot work here/);
      });
    }
  });
}

describe('cairn check on GCS (fake-gcs-server)', { skip: requireOrSkip(existsSync(GCS_SERVER_BIN), 'fake-gcs-server (scripts/install-gcs-server.sh)') ?? false }, () => {
  let server: GcsServer;
  before(async () => {
    server = (await startGcsServer())!;
  });
  after(async () => {
    await server?.stop();
  });
  const vars = () => ({ CAIRN_GCS_ENDPOINT: server.endpoint, GOOGLE_CLOUD_PROJECT: server.projectId });

  it('every access works; the store keeps a CRC32C of every object and create-only is atomic', async () => {
    const r = await cairn(['check', '--backup-dir', `gs://${server.bucket}/checked`, '--json'], { env: vars() });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout) as CheckJson;
    assert.ok(allAccess(j));
    assert.equal(feature(j, 'stored CRC32C').store, 'kept for every object');
    assert.equal(feature(j, 'create-only writes').store, 'atomic');
  });

  it('a missing bucket: a clear error, non-zero exit', async () => {
    const r = await cairn(['check', '--backup-dir', 'gs://cairn-no-such-bucket/x'], { env: vars() });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /cairn-no-such-bucket/);
  });
});
