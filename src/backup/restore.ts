// Restore as the engine offers it: choose the backup (the latest valid one by default), hand its
// files to the restore writer (restore-files.ts, loaded when first used), and tell a backup
// deleted by another process meanwhile from a damaged one.
import { CairnError, isCairnError, notFound } from '../errors.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { deletedMeanwhile } from './catalog.ts';
import type { EngineContext } from './context.ts';
import { RESTORE_MODES, type RestoreOptions, type RestoreResult } from './types.ts';

export async function restoreBackup(ctx: EngineContext, opts: RestoreOptions): Promise<RestoreResult> {
  const { catalog, env, settings } = ctx;
  if (opts.mode !== undefined && !RESTORE_MODES.includes(opts.mode)) {
    throw new CairnError('InvalidArgument', `restore mode ${JSON.stringify(opts.mode)} is not one of ${RESTORE_MODES.join(', ')}`);
  }
  const id = opts.backupId ?? catalog.latestValidBackupId;
  if (id === undefined) throw notFound(`no valid backup in ${env.url}`);
  const b = catalog.require(id, env.url);
  if (b.hasExcluded) {
    throw new CairnError('NotSupported', `backup ${id} has files excluded to another backup directory; cairn cannot restore it`, { backupId: id });
  }
  const { restoreFiles } = await import('./restore-files.ts');
  let reused: { filesKept: number; bytesReused: number };
  try {
    reused = await restoreFiles({
      env,
      backupId: id,
      files: [...catalog.filesOf(b)],
      dbDir: opts.dbDir,
      walDir: opts.walDir ?? opts.dbDir,
      keepLogFiles: opts.keepLogFiles ?? false,
      checkSpace: opts.checkSpace ?? true,
      mode: opts.mode ?? 'purge-all',
      sync: settings.sync,
      concurrency: settings.maxBackgroundOperations,
      limiter: settings.restoreRateLimit > 0 ? new RateLimiter(settings.restoreRateLimit) : undefined,
      signal: opts.signal,
      onProgress: opts.onProgress,
    });
  } catch (e) {
    if (isCairnError(e, 'NotFound') || isCairnError(e, 'Corruption')) throw (await deletedMeanwhile(env, id, 'restored', opts.signal, e)) ?? e;
    throw e;
  }
  return { ...catalog.info(b), ...reused };
}
