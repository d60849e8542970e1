// providers/s3 against SeaweedFS (`weed server -s3`: master, volume server, filer and S3 gateway, as
// an on-prem install runs them): S3-specific tests, BackupEnv conformance, engine end-to-end, and
// the ways SeaweedFS differs from S3 that make S3-suite tests fail (listed in known-failures.ts).
// The server comes from scripts/install-s3-servers.sh; without it the file skips (fails in CI).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { runS3ServerTests } from './s3-suite.ts';
import { rawS3Client, type S3Server } from '../support/s3-servers.ts';

runS3ServerTests('seaweedfs', (getServer) => {
  describe('SeaweedFS differences from S3 (pinned)', () => {
    // The SDK's own response checksum validation stays on here, as it was.
    const client = (s: S3Server) => rawS3Client(s, { responseChecksumValidation: 'WHEN_SUPPORTED' });

    it('a PUT to a missing bucket creates it (admin identity, -s3.autoCreateBucket default); reads of a missing bucket are NoSuchBucket', async () => {
      const s = getServer();
      const c = client(s);
      try {
        const bucket = `cairn-auto-${randomBytes(4).toString('hex')}`;
        await assert.rejects(c.send(new GetObjectCommand({ Bucket: bucket, Key: 'a' })), (e: Error) => e.name === 'NoSuchBucket');
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: 'x' }));
        await c.send(new HeadBucketCommand({ Bucket: bucket }));
        const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'a' }));
        assert.equal(await r.Body!.transformToString(), 'x');
      } finally {
        c.destroy();
      }
    });

    it('the GLACIER storage class is stored as a label; the object is served at once', async () => {
      const s = getServer();
      const c = client(s);
      try {
        await c.send(new PutObjectCommand({ Bucket: s.bucket, Key: 'glacier', Body: 'cold', StorageClass: 'GLACIER' }));
        assert.equal((await c.send(new HeadObjectCommand({ Bucket: s.bucket, Key: 'glacier' }))).StorageClass, 'GLACIER');
        const r = await c.send(new GetObjectCommand({ Bucket: s.bucket, Key: 'glacier' }));
        assert.equal(await r.Body!.transformToString(), 'cold');
      } finally {
        c.destroy();
      }
    });
  });
});
