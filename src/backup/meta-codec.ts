// The backup manifest (`meta/<id>`), in RocksDB's text format. Written as schema version 1,
// byte for byte what RocksDB's BackupEngine writes; read in versions 1 and 2.x. Parsing is
// strict: anything RocksDB would reject, and a few things it would silently misread (leading
// zeros, trailing garbage, overflowing numbers), become a Corruption error naming the file, so
// the engine lists that backup as corrupted instead of trusting it.
import { CairnError, corruption } from '../errors.ts';

/** RocksDB caps app metadata at 1 MiB; a meta file over 10 MiB is treated as corrupt. */
export const MAX_APP_METADATA = 1024 * 1024;
export const MAX_META_FILE_SIZE = 10 * 1024 * 1024;

export interface BackupFileEntry {
  /** Relative to the backup root: private/<id>/X, shared/X or shared_checksum/X. */
  name: string;
  /** Unmasked CRC32C of the whole file; absent only in schema-2 entries without one. */
  crc32c?: number;
  /** Size, when the manifest records it (schema 2 `size` field). */
  size?: number;
  /** Schema 2 `temp` field, kept for round trips. */
  temperature?: string;
  /** Schema 2 `ni::excluded true`: the file lives in another backup directory. */
  excluded?: boolean;
}

export interface BackupMeta {
  schemaVersion: string; // "1" or "2", "2.1", …
  /** Seconds since the epoch. */
  timestamp: number;
  /** DB sequence number at backup time (approximate, as in RocksDB). */
  sequence: bigint;
  appMetadata: Buffer;
  files: BackupFileEntry[];
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const UINT64_MAX = (1n << 64n) - 1n;

function parseU64(s: string, what: string, file: string): bigint {
  if (!DECIMAL.test(s)) throw corruption(`${file}: bad ${what} ${JSON.stringify(s.slice(0, 40))}`, { file });
  const v = BigInt(s);
  if (v > UINT64_MAX) throw corruption(`${file}: ${what} out of range`, { file });
  return v;
}

function parseSafeInt(s: string, what: string, file: string): number {
  const v = parseU64(s, what, file);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corruption(`${file}: ${what} too large`, { file });
  return Number(v);
}

function parseCrc(s: string, entry: string, file: string): number {
  const v = parseU64(s, `checksum for ${entry}`, file);
  if (v > 0xffffffffn) throw corruption(`${file}: checksum for ${entry} exceeds 32 bits`, { file });
  return Number(v);
}

function decodeHex(hex: string, file: string): Buffer {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw corruption(`${file}: app metadata is not valid hex`, { file });
  }
  return Buffer.from(hex, 'hex');
}

function notSupported(msg: string, file: string): CairnError {
  return new CairnError('NotSupported', `${file}: ${msg}`, { file });
}

/** Serializes schema version 1, exactly as RocksDB's BackupMeta::StoreToFile does. */
export function encodeBackupMeta(meta: Omit<BackupMeta, 'schemaVersion'>): Buffer {
  if (meta.appMetadata.length > MAX_APP_METADATA) throw new CairnError('InvalidArgument', 'app metadata larger than 1 MiB');
  let out = `${meta.timestamp}\n${meta.sequence}\n`;
  if (meta.appMetadata.length > 0) out += `metadata ${meta.appMetadata.toString('hex').toUpperCase()}\n`;
  out += `${meta.files.length}\n`;
  for (const f of meta.files) {
    if (f.crc32c === undefined) throw new CairnError('InvalidArgument', `no checksum for ${f.name}`);
    if (/[\s]/.test(f.name)) throw new CairnError('InvalidArgument', `file name with white space: ${JSON.stringify(f.name)}`);
    out += `${f.name} crc32 ${f.crc32c >>> 0}\n`;
  }
  return Buffer.from(out, 'utf8');
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z_0-9.:]*$/;

/** Parses a meta file; `file` names it in errors (e.g. "meta/3"). */
export function decodeBackupMeta(data: Buffer, file: string): BackupMeta {
  if (data.length > MAX_META_FILE_SIZE) throw corruption(`${file}: larger than ${MAX_META_FILE_SIZE} bytes`, { file });
  const text = data.toString('utf8');
  if (text.includes('\0') || Buffer.byteLength(text, 'utf8') !== data.length) {
    throw corruption(`${file}: not a text file`, { file });
  }
  if (text.length === 0) throw corruption(`${file}: empty`, { file });
  if (!text.endsWith('\n')) throw corruption(`${file}: truncated (no final newline)`, { file });
  const lines = text.slice(0, -1).split('\n');
  let i = 0;
  const next = (what: string): string => {
    if (i >= lines.length) throw corruption(`${file}: truncated before ${what}`, { file });
    return lines[i++];
  };

  let schemaVersion = '1';
  if (lines[0].startsWith('schema_version ')) {
    const ver = lines[0].slice('schema_version '.length);
    if (ver !== '2' && !/^2\.[0-9]+$/.test(ver)) throw notSupported(`unsupported schema version ${JSON.stringify(ver)}`, file);
    schemaVersion = ver;
    i++;
  }
  const v2 = schemaVersion !== '1';
  const timestamp = parseSafeInt(next('timestamp'), 'timestamp', file);
  const sequence = parseU64(next('sequence number'), 'sequence number', file);

  let appMetadata: Buffer = Buffer.alloc(0);
  let count: number | undefined;
  while (count === undefined) {
    const line = next('number of files');
    if (line === '') throw corruption(`${file}: unexpected empty line`, { file });
    if (line[0] >= '0' && line[0] <= '9') {
      count = parseSafeInt(line, 'number of files', file);
      break;
    }
    const sp = line.indexOf(' ');
    if (sp < 0) throw corruption(`${file}: expected number of files or a field, got ${JSON.stringify(line.slice(0, 40))}`, { file });
    const name = line.slice(0, sp);
    const value = line.slice(sp + 1);
    if (name === 'metadata') {
      appMetadata = decodeHex(value, file);
      if (appMetadata.length > MAX_APP_METADATA) throw corruption(`${file}: app metadata larger than 1 MiB`, { file });
    } else if (!v2) {
      throw corruption(`${file}: expected number of files or "metadata", got field ${JSON.stringify(name)}`, { file });
    } else if (name.startsWith('ni::')) {
      throw notSupported(`unrecognized non-ignorable field ${name}`, file);
    }
    // other schema-2 fields are ignorable by design
  }
  if (count > lines.length) throw corruption(`${file}: claims ${count} files but has ${lines.length} lines`, { file });

  const files: BackupFileEntry[] = [];
  let footer = false;
  while (i < lines.length) {
    const line = lines[i++];
    if (v2 && line === '// FOOTER') {
      footer = true;
      break;
    }
    if (line === '') throw corruption(`${file}: empty line instead of a file entry`, { file });
    const parts = line.split(' ');
    const name = parts[0];
    const entry: BackupFileEntry = { name };
    if (!v2) {
      if (parts.length < 3) throw corruption(`${file}: checksum missing for ${name}`, { file });
      if (parts[1] !== 'crc32') throw corruption(`${file}: unknown checksum type for ${name}`, { file });
      if (parts.length > 3) throw corruption(`${file}: extra data for entry ${name}`, { file });
      entry.crc32c = parseCrc(parts[2], name, file);
    } else {
      if (parts.length % 2 !== 1) throw corruption(`${file}: bad number of fields for entry ${name}`, { file });
      for (let k = 1; k < parts.length; k += 2) {
        const field = parts[k];
        const value = parts[k + 1];
        if (field === 'crc32') entry.crc32c = parseCrc(value, name, file);
        else if (field === 'size') entry.size = parseSafeInt(value, `size of ${name}`, file);
        else if (field === 'temp') entry.temperature = value;
        else if (field === 'ni::excluded') {
          if (value !== 'true' && value !== 'false') throw notSupported(`bad value ${JSON.stringify(value)} for ni::excluded`, file);
          entry.excluded = value === 'true';
        } else if (field.startsWith('ni::')) throw notSupported(`unrecognized non-ignorable field ${field} for ${name}`, file);
        else if (!FIELD_NAME.test(field)) throw corruption(`${file}: bad field name for ${name}`, { file });
      }
    }
    files.push(entry);
  }
  if (footer) {
    for (; i < lines.length; i++) {
      const line = lines[i];
      const sp = line.indexOf(' ');
      if (line === '' || sp < 0) throw corruption(`${file}: bad footer line`, { file });
      if (line.startsWith('ni::')) throw notSupported(`unrecognized non-ignorable footer field ${line.slice(0, sp)}`, file);
    }
  }
  // RocksDB counts only non-excluded entries against the file count in schema 1; in schema 2 the
  // count is of files_ (non-excluded) too, with excluded entries following it.
  const included = files.filter((f) => !f.excluded).length;
  if (included !== count) {
    throw corruption(`${file}: says ${count} files but lists ${included}`, { file });
  }
  return { schemaVersion, timestamp, sequence, appMetadata, files };
}
