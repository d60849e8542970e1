// The names RocksDB gives the files in a DB directory (file/filename.cc), so a backup can
// tell tables, blobs, WALs and metadata apart from anything else found there.

export type DbFileType =
  | 'table'
  | 'blob'
  | 'wal'
  | 'manifest'
  | 'current'
  | 'options'
  | 'optionsTemp'
  | 'identity'
  | 'lock'
  | 'infoLog'
  | 'temp';

export interface ParsedDbFileName {
  type: DbFileType;
  number: number;
}

const DIGITS = /^[0-9]+$/;

// RocksDB parses into a u64; file numbers past 2^53 never happen in practice, and a
// rounded number would silently name the wrong file, so such names are rejected.
function decimal(s: string): number | undefined {
  if (!DIGITS.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

const SUFFIX_TYPES: Record<string, DbFileType> = {
  log: 'wal',
  sst: 'table',
  ldb: 'table', // tables written by LevelDB, still opened by RocksDB
  blob: 'blob',
  dbtmp: 'temp', // e.g. the CURRENT being replaced, 000012.dbtmp
};

/**
 * Classifies a basename the way RocksDB's ParseFileName does, with the default info log
 * prefix "LOG". `number` is 0 where the name carries none; for `LOG.old.<ts>` it is the
 * timestamp, as in RocksDB. Stricter than RocksDB in one way: trailing junk after an
 * OPTIONS or LOG.old number makes the name unknown instead of being ignored.
 */
export function parseDbFileName(name: string): ParsedDbFileName | undefined {
  switch (name) {
    case 'CURRENT':
      return { type: 'current', number: 0 };
    case 'IDENTITY':
      return { type: 'identity', number: 0 };
    case 'LOCK':
      return { type: 'lock', number: 0 };
    case 'LOG':
    case 'LOG.old':
      return { type: 'infoLog', number: 0 };
  }
  if (name.startsWith('LOG.old.')) {
    const n = decimal(name.slice('LOG.old.'.length));
    return n === undefined ? undefined : { type: 'infoLog', number: n };
  }
  if (name.startsWith('MANIFEST-')) {
    const n = decimal(name.slice('MANIFEST-'.length));
    return n === undefined ? undefined : { type: 'manifest', number: n };
  }
  if (name.startsWith('OPTIONS-')) {
    const rest = name.slice('OPTIONS-'.length);
    const temp = rest.endsWith('.dbtmp');
    const n = decimal(temp ? rest.slice(0, -'.dbtmp'.length) : rest);
    return n === undefined ? undefined : { type: temp ? 'optionsTemp' : 'options', number: n };
  }
  const dot = name.indexOf('.');
  if (dot <= 0) return undefined;
  const n = decimal(name.slice(0, dot));
  const type = Object.hasOwn(SUFFIX_TYPES, name.slice(dot + 1)) ? SUFFIX_TYPES[name.slice(dot + 1)] : undefined;
  return n === undefined || type === undefined ? undefined : { type, number: n };
}

function checkNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid RocksDB file number: ${n}`);
}

// "%06llu": at least six digits, more when the number needs them.
function pad6(n: number): string {
  checkNumber(n);
  return String(n).padStart(6, '0');
}

export const tableFileName = (n: number): string => `${pad6(n)}.sst`;
export const blobFileName = (n: number): string => `${pad6(n)}.blob`;
export const walFileName = (n: number): string => `${pad6(n)}.log`;
export const manifestFileName = (n: number): string => `MANIFEST-${pad6(n)}`;
export const optionsFileName = (n: number): string => `OPTIONS-${pad6(n)}`;
