// What the engine's operations (create, restore, verify, gc) work on: the backup directory, its
// loaded catalog, the engine's settings, and the writer lock while a writing operation holds it
// (with the directory's listing taken under it).
import type { BackupEnv } from '../env.ts';
import type { Catalog } from './catalog.ts';
import type { DirListing } from './dir-listing.ts';
import type { EngineSettings } from './types.ts';
import type { WriterLock } from './writer-lock.ts';

export interface EngineContext {
  env: BackupEnv;
  catalog: Catalog;
  settings: EngineSettings;
  /** Held by writing operations; checked before a commit point or a deletion. */
  lock: WriterLock | undefined;
  /**
   * The directory as listed under the writer lock this engine still holds, with the run's own
   * changes (dir-listing.ts); undefined without a lock, after a failed operation, or for readers.
   * Whatever changes a stored file while it is set must tell it (put/deleted).
   */
  listing?: DirListing;
}
