// cairn's library API.
export { BackupEngine } from './backup/engine.ts';
export type {
  BackupEngineOptions, BackupInfo, BackupFileDetail, CorruptBackup, CreateBackupOptions, CreateBackupResult,
  RestoreOptions, VerifyOptions, VerifyResult, VerifyProblem, ProgressEvent, GcResult,
} from './backup/types.ts';
export type { VerifyBackupsResult } from './backup/verify.ts';
export type { BackupEnv, FileInfo, ReadOptions, WriteOptions, WriteResult, WriteSource, EnvCapabilities } from './env.ts';
export { CairnError, isCairnError } from './errors.ts';
export type { ErrorCode } from './errors.ts';
export { openBackupEnv } from './open-env.ts';
export { LocalEnv } from '../providers/local/index.ts';
