// Backups under retention (backup --retain: S3 Object Lock through BackupEnv's retention methods).
// The store refuses to delete a locked file, so cairn asks first and deletes only what may go:
//   - delete / purge keep a backup whole while any file its deletion would remove (its manifest,
//     its private files, the shared files only it and the other backups deleted with it use) is
//     under retention, and report it with the latest date;
//   - GC leaves garbage under retention (the files of an unpublished backup, say) and reports it;
//     it goes at a later GC, once the date has passed.
// Shared files carry the latest date any backup using them asked for (create.ts extends them),
// so a backup's own date is its manifest's, and an older backup is never held by a newer one's
// lock on a shared file that the newer one keeps anyway.
import type { BackupEnv, FileRetention } from '../env.ts';
import { CairnError } from '../errors.ts';
import type { EngineContext } from './context.ts';
import { PRIVATE_DIR, metaName, parseBackupId } from './layout.ts';

/**
 * The local clock may run ahead of the store's: a retention counts as in force until this long
 * after its date, so that a manifest is not deleted while the store still refuses its files.
 */
export const CLOCK_MARGIN_MS = 5_000;

export interface RetainedFile extends FileRetention {
  file: string;
  /** The backup whose private file this is (for garbage files). */
  backupId?: number;
}

export interface RetainedBackup {
  id: number;
  /** The latest date among its files; undefined when one is held without a date (legal hold). */
  until?: Date;
  /** The files under retention that its deletion would remove. */
  files: RetainedFile[];
}

/** Before a backup with retainUntil writes anything: the store must be able to keep it. */
export async function requireRetention(env: BackupEnv, signal?: AbortSignal): Promise<void> {
  if (!env.capabilities.retention || !env.requireRetention) {
    throw new CairnError('NotSupported', `${env.url} cannot keep files under retention: --retain needs an S3 bucket with Object Lock (nothing was written)`);
  }
  await env.requireRetention({ signal });
}

/** The files among `names` the store would refuse to delete now (nothing on a store without retention). */
export async function retainedAmong(env: BackupEnv, names: string[], signal?: AbortSignal): Promise<Map<string, FileRetention>> {
  if (!env.capabilities.retention || !env.retentionOf || names.length === 0) return new Map();
  return env.retentionOf(names, { now: new Date(Date.now() - CLOCK_MARGIN_MS), signal });
}

export function retainedFile(file: string, r: FileRetention): RetainedFile {
  const out: RetainedFile = { file, mode: r.mode };
  if (r.until) out.until = r.until;
  if (file.startsWith(PRIVATE_DIR)) {
    const id = parseBackupId(file.slice(PRIVATE_DIR.length).split('/')[0]!);
    if (id !== undefined) out.backupId = id;
  }
  return out;
}

function latest(files: RetainedFile[]): Date | undefined {
  let max: Date | undefined;
  for (const f of files) {
    if (f.until === undefined) return undefined;
    if (max === undefined || f.until > max) max = f.until;
  }
  return max;
}

/**
 * Splits the backups `ids` (valid or corrupt), to be deleted together, into those that may go
 * now and those kept whole because deleting them would remove a file under retention. Asks the
 * store once, about every file that could go.
 */
export async function splitRetainedBackups(ctx: EngineContext, ids: number[], signal?: AbortSignal): Promise<{ deletable: number[]; retained: RetainedBackup[] }> {
  const { env, catalog } = ctx;
  if (!env.capabilities.retention || ids.length === 0) return { deletable: ids, retained: [] };
  const { files } = catalog;
  // (Read from the catalog's compact lists each time: a copy of each backup's indices would cost
  // memory in proportion to backups x files.)
  const filesOf = (id: number): Iterable<number> => catalog.backups.get(id)?.files ?? [];
  // How many of the backups in `set` use each file, by file index: a file goes when they are all its users.
  const usersIn = (set: Iterable<number>) => {
    const counts = new Uint32Array(files.capacity);
    for (const id of set) for (const i of filesOf(id)) counts[i]++;
    return counts;
  };
  const everything = usersIn(ids);
  const names = ids.map(metaName);
  for (let i = 0; i < everything.length; i++) if (everything[i] !== 0 && everything[i] === files.refs(i)) names.push(files.name(i));
  const locks = await retainedAmong(env, names, signal);
  if (locks.size === 0) return { deletable: ids, retained: [] };

  const deleting = new Set(ids);
  const kept: RetainedBackup[] = [];
  for (;;) {
    const users = usersIn(deleting);
    const blocked: (RetainedBackup & { own: boolean })[] = [];
    for (const id of deleting) {
      const held: RetainedFile[] = [];
      let own = false;
      const m = locks.get(metaName(id));
      if (m) {
        held.push(retainedFile(metaName(id), m));
        own = true;
      }
      for (const i of filesOf(id)) {
        if (users[i] !== files.refs(i)) continue; // another backup keeps it
        const r = locks.get(files.name(i));
        if (!r) continue;
        held.push(retainedFile(files.name(i), r));
        if (files.refs(i) === 1) own = true;
      }
      if (held.length > 0) blocked.push({ id, until: latest(held), files: held, own });
    }
    if (blocked.length === 0) break;
    // A backup held by its own files stays whatever else happens. One held only by files it
    // shares with others might go once one of those is kept: keep the newest and look again.
    const owned = blocked.filter((b) => b.own);
    const keepNow = owned.length > 0 ? owned : [blocked.reduce((a, b) => (a.id > b.id ? a : b))];
    for (const { own: _own, ...b } of keepNow) {
      if (b.until === undefined) delete b.until;
      deleting.delete(b.id);
      kept.push(b);
    }
  }
  return { deletable: ids.filter((id) => deleting.has(id)), retained: kept.sort((a, b) => a.id - b.id) };
}

/** "under retention until 2026-12-31T00:00:00.000Z (meta/3 GOVERNANCE, and 4 more files)". */
export function describeRetained(b: RetainedBackup): string {
  const first = b.files[0]!;
  const more = b.files.length > 1 ? `, and ${b.files.length - 1} more file${b.files.length > 2 ? 's' : ''}` : '';
  return `under retention ${b.until ? `until ${b.until.toISOString()}` : 'with no end date (legal hold)'} (${first.file} ${first.mode}${more})`;
}

/** The error `delete --id N` fails with when the backup is kept. */
export function retainedError(b: RetainedBackup, where: string): CairnError {
  return new CairnError('Retained', `backup ${b.id} in ${where} is ${describeRetained(b)}; nothing was deleted`, { backupId: b.id, file: b.files[0]!.file });
}
