// S3 Object Lock on the emulators, through providers/s3/object-lock.ts and raw requests: what each
// server enforces, and where it falls short of S3, pinned as tests (a gap that closes fails its
// test, so docs/retention.md gets updated). No server is mocked; each starts on loopback.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLockConfigurationCommand,
  PutObjectRetentionCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  bucketObjectLock,
  createObjectLockBucket,
  deleteVersionUnlessLocked,
  extendRetention,
  getObjectRetention,
  headObjectLock,
  parseObjectLockMode,
  putObjectWithRetention,
  requireObjectLock,
  retainUntilFrom,
  type ObjectLockMode,
} from '../../providers/s3/object-lock.ts';
import { s3ErrorInfo } from '../../providers/s3/errors.ts';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { parseRetentionDuration } from '../../src/backup/retention.ts';
import { isCairnError } from '../../src/errors.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { rawS3Client, s3ServerInstalled, startS3Server, type S3Server, type S3ServerKind } from '../support/s3-servers.ts';

interface LockTraits {
  /** Refuses a lock PUT without Content-MD5 / x-amz-sdk-checksum-algorithm, as AWS documents. */
  lockPutNeedsChecksum: boolean;
  refusesPastRetainUntil: boolean;
  /** Refuses lock headers in a bucket without Object Lock (LocalStack stores them). */
  refusesLockHeadersWithoutLock: boolean;
  /** GetObjectRetention answers in a form the SDK parses (moto's answer is not). */
  getRetention: boolean;
  /** Refuses shortening GOVERNANCE without bypass, any shortening of COMPLIANCE, COMPLIANCE -> GOVERNANCE. */
  guardsRetentionChanges: boolean;
  /** Applies lock headers given to CreateMultipartUpload. */
  multipartLock: boolean;
  /** Refuses suspending versioning on an Object Lock bucket. */
  keepsVersioning: boolean;
  /** PutObjectLockConfiguration can turn Object Lock on for an existing versioned bucket (AWS can since 2023). */
  lockExistingBucket: boolean;
  /** How a delete of a locked version is refused. */
  refusal: { status: number; code: string };
  /** DeleteObjects names the refused version in its per-key error (moto leaves VersionId out). */
  batchErrorNamesVersion: boolean;
  /**
   * GetObjectRetention of an object without retention: S3's 404 NoSuchObjectLockConfiguration
   * (no retention), or this other error code (SeaweedFS: the bucket's ObjectLockConfigurationNotFoundError).
   */
  noRetentionError?: string;
}
const TRAITS: Record<'minio' | 'localstack' | 'moto' | 'seaweedfs', LockTraits> = {
  minio: {
    lockPutNeedsChecksum: false,
    refusesPastRetainUntil: true,
    refusesLockHeadersWithoutLock: true,
    getRetention: true,
    guardsRetentionChanges: true,
    multipartLock: true,
    keepsVersioning: true,
    lockExistingBucket: false,
    refusal: { status: 400, code: 'InvalidRequest' },
    batchErrorNamesVersion: true,
  },
  localstack: {
    lockPutNeedsChecksum: false,
    refusesPastRetainUntil: false,
    refusesLockHeadersWithoutLock: false,
    getRetention: true,
    guardsRetentionChanges: true,
    multipartLock: true,
    keepsVersioning: true,
    lockExistingBucket: true,
    refusal: { status: 403, code: 'AccessDenied' },
    batchErrorNamesVersion: true,
  },
  moto: {
    lockPutNeedsChecksum: true,
    refusesPastRetainUntil: false,
    refusesLockHeadersWithoutLock: true,
    getRetention: false,
    guardsRetentionChanges: false,
    multipartLock: false,
    keepsVersioning: false,
    lockExistingBucket: true,
    refusal: { status: 403, code: 'AccessDenied' },
    batchErrorNamesVersion: false,
  },
  seaweedfs: {
    lockPutNeedsChecksum: false,
    refusesPastRetainUntil: true,
    refusesLockHeadersWithoutLock: true,
    getRetention: true,
    guardsRetentionChanges: true,
    multipartLock: true,
    keepsVersioning: true,
    lockExistingBucket: true,
    refusal: { status: 403, code: 'AccessDenied' },
    batchErrorNamesVersion: true,
    noRetentionError: 'ObjectLockConfigurationNotFoundError',
  },
};

const HOUR = 3_600_000;
/** Whole seconds: LocalStack keeps retain-until dates to the second. */
const inHours = (h: number) => new Date(Math.ceil(Date.now() / 1000) * 1000 + h * HOUR);
const rejection = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    const { status, code } = s3ErrorInfo(e);
    return { status, code };
  }
  return 'accepted';
};

async function readBytes(client: S3Client, bucket: string, key: string, versionId?: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

for (const kind of ['minio', 'localstack', 'moto', 'seaweedfs'] as const) {
  const t = TRAITS[kind];
  describe(`S3 Object Lock on ${kind}`, { skip: requireOrSkip(s3ServerInstalled(kind), kind) }, () => {
    let srv: S3Server;
    let client: S3Client;
    let locked: string;
    let plain: string;
    const body = randomBytes(1000);
    const crc = crc32cToBase64(crc32c(body));

    before(async () => {
      srv = (await startS3Server(kind))!;
      client = rawS3Client(srv);
      plain = srv.bucket;
      locked = `lock-${randomBytes(5).toString('hex')}`;
      await createObjectLockBucket(client, locked);
    });
    after(async () => {
      client?.destroy();
      await srv?.stop();
    });

    it('tells an Object Lock bucket from a plain one, before anything is written', async () => {
      assert.deepEqual(await bucketObjectLock(client, locked), { enabled: true });
      assert.deepEqual(await bucketObjectLock(client, plain), { enabled: false });
      await requireObjectLock(client, locked);
      await assert.rejects(requireObjectLock(client, plain), (e) => isCairnError(e, 'NotSupported') && e.message.includes(`s3://${plain}`));
    });

    it('stores an object under retention; HEAD shows mode and retain-until', async () => {
      const until = inHours(24);
      const { versionId } = await putObjectWithRetention(client, locked, 'gov', body, { mode: 'GOVERNANCE', retainUntil: until });
      assert.ok(versionId, 'an Object Lock bucket is versioned');
      assert.deepEqual(await headObjectLock(client, locked, 'gov', { versionId }), { retention: { mode: 'GOVERNANCE', retainUntil: until }, legalHold: false });
      assert.deepEqual(await readBytes(client, locked, 'gov', versionId), body);
      if (t.getRetention) {
        assert.deepEqual(await getObjectRetention(client, locked, 'gov', { versionId }), { mode: 'GOVERNANCE', retainUntil: until });
        await client.send(new PutObjectCommand({ Bucket: locked, Key: 'free', Body: body, ChecksumCRC32C: crc }));
        if (t.noRetentionError) await assert.rejects(getObjectRetention(client, locked, 'free'), (e) => s3ErrorInfo((e as Error).cause).code === t.noRetentionError);
        else assert.equal(await getObjectRetention(client, locked, 'free'), undefined);
        // HEAD, which cairn reads locks with, answers plainly everywhere.
        assert.deepEqual(await headObjectLock(client, locked, 'free'), { legalHold: false });
      } else {
        // moto answers 200 with a body the SDK cannot parse: read locks with HEAD.
        await assert.rejects(getObjectRetention(client, locked, 'gov', { versionId }));
      }
    });

    it('lock headers need Content-MD5 or x-amz-sdk-checksum-algorithm', async () => {
      const lock = { ObjectLockMode: 'GOVERNANCE' as const, ObjectLockRetainUntilDate: inHours(24) };
      const none = await rejection(client.send(new PutObjectCommand({ Bucket: locked, Key: 'nock', Body: body, ...lock })));
      const valueOnly = await rejection(client.send(new PutObjectCommand({ Bucket: locked, Key: 'vo', Body: body, ChecksumCRC32C: crc, ...lock })));
      const refused = { status: 400, code: 'MissingUploadObjectWithObjectLockHeaders' };
      assert.deepEqual(none, t.lockPutNeedsChecksum ? refused : 'accepted');
      assert.deepEqual(valueOnly, t.lockPutNeedsChecksum ? refused : 'accepted');
      const md5 = createHash('md5').update(body).digest('base64');
      assert.equal(await rejection(client.send(new PutObjectCommand({ Bucket: locked, Key: 'md5', Body: body, ContentMD5: md5, ...lock }))), 'accepted');
    });

    it('refuses to delete a locked version (both modes); a versionless DELETE only hides it', async () => {
      for (const mode of ['GOVERNANCE', 'COMPLIANCE'] as ObjectLockMode[]) {
        const key = `del-${mode}`;
        const until = inHours(24);
        const { versionId } = await putObjectWithRetention(client, locked, key, body, { mode, retainUntil: until });
        assert.deepEqual(await rejection(client.send(new DeleteObjectCommand({ Bucket: locked, Key: key, VersionId: versionId }))), t.refusal);
        const res = await deleteVersionUnlessLocked(client, locked, key, versionId!);
        assert.equal(res.deleted, false);
        assert.deepEqual(!res.deleted && res.lock, { retention: { mode, retainUntil: until }, legalHold: false });
        // Without a version id S3 adds a delete marker: gone from listings, bytes still stored.
        const marker = await client.send(new DeleteObjectCommand({ Bucket: locked, Key: key }));
        assert.equal(marker.DeleteMarker, true);
        const listed = await client.send(new ListObjectsV2Command({ Bucket: locked, Prefix: key }));
        assert.equal(listed.KeyCount ?? 0, 0);
        const versions = await client.send(new ListObjectVersionsCommand({ Bucket: locked, Prefix: key }));
        assert.deepEqual(versions.Versions?.map((v) => v.VersionId), [versionId]);
        assert.deepEqual(await readBytes(client, locked, key, versionId), body);
      }
    });

    it('DeleteObjects refuses a locked version per key (naming the version, except on moto)', async () => {
      const { versionId } = await putObjectWithRetention(client, locked, 'batch-locked', body, { mode: 'GOVERNANCE', retainUntil: inHours(24) });
      const res = await client.send(new DeleteObjectsCommand({ Bucket: locked, Delete: { Objects: [{ Key: 'batch-locked', VersionId: versionId }] } }));
      assert.equal(res.Errors?.length, 1);
      const er = res.Errors![0]!;
      assert.equal(er.Key, 'batch-locked');
      assert.equal(er.Code, t.refusal.code);
      assert.equal(er.VersionId, t.batchErrorNamesVersion ? versionId : undefined);
      assert.deepEqual(await readBytes(client, locked, 'batch-locked', versionId), body);
    });

    it('bypassing governance deletes a GOVERNANCE version, never a COMPLIANCE one', async () => {
      const g = await putObjectWithRetention(client, locked, 'byp-g', body, { mode: 'GOVERNANCE', retainUntil: inHours(24) });
      const c = await putObjectWithRetention(client, locked, 'byp-c', body, { mode: 'COMPLIANCE', retainUntil: inHours(24) });
      assert.equal(await rejection(client.send(new DeleteObjectCommand({ Bucket: locked, Key: 'byp-g', VersionId: g.versionId, BypassGovernanceRetention: true }))), 'accepted');
      assert.deepEqual(await rejection(client.send(new DeleteObjectCommand({ Bucket: locked, Key: 'byp-c', VersionId: c.versionId, BypassGovernanceRetention: true }))), t.refusal);
    });

    it('extendRetention lengthens and never shortens; the server guards shortening (or not)', async () => {
      const first = inHours(24);
      const { versionId } = await putObjectWithRetention(client, locked, 'ext', body, { mode: 'COMPLIANCE', retainUntil: first });
      const later = inHours(48);
      assert.deepEqual(await extendRetention(client, locked, 'ext', { mode: 'GOVERNANCE', retainUntil: later }, { versionId }), { mode: 'COMPLIANCE', retainUntil: later });
      assert.deepEqual((await headObjectLock(client, locked, 'ext', { versionId })).retention, { mode: 'COMPLIANCE', retainUntil: later });
      assert.deepEqual(await extendRetention(client, locked, 'ext', { mode: 'COMPLIANCE', retainUntil: first }, { versionId }), { mode: 'COMPLIANCE', retainUntil: later });
      assert.deepEqual((await headObjectLock(client, locked, 'ext', { versionId })).retention, { mode: 'COMPLIANCE', retainUntil: later });

      const shorten = (key: string, v: string | undefined, mode: ObjectLockMode, until: Date, bypass = false) =>
        rejection(client.send(new PutObjectRetentionCommand({ Bucket: locked, Key: key, VersionId: v, BypassGovernanceRetention: bypass, Retention: { Mode: mode, RetainUntilDate: until } })));
      const g = await putObjectWithRetention(client, locked, 'short-g', body, { mode: 'GOVERNANCE', retainUntil: inHours(24) });
      const guarded = (r: unknown) => assert.deepEqual(r, t.guardsRetentionChanges ? t.refusal : 'accepted');
      guarded(await shorten('short-g', g.versionId, 'GOVERNANCE', inHours(1)));
      guarded(await shorten('ext', versionId, 'COMPLIANCE', inHours(1), true));
      guarded(await shorten('ext', versionId, 'GOVERNANCE', inHours(72)));
      const g2 = await putObjectWithRetention(client, locked, 'short-g2', body, { mode: 'GOVERNANCE', retainUntil: inHours(24) });
      assert.equal(await shorten('short-g2', g2.versionId, 'GOVERNANCE', inHours(1), true), 'accepted');
    });

    it('a retain-until date in the past is refused (or stored as given)', async () => {
      const past = inHours(-1);
      const r = await rejection(client.send(new PutObjectCommand({ Bucket: locked, Key: 'past', Body: body, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crc, ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: past })));
      if (t.refusesPastRetainUntil) assert.deepEqual(r, { status: 400, code: 'InvalidRequest' });
      else assert.deepEqual((await headObjectLock(client, locked, 'past')).retention, { mode: 'GOVERNANCE', retainUntil: past });
    });

    it('lock headers in a bucket without Object Lock are refused (or stored anyway)', async () => {
      const until = inHours(24);
      const r = await rejection(
        client.send(new PutObjectCommand({ Bucket: plain, Key: 'lockless', Body: body, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crc, ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: until })),
      );
      if (t.refusesLockHeadersWithoutLock) assert.deepEqual(r, { status: 400, code: 'InvalidRequest' });
      else assert.deepEqual((await headObjectLock(client, plain, 'lockless')).retention, { mode: 'GOVERNANCE', retainUntil: until });
    });

    it('CreateMultipartUpload carries the lock to the completed object (or drops it)', async () => {
      const until = inHours(24);
      const c = await client.send(new CreateMultipartUploadCommand({ Bucket: locked, Key: 'mpu', ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT', ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: until }));
      const p = await client.send(new UploadPartCommand({ Bucket: locked, Key: 'mpu', UploadId: c.UploadId, PartNumber: 1, Body: body, ChecksumCRC32C: crc }));
      const done = await client.send(
        new CompleteMultipartUploadCommand({ Bucket: locked, Key: 'mpu', UploadId: c.UploadId, ChecksumType: 'FULL_OBJECT', ChecksumCRC32C: crc, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag, ChecksumCRC32C: crc }] } }),
      );
      const lock = await headObjectLock(client, locked, 'mpu', { versionId: done.VersionId });
      assert.deepEqual(lock.retention, t.multipartLock ? { mode: 'COMPLIANCE', retainUntil: until } : undefined);
    });

    it('versioning of an Object Lock bucket cannot be suspended (except on moto)', async () => {
      const b = `susp-${randomBytes(4).toString('hex')}`;
      await createObjectLockBucket(client, b);
      const r = await rejection(client.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Suspended' } })));
      if (t.keepsVersioning) assert.equal((r as { code: string }).code, 'InvalidBucketState');
      else assert.equal(r, 'accepted');
    });

    it('Object Lock can be turned on for an existing versioned bucket (not on MinIO)', async () => {
      const b = `late-${randomBytes(4).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: b }));
      await client.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Enabled' } }));
      const r = await rejection(client.send(new PutObjectLockConfigurationCommand({ Bucket: b, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } })));
      if (t.lockExistingBucket) {
        assert.equal(r, 'accepted');
        assert.deepEqual(await bucketObjectLock(client, b), { enabled: true });
      } else {
        assert.deepEqual(r, { status: 409, code: 'InvalidBucketState' });
        assert.deepEqual(await bucketObjectLock(client, b), { enabled: false });
      }
    });

    it('once retain-until has passed, the version can be deleted', async () => {
      const until = new Date(Math.ceil(Date.now() / 1000) * 1000 + 5000);
      const { versionId } = await putObjectWithRetention(client, locked, 'expiring', body, { mode: 'COMPLIANCE', retainUntil: until });
      // now = the epoch: any refusal by a lock counts as locked, whatever this machine's clock says.
      const attempt = () => deleteVersionUnlessLocked(client, locked, 'expiring', versionId!, { now: new Date(0) });
      let res = await attempt();
      if (Date.now() < until.getTime() - 500) assert.equal(res.deleted, false, 'deleted while locked');
      // Waits for the lock to run out on the server's clock, not for a fixed time.
      const deadline = Date.now() + 60_000;
      while (!res.deleted && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        res = await attempt();
      }
      assert.equal(res.deleted, true, 'the version is still locked a minute after its retain-until date');
      const versions = await client.send(new ListObjectVersionsCommand({ Bucket: locked, Prefix: 'expiring' }));
      assert.equal(versions.Versions?.length ?? 0, 0);
    });
  });
}

describe('object lock helpers', () => {
  it('parses the mode and computes retain-until on the local calendar', () => {
    assert.equal(parseObjectLockMode('governance'), 'GOVERNANCE');
    assert.equal(parseObjectLockMode(' COMPLIANCE '), 'COMPLIANCE');
    assert.throws(() => parseObjectLockMode('legal-hold'), (e) => isCairnError(e, 'InvalidArgument'));
    const prev = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      // 30 days from 2026-03-15 12:00 CET is 2026-04-14 12:00 CEST: one hour less than 30 × 24 h.
      const from = new Date('2026-03-15T11:00:00Z');
      assert.equal(retainUntilFrom(from, parseRetentionDuration('30d')).toISOString(), '2026-04-14T10:00:00.000Z');
    } finally {
      if (prev === undefined) delete process.env.TZ;
      else process.env.TZ = prev;
    }
  });
});
