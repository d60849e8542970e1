// providers/s3 against moto: S3-specific tests, BackupEnv conformance, engine end-to-end.
// The server comes from scripts/install-s3-servers.sh; without it the file skips (fails in CI).
import { runS3ServerTests } from './s3-suite.ts';

runS3ServerTests('moto');
