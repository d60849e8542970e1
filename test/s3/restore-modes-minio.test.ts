// Restore modes against MinIO (files restored from an object store, in parallel ranges for the
// larger ones): a restore over yesterday's restore downloads only what changed.
import { describe } from 'node:test';
import { S3Env } from '../../providers/s3/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled } from '../support/s3-servers.ts';
import { useS3Server } from '../support/s3-server-hooks.ts';
import { runRestoreModesSuite } from '../support/restore-modes-suite.ts';

const MiB = 1 << 20;
const skip = requireOrSkip(s3ServerInstalled('minio'), 'minio (scripts/install-s3-servers.sh)');

describe('restore modes on minio', { skip: skip ?? false }, () => {
  const minio = useS3Server('minio');
  runRestoreModesSuite('s3 on minio', async () => {
    const server = minio();
    const bucket = await server.createBucket();
    return new S3Env(`s3://${bucket}/cairn/backups`, {
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      partSize: 5 * MiB,
      // Small read ranges: the 250 kB and 300 kB tables are restored in several ranges.
      readPartSize: 64 * 1024,
      readConcurrency: 3,
    });
  });
});
