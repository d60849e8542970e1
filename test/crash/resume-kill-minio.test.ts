// A backup and a restore killed (SIGKILL) at 25/50/80% of their bytes and run again, on MinIO.
import { resumeKillS3 } from '../support/resume-kill-targets.ts';

resumeKillS3('minio');
