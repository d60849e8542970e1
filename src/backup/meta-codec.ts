// The backup manifest (`meta/<id>`), in RocksDB's text format. Written as schema version 1,
// byte for byte what RocksDB's BackupEngine writes, or on request as its schema 2.1 (with sizes);
// read in versions 1 and 2.x. Parsing is
// strict: anything RocksDB would reject, and a few things it would silently misread (leading
// zeros, trailing garbage, overflowing numbers), become a Corruption error naming the file, so
// the engine lists that backup as corrupted instead of trusting it.
//
// One parser, fed chunk by chunk (BackupMetaDecoder): the engine reads manifests as streams and
// keeps only what it needs of each entry, so a directory of many large manifests opens without
// holding any of them whole. decodeBackupMeta() is that parser over one buffer.
import { isUtf8 } from 'node:buffer';
import { CairnError, corruption } from '../errors.ts';

/** RocksDB caps app metadata at 1 MiB; a meta file over 1 GiB is treated as corrupt. */
export const MAX_APP_METADATA = 1024 * 1024;
// Manifests are parsed as streams, so the limit only guards against a runaway file: a DB with
// 160k live table files writes ~11 MB manifests, which RocksDB reads without complaint.
export const MAX_META_FILE_SIZE = 1024 * 1024 * 1024;

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
  if (s.length <= 15 && DECIMAL.test(s)) return Number(s);
  const v = parseU64(s, what, file);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corruption(`${file}: ${what} too large`, { file });
  return Number(v);
}

function parseCrc(s: string, entry: string, file: string): number {
  // (The common case without BigInt: a manifest has one checksum per line, millions in a directory.)
  if (s.length <= 10 && DECIMAL.test(s)) {
    const v = Number(s);
    if (v > 0xffffffff) throw corruption(`${file}: checksum for ${entry} exceeds 32 bits`, { file });
    return v;
  }
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

/** RocksDB's Temperature enum (include/rocksdb/types.h) as StoreToFile names it in `temp` fields. */
const TEMPERATURE_NAMES: Record<number, string> = { 0x04: 'kHot', 0x08: 'kWarm', 0x0a: 'kCool', 0x0c: 'kCold', 0x10: 'kIce' };

/** The `temp` field for a temperature byte from a MANIFEST; undefined for kUnknown (0) and values unknown here. */
export function temperatureName(t: number | undefined): string | undefined {
  return t === undefined ? undefined : TEMPERATURE_NAMES[t];
}

/**
 * Serializes a manifest as RocksDB's BackupMeta::StoreToFile does: schema version 1 (the default)
 * byte for byte, or, when `schemaVersion` is 2.x, its schema 2 with the `size` of every file
 * (StoreToFile writes sizes only in tests; RocksDB's reader checks them whenever present) and
 * the `temp` of files whose temperature is known.
 */
export function encodeBackupMeta(meta: Omit<BackupMeta, 'schemaVersion'> & { schemaVersion?: string }): Buffer {
  if (meta.appMetadata.length > MAX_APP_METADATA) throw new CairnError('InvalidArgument', 'app metadata larger than 1 MiB');
  const v2 = meta.schemaVersion !== undefined && meta.schemaVersion !== '1';
  if (v2 && !/^2(\.[0-9]+)?$/.test(meta.schemaVersion!)) throw new CairnError('InvalidArgument', `cannot write schema version ${meta.schemaVersion}`);
  let out = v2 ? `schema_version ${meta.schemaVersion}\n` : '';
  out += `${meta.timestamp}\n${meta.sequence}\n`;
  if (meta.appMetadata.length > 0) out += `metadata ${meta.appMetadata.toString('hex').toUpperCase()}\n`;
  out += `${meta.files.length}\n`;
  for (const f of meta.files) {
    if (f.crc32c === undefined) throw new CairnError('InvalidArgument', `no checksum for ${f.name}`);
    if (/[\s]/.test(f.name)) throw new CairnError('InvalidArgument', `file name with white space: ${JSON.stringify(f.name)}`);
    out += `${f.name} crc32 ${f.crc32c >>> 0}`;
    if (v2) {
      if (f.size !== undefined) out += ` size ${f.size}`;
      if (f.temperature !== undefined) {
        if (/[\s]/.test(f.temperature) || f.temperature === '') throw new CairnError('InvalidArgument', `bad temperature for ${f.name}: ${JSON.stringify(f.temperature)}`);
        out += ` temp ${f.temperature}`;
      }
    }
    out += '\n';
  }
  return Buffer.from(out, 'utf8');
}

/**
 * The manifest of a new backup: in schema 1 each file's name and crc32c; in schema 2 (written as
 * RocksDB's 2.1) its size and, from `sources` (the DB files, same order), its temperature too.
 */
export function manifestOf(
  schemaVersion: 1 | 2,
  header: Pick<BackupMeta, 'timestamp' | 'sequence' | 'appMetadata'>,
  entries: readonly { name: string; size: number; crc32c: number }[],
  sources: readonly { temperature?: number }[],
): BackupMeta {
  if (schemaVersion === 1) return { schemaVersion: '1', ...header, files: entries.map(({ name, crc32c }) => ({ name, crc32c })) };
  const files = entries.map(({ name, crc32c, size }, i): BackupFileEntry => {
    const temperature = temperatureName(sources[i]?.temperature);
    return temperature === undefined ? { name, crc32c, size } : { name, crc32c, size, temperature };
  });
  return { schemaVersion: '2.1', ...header, files };
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z_0-9.:]*$/;
const DECODE_SLICE = 16 * 1024;

export type BackupMetaHeader = Omit<BackupMeta, 'files'>;

type State = 'first' | 'timestamp' | 'sequence' | 'fields' | 'entries' | 'footer';
const NEXT_WHAT: Partial<Record<State, string>> = { first: 'timestamp', timestamp: 'timestamp', sequence: 'sequence number', fields: 'number of files' };

/**
 * Parses a manifest pushed in chunks of any size, handing each file entry to `onFile` as soon as
 * its line is complete; end() checks what only the whole file can show and returns the header.
 * Errors are decodeBackupMeta's; where a manifest has several faults, the one met first in the
 * stream is reported (decodeBackupMeta checks the whole-file ones first).
 */
export class BackupMetaDecoder {
  private readonly file: string;
  private readonly onFile: (entry: BackupFileEntry) => void;
  private readonly text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private carry = '';
  private bytes = 0;
  private lastByte = -1;
  private lines = 0;
  private state: State = 'first';
  private schemaVersion = '1';
  private timestamp = 0;
  private sequence = 0n;
  private appMetadata: Buffer = Buffer.alloc(0);
  private count = 0;
  private included = 0;
  /** Lines in the whole file, when the caller knows them (the "claims N files" check comes early then). */
  private readonly lineCount: number | undefined;

  constructor(file: string, onFile: (entry: BackupFileEntry) => void, opts: { lineCount?: number } = {}) {
    this.file = file;
    this.onFile = onFile;
    this.lineCount = opts.lineCount;
  }

  /** The header, once the number of files has been read (before the first entry). */
  get header(): BackupMetaHeader | undefined {
    if (this.state !== 'entries' && this.state !== 'footer') return undefined;
    return { schemaVersion: this.schemaVersion, timestamp: this.timestamp, sequence: this.sequence, appMetadata: this.appMetadata };
  }

  push(chunk: Uint8Array): void {
    // Decoded a slice at a time: a string of a whole 1 MiB chunk would be allocated among large
    // objects, freed only by a full GC; short-lived small strings are collected young.
    for (let at = 0; at < chunk.length; at += DECODE_SLICE) this.pushSlice(chunk.subarray(at, at + DECODE_SLICE));
  }

  private pushSlice(chunk: Uint8Array): void {
    const file = this.file;
    this.bytes += chunk.length;
    if (this.bytes > MAX_META_FILE_SIZE) throw corruption(`${file}: larger than ${MAX_META_FILE_SIZE} bytes`, { file });
    if (chunk.includes(0)) throw corruption(`${file}: not a text file`, { file });
    this.lastByte = chunk[chunk.length - 1];
    let s: string;
    try {
      s = this.text.decode(chunk, { stream: true });
    } catch {
      throw corruption(`${file}: not a text file`, { file });
    }
    let start = 0;
    for (let nl = s.indexOf('\n'); nl >= 0; nl = s.indexOf('\n', start)) {
      const line = start === 0 && this.carry !== '' ? this.carry + s.slice(0, nl) : s.slice(start, nl);
      if (start === 0) this.carry = '';
      this.line(line);
      start = nl + 1;
    }
    if (start < s.length) this.carry += s.slice(start);
  }

  end(): BackupMetaHeader {
    const file = this.file;
    try {
      this.text.decode();
    } catch {
      throw corruption(`${file}: not a text file`, { file });
    }
    if (this.bytes === 0) throw corruption(`${file}: empty`, { file });
    if (this.lastByte !== 0x0a) throw corruption(`${file}: truncated (no final newline)`, { file });
    const what = NEXT_WHAT[this.state];
    if (what !== undefined) throw corruption(`${file}: truncated before ${what}`, { file });
    this.checkClaim(this.lines);
    if (this.included !== this.count) throw corruption(`${file}: says ${this.count} files but lists ${this.included}`, { file });
    return this.header!;
  }

  private checkClaim(lines: number): void {
    if (this.count > lines) throw corruption(`${this.file}: claims ${this.count} files but has ${lines} lines`, { file: this.file });
  }

  private line(line: string): void {
    const file = this.file;
    this.lines++;
    switch (this.state) {
      case 'first':
        this.state = 'timestamp';
        if (line.startsWith('schema_version ')) {
          const ver = line.slice('schema_version '.length);
          if (ver !== '2' && !/^2\.[0-9]+$/.test(ver)) throw notSupported(`unsupported schema version ${JSON.stringify(ver)}`, file);
          this.schemaVersion = ver;
          return;
        }
      // falls through: the first line is the timestamp
      case 'timestamp':
        this.timestamp = parseSafeInt(line, 'timestamp', file);
        this.state = 'sequence';
        return;
      case 'sequence':
        this.sequence = parseU64(line, 'sequence number', file);
        this.state = 'fields';
        return;
      case 'fields':
        return this.field(line);
      case 'entries':
        return this.entry(line);
      case 'footer': {
        const sp = line.indexOf(' ');
        if (line === '' || sp < 0) throw corruption(`${file}: bad footer line`, { file });
        if (line.startsWith('ni::')) throw notSupported(`unrecognized non-ignorable footer field ${line.slice(0, sp)}`, file);
        return;
      }
    }
  }

  private field(line: string): void {
    const file = this.file;
    if (line === '') throw corruption(`${file}: unexpected empty line`, { file });
    if (line[0] >= '0' && line[0] <= '9') {
      this.count = parseSafeInt(line, 'number of files', file);
      if (this.lineCount !== undefined) this.checkClaim(this.lineCount);
      this.state = 'entries';
      return;
    }
    const sp = line.indexOf(' ');
    if (sp < 0) throw corruption(`${file}: expected number of files or a field, got ${JSON.stringify(line.slice(0, 40))}`, { file });
    const name = line.slice(0, sp);
    const value = line.slice(sp + 1);
    if (name === 'metadata') {
      this.appMetadata = decodeHex(value, file);
      if (this.appMetadata.length > MAX_APP_METADATA) throw corruption(`${file}: app metadata larger than 1 MiB`, { file });
    } else if (this.schemaVersion === '1') {
      throw corruption(`${file}: expected number of files or "metadata", got field ${JSON.stringify(name)}`, { file });
    } else if (name.startsWith('ni::')) {
      throw notSupported(`unrecognized non-ignorable field ${name}`, file);
    }
    // other schema-2 fields are ignorable by design
  }

  private entry(line: string): void {
    const file = this.file;
    const v2 = this.schemaVersion !== '1';
    if (v2 && line === '// FOOTER') {
      this.state = 'footer';
      return;
    }
    if (line === '') throw corruption(`${file}: empty line instead of a file entry`, { file });
    if (!v2) {
      // `<name> crc32 <decimal>`, taken apart without split(): this runs for every line.
      const sp1 = line.indexOf(' ');
      const name = sp1 < 0 ? line : line.slice(0, sp1);
      const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
      if (sp2 < 0) throw corruption(`${file}: checksum missing for ${name}`, { file });
      if (line.slice(sp1 + 1, sp2) !== 'crc32') throw corruption(`${file}: unknown checksum type for ${name}`, { file });
      const crc = line.slice(sp2 + 1);
      if (crc.includes(' ')) throw corruption(`${file}: extra data for entry ${name}`, { file });
      this.included++;
      this.onFile({ name, crc32c: parseCrc(crc, name, file) });
      return;
    }
    const parts = line.split(' ');
    const name = parts[0];
    const entry: BackupFileEntry = { name };
    {
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
    // RocksDB counts only non-excluded entries against the file count, in both schemas.
    if (!entry.excluded) this.included++;
    this.onFile(entry);
  }
}

/** Parses a whole meta file; `file` names it in errors (e.g. "meta/3"). */
export function decodeBackupMeta(data: Buffer, file: string): BackupMeta {
  if (data.length > MAX_META_FILE_SIZE) throw corruption(`${file}: larger than ${MAX_META_FILE_SIZE} bytes`, { file });
  if (data.includes(0) || !isUtf8(data)) throw corruption(`${file}: not a text file`, { file });
  if (data.length === 0) throw corruption(`${file}: empty`, { file });
  if (data[data.length - 1] !== 0x0a) throw corruption(`${file}: truncated (no final newline)`, { file });
  let lineCount = 0;
  for (let at = data.indexOf(0x0a); at >= 0; at = data.indexOf(0x0a, at + 1)) lineCount++;
  const files: BackupFileEntry[] = [];
  const decoder = new BackupMetaDecoder(file, (f) => files.push(f), { lineCount });
  decoder.push(data);
  return { ...decoder.end(), files };
}
