// A backup and a restore killed (SIGKILL) at 25/50/80% of their bytes and run again, on local disk.
import { resumeKillLocal } from '../support/resume-kill-targets.ts';

resumeKillLocal();
