// Backups to MinIO within a tiny upload memory budget (test/support/memory-budget-suite.ts).
import { describe } from 'node:test';
import { S3Env } from '../../providers/s3/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled } from '../support/s3-servers.ts';
import { useS3Server } from '../support/s3-server-hooks.ts';
import { runMemoryBudgetSuite } from '../support/memory-budget-suite.ts';

const MiB = 1 << 20;
const skip = requireOrSkip(s3ServerInstalled('minio'), 'minio (scripts/install-s3-servers.sh)');

describe('upload memory budget on minio', { skip: skip ?? false }, () => {
  const minio = useS3Server('minio');
  runMemoryBudgetSuite('s3 on minio', [{ name: '2 parts', bytes: 10 * MiB }, { name: 'less than one part', bytes: MiB }], async (memoryBudget) => {
    const server = minio();
    const bucket = await server.createBucket();
    return new S3Env(`s3://${bucket}/cairn`, {
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      partSize: 5 * MiB,
      memoryBudget,
    });
  });
});
