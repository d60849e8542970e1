// Whether a RocksDB process has a DB open: RocksDB holds a POSIX record lock (fcntl F_SETLK) on
// <db>/LOCK for as long as the DB is open. Node cannot ask fcntl, but Linux lists every such lock
// in /proc/locks ("1: POSIX ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"), with the file's
// device and inode. Elsewhere the answer is "unknown" (undefined), never a guess.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** The pid holding <dbDir>/LOCK (0 when the lock is an open-file-description lock), or undefined. */
export async function dbLockHolder(dbDir: string): Promise<number | undefined> {
  let st;
  try {
    st = await fsp.stat(path.join(dbDir, 'LOCK'), { bigint: true });
  } catch {
    return undefined; // no LOCK file: no RocksDB has this DB open
  }
  let locks: string;
  try {
    locks = await fsp.readFile('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  // glibc's major()/minor() of a dev_t
  const dev = st.dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1:" "POSIX"|"OFDLCK"|"FLOCK" "ADVISORY" "WRITE" pid dev:ino start end  ("->" marks waiters)
    if (f[1] === '->') continue;
    if (f.length >= 8 && (f[1] === 'POSIX' || f[1] === 'OFDLCK') && f[5] === want) return Math.max(0, Number(f[4]));
  }
  return undefined;
}
