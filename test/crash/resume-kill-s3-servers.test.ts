// A backup and a restore killed (SIGKILL) at 25/50/80% of their bytes and run again, on the other
// S3 servers of the matrix (MinIO has its own file): LocalStack, moto, SeaweedFS.
import { resumeKillS3 } from '../support/resume-kill-targets.ts';

for (const kind of ['localstack', 'moto', 'seaweedfs'] as const) resumeKillS3(kind);
