// Which files already in the restore target can stay (RocksDB's RestoreOptions::mode): a restore
// over yesterday's restore of the same DB then downloads only the files that changed, and a
// restore that was killed, run again, downloads only what it had not yet put in place.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Crc32c } from '../crc32c.ts';
import { throwIfAborted } from '../errors.ts';
import { parseDbFileName } from '../rocksdb/filename.ts';
import { readTableProperties } from '../rocksdb/table-properties.ts';
import { fanOut } from '../io/fan-out.ts';
import { SHARED_CHECKSUM_DIR } from './layout.ts';
import type { RestoreMode } from './types.ts';

export interface KeepCandidate {
  /** The backup's file name (shared_checksum/..., shared/..., private/<id>/...). */
  name: string;
  size: number;
  crc32c?: number;
  /** Absolute path the file restores to. */
  to: string;
}

const SESSION_NAME = /^(\d+)_s([0-9A-Za-z]+)(?:_\d+)?\.[a-z]+$/;

/** The DB session id a shared_checksum/ name carries, if it was named by session. */
export function sessionIdOfBackupName(name: string): string | undefined {
  if (!name.startsWith(SHARED_CHECKSUM_DIR)) return undefined;
  return SESSION_NAME.exec(name.slice(SHARED_CHECKSUM_DIR.length))?.[2];
}

async function fileCrc32c(file: string, signal?: AbortSignal): Promise<{ crc: number; length: number }> {
  const crc = new Crc32c();
  const fh = await fsp.open(file, 'r');
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      throwIfAborted(signal);
      crc.update(chunk as Buffer);
    }
  } finally {
    await fh.close();
  }
  return { crc: crc.value, length: crc.length };
}

async function matches(c: KeepCandidate, mode: RestoreMode, signal?: AbortSignal): Promise<boolean> {
  const st = await fsp.lstat(c.to).catch(() => undefined);
  if (!st?.isFile() || st.size !== c.size) return false;
  const byChecksum = async () => {
    if (c.crc32c === undefined) return false;
    const got = await fileCrc32c(c.to, signal).catch(() => undefined);
    return got !== undefined && got.length === c.size && got.crc === c.crc32c >>> 0;
  };
  if (mode === 'verify-checksum') return byChecksum();
  const session = sessionIdOfBackupName(c.name);
  if (session === undefined) return byChecksum();
  // A file that is not a readable table (or lacks the property) is not the backup's file.
  const props = await readTableProperties(c.to).catch(() => undefined);
  return props?.dbSessionId === session;
}

/**
 * The targets (by absolute path) that may stay as they are. Only table and blob files: MANIFEST,
 * CURRENT, OPTIONS and WAL files are always written anew, as RocksDB does.
 */
export async function keptFiles(candidates: KeepCandidate[], mode: RestoreMode, concurrency: number, signal?: AbortSignal): Promise<Set<string>> {
  const kept = new Set<string>();
  if (mode === 'purge-all') return kept;
  const eligible = candidates.filter((c) => {
    const t = parseDbFileName(path.basename(c.to))?.type;
    return t === 'table' || t === 'blob';
  });
  await fanOut(eligible, async (c) => {
    if (await matches(c, mode, signal)) kept.add(c.to);
  }, { concurrency, ...(signal ? { signal } : {}) });
  return kept;
}
