// cairn's library API.
import { registerBuiltinProviders } from '../providers/builtin.ts';

export { BackupEngine } from './backup/engine.ts';
export type {
  BackupEngineOptions, BackupInfo, BackupFileDetail, CorruptBackup, CreateBackupOptions, CreateBackupResult,
  RestoreMode, RestoreOptions, RestoreResult, VerifyOptions, VerifyResult, VerifyProblem, ProgressEvent, GcResult,
} from './backup/types.ts';
export type { VerifyBackupsResult } from './backup/verify.ts';
export type { BackupEnv, FileInfo, ReadOptions, WriteOptions, WriteResult, WriteSource, EnvCapabilities } from './env.ts';
export { CairnError, isCairnError } from './errors.ts';
export type { ErrorCode } from './errors.ts';
export { openBackupEnv, registerProvider, type OpenEnv, type LoadProvider } from './open-env.ts';
export { fillCapabilities } from './env.ts';
export type { DeclaredCapabilities, StoredChecksum, FileRetention } from './env.ts';
export { RetainedFilesError } from './env.ts';
export type { RetainedBackup, RetainedFile } from './backup/locked-objects.ts';
export { LocalEnv } from '../providers/local/index.ts';
export { paceGcByBytes, stopGcPacing, DEFAULT_GC_PACE, allowSizeModeForLargeCatalogs } from './gc-tuning.ts';

// The package entry is a composition root: it wires the built-in providers in, so that
// openBackupEnv('s3://…') works for library users (registerProvider adds others).
registerBuiltinProviders();
