// A backup and a restore killed (SIGKILL) at 25/50/80% of their bytes and run again, on fake-gcs-server.
import { resumeKillGcs } from '../support/resume-kill-targets.ts';

resumeKillGcs();
