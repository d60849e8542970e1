// Turns a --backup-dir URL into a BackupEnv: a path or file:// URL (local disk), s3://bucket/prefix
// or gs://bucket/prefix. The cloud SDKs are imported only when their scheme is used.
import { fileURLToPath } from 'node:url';
import type { BackupEnv } from './env.ts';
import { invalidArgument } from './errors.ts';
import { LocalEnv } from '../providers/local/index.ts';

export async function openBackupEnv(location: string): Promise<BackupEnv> {
  if (!location) throw invalidArgument('no backup directory given (--backup-dir or CAIRN_BACKUP_DIR)');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase();
  if (scheme === undefined) return new LocalEnv(location);
  if (scheme === 'file') return new LocalEnv(fileURLToPath(location));
  if (scheme === 's3') {
    const { openS3Env } = await import('../providers/s3/index.ts');
    return openS3Env(new URL(location));
  }
  if (scheme === 'gs') {
    const { openGcsEnv } = await import('../providers/gcs/index.ts');
    return openGcsEnv(new URL(location));
  }
  throw invalidArgument(`unsupported backup location ${JSON.stringify(location)}: use a path, file://, s3:// or gs://`);
}
