// Names inside a backup directory, as RocksDB's BackupEngine lays them out.
import { corruption } from '../errors.ts';
import { isPlainFileName } from '../names.ts';
import { parseDbFileName } from '../rocksdb/filename.ts';

export const META_DIR = 'meta/';
export const PRIVATE_DIR = 'private/';
export const SHARED_DIR = 'shared/';
export const SHARED_CHECKSUM_DIR = 'shared_checksum/';

export type Naming = 'session-id' | 'legacy-crc32c-size';

export const metaName = (id: number) => `${META_DIR}${id}`;
/** A file under shared/ or shared_checksum/ (one copy used by every backup that names it). */
export const isSharedName = (name: string) => name.startsWith(SHARED_DIR) || name.startsWith(SHARED_CHECKSUM_DIR);
export const privateDir = (id: number) => `${PRIVATE_DIR}${id}/`;

/** A backup id as RocksDB writes it: a positive decimal without leading zeros, below 2^32. */
export function parseBackupId(s: string): number | undefined {
  if (!/^[1-9][0-9]{0,9}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

/**
 * The name of a table or blob file in shared_checksum/: `<number>_s<session>[_<size>].<ext>`, or
 * `<number>_<crc32c>_<size>.<ext>` without a session id (always for blob files).
 */
export function sharedChecksumName(dbFileName: string, size: number, opts: { sessionId?: string; crc32c?: number; includeSize: boolean; naming: Naming }): string {
  const dot = dbFileName.lastIndexOf('.');
  const stem = dbFileName.slice(0, dot);
  const ext = dbFileName.slice(dot);
  if (opts.naming === 'session-id' && opts.sessionId) {
    return `${SHARED_CHECKSUM_DIR}${stem}_s${opts.sessionId}${opts.includeSize ? `_${size}` : ''}${ext}`;
  }
  if (opts.crc32c === undefined) throw new Error(`legacy naming of ${dbFileName} needs its crc32c`);
  return `${SHARED_CHECKSUM_DIR}${stem}_${opts.crc32c >>> 0}_${size}${ext}`;
}

/** The DB file name a backup file restores to: the basename, with shared_checksum decorations removed. */
export function dbFileNameOf(backupFile: string): string {
  const base = backupFile.slice(backupFile.lastIndexOf('/') + 1);
  if (!backupFile.startsWith(SHARED_CHECKSUM_DIR)) return base;
  const us = base.indexOf('_');
  const dot = base.lastIndexOf('.');
  if (us < 0 || dot < us) return base;
  return base.slice(0, us) + base.slice(dot);
}

/**
 * Checks a file entry of meta/<id> before anything trusts it: it must be a plain file in
 * shared/, shared_checksum/ or this backup's own private dir, and restore to a RocksDB file name.
 */
export function validateBackupFileName(name: string, backupId: number, metaFile: string): void {
  const bad = (why: string) => corruption(`${metaFile}: bad file entry ${JSON.stringify(name.slice(0, 200))}: ${why}`, { file: metaFile, backupId });
  let rest: string;
  if (name.startsWith(SHARED_CHECKSUM_DIR)) rest = name.slice(SHARED_CHECKSUM_DIR.length);
  else if (name.startsWith(SHARED_DIR)) rest = name.slice(SHARED_DIR.length);
  else if (name.startsWith(privateDir(backupId))) rest = name.slice(privateDir(backupId).length);
  else throw bad(`not in shared/, shared_checksum/ or ${privateDir(backupId)}`);
  if (!isPlainFileName(rest)) throw bad('not a plain file name');
  if (!parseDbFileName(dbFileNameOf(name))) throw bad('does not restore to a RocksDB file name');
}
