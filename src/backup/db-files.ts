// Which files of a RocksDB directory make up a backup, and how they are held still while they
// are copied. RocksDB's own BackupEngine runs inside the DB process and stops file deletions;
// cairn runs outside it, so it does what a checkpoint does: read CURRENT and the MANIFEST up to
// a record boundary, hard-link every live file it names into a private staging directory (a
// compaction or flush may delete the original, the link keeps the bytes), take WAL files up to
// their size at that moment, and start over if anything vanished or a flush retired a WAL
// before it was pinned.
//
// Guarantee (README "Hot backups"): a restore recovers the DB as of a point in time between the
// start and the end of pinning: every write whose WAL record RocksDB had written to the WAL
// file (or flushed to a table file) before cairn read that WAL's size, and no later write.
// Writes still in the DB process's WAL buffer, or made with the WAL disabled and not yet
// flushed, are not in the backup. Refused with recycle_log_file_num > 0 (RocksDB's default is 0).
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { corruption, notFound, ioError, CairnError, incomplete, throwIfAborted, isCairnError } from '../errors.ts';
import { parseDbFileName, tableFileName, blobFileName, type DbFileType } from '../rocksdb/filename.ts';
import { replayManifest, type ManifestState } from '../rocksdb/manifest.ts';
import { readLogRecords } from '../rocksdb/log-reader.ts';
import { lastSequenceInWalFile } from '../rocksdb/write-batch.ts';
import { optionValue } from '../rocksdb/options-file.ts';
import { isProcessAlive } from '../process-alive.ts';
import { dbCrc32c } from './db-checksum.ts';

export interface DbFile {
  /** File name in the DB (or WAL) directory, e.g. "000013.sst". */
  name: string;
  type: DbFileType;
  /** Absolute directory the file is read from (a staging directory when pinned). */
  dir: string;
  /** Bytes to back up: the whole file, or the prefix that existed when the set was taken. */
  size: number;
  /** Set for CURRENT and the MANIFEST prefix, which are written from memory. */
  contents?: Buffer;
  /** MANIFEST only: the file's size when it was read (it may end in a torn record). */
  observedSize?: number;
  /** Table and blob files: the crc32c the DB's MANIFEST records for them, if any (db-checksum.ts). */
  dbCrc32c?: number;
  /** Table files: the temperature the MANIFEST records (RocksDB's Temperature enum), if known. */
  temperature?: number;
}

export interface DbSnapshot {
  files: DbFile[];
  /** Latest sequence number covered by the backup (MANIFEST and WAL). */
  sequence: bigint;
  manifest: ManifestState;
  /** 'hardlink': files pinned by links; 'direct': read in place (the DB must not change). */
  pinning: 'hardlink' | 'direct';
  /** Throws if the copy cannot be trusted (direct mode: the DB changed meanwhile). */
  checkAfterCopy(): Promise<void>;
  /** Removes the staging directories. */
  release(): Promise<void>;
}

export interface SnapshotOptions {
  walDir?: string;
  backupLogFiles: boolean;
  /** Attempts before giving up on a DB that keeps changing (default 50). */
  attempts?: number;
  signal?: AbortSignal;
}

const STAGING_PREFIX = '.cairn-pin-';
// The scan reads a WAL through a fixed window (its memory does not grow with the WAL), but it is
// one more read of the WAL before the copy: past this size a WAL is copied unscanned, and the
// backup records the MANIFEST's sequence number. Well above one default write buffer (64 MiB),
// which a WAL commonly reaches and slightly exceeds.
const WAL_SCAN_LIMIT = 256 * 1024 * 1024;
const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException)?.code;
/** Link errors that mean "this filesystem or directory cannot take hard links here". */
const NO_LINKS = new Set(['EXDEV', 'EPERM', 'EACCES', 'EROFS', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/** Something vanished or moved on while pinning: the attempt starts over. */
class Moved extends Error {
  readonly missing: string;
  readonly manifest?: { name: string; size: number };
  constructor(missing: string, manifestName?: string, manifestSize?: number) {
    super(`${missing} moved`);
    this.missing = missing;
    if (manifestName !== undefined && manifestSize !== undefined) this.manifest = { name: manifestName, size: manifestSize };
  }
}

async function statSize(p: string): Promise<number | undefined> {
  try {
    const st = await fsp.stat(p);
    return st.isFile() ? st.size : undefined;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw ioError(`stat ${p}: ${(e as Error).message}`, { file: p, cause: e });
  }
}

async function readWhole(p: string, limit = Number.MAX_SAFE_INTEGER): Promise<Buffer | undefined> {
  let fh;
  try {
    fh = await fsp.open(p, 'r');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw ioError(`open ${p}: ${(e as Error).message}`, { file: p, cause: e });
  }
  try {
    const size = Math.min((await fh.stat()).size, limit);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw ioError(`list ${dir}: ${(e as Error).message}`, { file: dir, cause: e });
  }
}

/** Length of the prefix made of complete log records: a live MANIFEST may end mid-record. */
function completeRecordsEnd(data: Buffer, file: string): number {
  const it = readLogRecords(data, { file, tolerateTail: true });
  let r = it.next();
  while (!r.done) r = it.next();
  return r.value.validEnd;
}

/** Pins a file so that it can be read later whatever the DB does; undefined if it is gone. */
interface Pinner {
  readonly mode: 'hardlink' | 'direct';
  pin(dir: string, name: string): Promise<string | undefined>;
  release(): Promise<void>;
}

class DirectPinner implements Pinner {
  readonly mode = 'direct' as const;
  async pin(dir: string, name: string) {
    const p = path.join(dir, name);
    return (await statSize(p)) === undefined ? undefined : p;
  }
  async release() {}
}

class LinkPinner implements Pinner {
  readonly mode = 'hardlink' as const;
  private staging = new Map<string, string>();
  private readonly tag = `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;

  async pin(dir: string, name: string) {
    let stage = this.staging.get(dir);
    if (!stage) {
      stage = path.join(dir, this.tag);
      await fsp.mkdir(stage);
      this.staging.set(dir, stage);
    }
    const to = path.join(stage, name);
    try {
      await fsp.link(path.join(dir, name), to);
      return to;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      if (errnoOf(e) === 'EEXIST') return to;
      throw e;
    }
  }

  async release() {
    for (const stage of this.staging.values()) await fsp.rm(stage, { recursive: true, force: true });
    this.staging.clear();
  }
}

/** Staging directories left by a cairn process that no longer runs. */
async function removeStaleStaging(dir: string): Promise<void> {
  for (const n of await listDir(dir)) {
    if (!n.startsWith(STAGING_PREFIX)) continue;
    const pid = Number(n.slice(STAGING_PREFIX.length).split('-')[0]);
    if (!isProcessAlive(pid)) await fsp.rm(path.join(dir, n), { recursive: true, force: true }).catch(() => {});
  }
}

async function readCurrent(dir: string): Promise<string> {
  const buf = await readWhole(path.join(dir, 'CURRENT'), 4096);
  if (buf === undefined) throw notFound(`${dir} is not a RocksDB database: no CURRENT file`, { file: path.join(dir, 'CURRENT') });
  const current = buf.toString('latin1');
  const name = current.endsWith('\n') ? current.slice(0, -1) : '';
  const parsed = parseDbFileName(name);
  if (!parsed || parsed.type !== 'manifest' || name.includes('/')) {
    throw corruption(`${dir}/CURRENT does not name a MANIFEST: ${JSON.stringify(current.slice(0, 80))}`, { file: 'CURRENT' });
  }
  return name;
}

/**
 * CURRENT named a MANIFEST that is not there. RocksDB writes a new MANIFEST and renames CURRENT
 * to it before it deletes the old one, so if CURRENT, read again, still names it, no switch is
 * under way: the DB is damaged and retrying cannot help (ldb fails the same way at once).
 */
async function missingManifest(dir: string, manifestName: string): Promise<never> {
  if ((await readCurrent(dir)) === manifestName && (await statSize(path.join(dir, manifestName))) === undefined) {
    throw notFound(`${dir}/CURRENT names ${manifestName}, which does not exist: the DB is damaged (RocksDB cannot open it either)`, { file: manifestName });
  }
  throw new Moved(manifestName);
}

/** The oldest WAL the DB still needs, by its current MANIFEST (re-read from disk). */
async function currentMinLog(dir: string): Promise<number | undefined> {
  const name = await readCurrent(dir);
  const data = await readWhole(path.join(dir, name));
  if (!data) return undefined;
  const m = replayManifest(data.subarray(0, completeRecordsEnd(data, name)), name);
  return oldestLiveLog(m);
}

function oldestLiveLog(m: ManifestState): number {
  return m.prevLogNumber > 0 ? Math.min(m.minLogNumber, m.prevLogNumber) : m.minLogNumber;
}

async function collect(dir: string, walDir: string, opts: SnapshotOptions, pinner: Pinner): Promise<Omit<DbSnapshot, 'checkAfterCopy' | 'release' | 'pinning'>> {
  const manifestName = await readCurrent(dir);
  const pinnedManifest = await pinner.pin(dir, manifestName);
  if (!pinnedManifest) return missingManifest(dir, manifestName);
  const whole = await readWhole(pinnedManifest);
  if (!whole) throw new Moved(manifestName);
  const manifestData = whole.subarray(0, completeRecordsEnd(whole, manifestName));
  const manifest = replayManifest(manifestData, manifestName);

  // WALs first: a flush retires the oldest one within milliseconds of writing its MANIFEST edit,
  // so the window between reading the MANIFEST and pinning the WALs must be as short as possible.
  const wals: DbFile[] = [];
  if (opts.backupLogFiles) {
    const oldestLive = oldestLiveLog(manifest);
    const live = (await listDir(walDir))
      .map((f) => ({ f, p: parseDbFileName(f) }))
      .filter(({ p }) => p?.type === 'wal' && p.number >= oldestLive)
      .sort((a, b) => a.p!.number - b.p!.number);
    for (const { f } of live) {
      // A WAL that vanished was retired by a flush: the MANIFEST check after pinning notices.
      const p = await pinner.pin(walDir, f);
      const size = p === undefined ? undefined : await statSize(p);
      if (p && size) wals.push({ name: f, type: 'wal', dir: path.dirname(p), size });
    }
    // No flush may have retired a WAL between reading the MANIFEST and pinning the WALs: a
    // retired WAL's writes live in a table file this snapshot does not have.
    if ((await currentMinLog(dir)) !== oldestLive) throw new Moved('a WAL retired by a flush');
  }

  const files: DbFile[] = [];
  for (const t of manifest.tableFiles) {
    let name = tableFileName(t.number);
    let p = await pinner.pin(dir, name);
    if (!p) {
      // Files written by LevelDB-era RocksDB may still carry the .ldb extension.
      const legacy = name.replace(/\.sst$/, '.ldb');
      p = await pinner.pin(dir, legacy);
      if (p) name = legacy;
    }
    if (!p) throw new Moved(name, manifestName, whole.length);
    const size = await statSize(p);
    if (size === undefined) throw new Moved(name, manifestName, whole.length);
    if (size !== t.size) throw corruption(`${name} is ${size} bytes but ${manifestName} records ${t.size}`, { file: name });
    files.push({ name, type: 'table', dir: path.dirname(p), size, dbCrc32c: dbCrc32c(t.checksum, name, manifestName), temperature: t.temperature });
  }
  for (const b of manifest.blobFiles) {
    const name = blobFileName(b.number);
    const p = await pinner.pin(dir, name);
    const size = p === undefined ? undefined : await statSize(p);
    if (size === undefined || !p) throw new Moved(name, manifestName, whole.length);
    files.push({ name, type: 'blob', dir: path.dirname(p), size, dbCrc32c: dbCrc32c(b.checksum, name, manifestName) });
  }
  files.push({ name: manifestName, type: 'manifest', dir, size: manifestData.length, contents: manifestData, observedSize: whole.length });
  files.push({ name: 'CURRENT', type: 'current', dir, size: manifestName.length + 1, contents: Buffer.from(`${manifestName}\n`) });

  let newestOptions: { name: string; number: number } | undefined;
  for (const f of await listDir(dir)) {
    const p = parseDbFileName(f);
    if (p?.type === 'options' && (!newestOptions || p.number > newestOptions.number)) newestOptions = { name: f, number: p.number };
  }
  if (newestOptions) {
    const p = await pinner.pin(dir, newestOptions.name);
    const size = p === undefined ? undefined : await statSize(p);
    if (!p || size === undefined) throw new Moved(newestOptions.name, manifestName, whole.length);
    files.push({ name: newestOptions.name, type: 'options', dir: path.dirname(p), size });
    if (pinner.mode === 'hardlink' && wals.length > 0) await refuseRecycledWals(p, dir);
  }

  return { files: [...files, ...wals], sequence: BigInt(manifest.lastSequence), manifest };
}

/**
 * With recycle_log_file_num > 0 RocksDB reuses an obsolete WAL by renaming it and overwriting it
 * from the start: the inode a hard link holds still changes under the copy, and a write that only
 * the old WAL held could be lost from the backup. (Direct mode notices any change afterwards.)
 */
async function refuseRecycledWals(optionsPath: string, dir: string): Promise<void> {
  const text = await readWhole(optionsPath, 4 << 20);
  const n = Number(text === undefined ? 0 : (optionValue(text.toString('utf8'), 'DBOptions', 'recycle_log_file_num') ?? 0));
  if (n > 0) {
    throw new CairnError(
      'NotSupported',
      `${dir} sets recycle_log_file_num=${n}: RocksDB overwrites recycled WAL files in place, which cairn cannot hold still while a running DB writes; ` +
        'back up a checkpoint instead (--checkpoint-cmd), or skip WAL files (--no-backup-log-files) after a flush',
      { file: path.basename(optionsPath) },
    );
  }
}

/**
 * Drops WAL files without a record (RocksDB's WalManager skips them: every open of a DB leaves
 * one) and takes the newest sequence number from the others. Runs after pinning, outside the
 * race window: it reads the WALs.
 */
async function scanWals(snap: { files: DbFile[]; sequence: bigint }): Promise<void> {
  const keep: DbFile[] = [];
  for (const f of snap.files) {
    if (f.type !== 'wal' || f.size > WAL_SCAN_LIMIT) {
      keep.push(f);
      continue;
    }
    let last: number | undefined;
    try {
      last = lastSequenceInWalFile(path.join(f.dir, f.name), f.name, { size: f.size });
    } catch (e) {
      // A WAL RocksDB itself would stop replaying at is still backed up byte for byte.
      if (!isCairnError(e, 'Corruption')) throw e;
      last = -1;
    }
    if (last === undefined) continue;
    if (last > 0 && BigInt(last) > snap.sequence) snap.sequence = BigInt(last);
    keep.push(f);
  }
  snap.files = keep;
}

export async function snapshotDb(dbDir: string, opts: SnapshotOptions): Promise<DbSnapshot> {
  const dir = path.resolve(dbDir);
  const walDir = path.resolve(opts.walDir ?? dbDir);
  await readCurrent(dir); // a clear NotFound before anything else
  const attempts = opts.attempts ?? 50;
  let linksPossible = true;
  for (const d of new Set([dir, walDir])) await removeStaleStaging(d).catch(() => {});
  for (let attempt = 1; attempt <= attempts; attempt++) {
    throwIfAborted(opts.signal);
    const pinner: Pinner = linksPossible ? new LinkPinner() : new DirectPinner();
    let keep = false;
    try {
      const snap = await collect(dir, walDir, opts, pinner);
      await scanWals(snap);
      keep = true;
      return {
        ...snap,
        pinning: pinner.mode,
        checkAfterCopy: pinner.mode === 'direct' ? () => checkUnchanged(dir, snap.files) : async () => {},
        release: () => pinner.release(),
      };
    } catch (e) {
      if (NO_LINKS.has(errnoOf(e) ?? '')) {
        linksPossible = false;
        attempt--;
        continue;
      }
      if (!(e instanceof Moved)) throw e;
      // Missing while the MANIFEST that names it has not moved on: not a race, a damaged DB.
      if (e.manifest && (await readCurrent(dir)) === e.manifest.name && (await statSize(path.join(dir, e.manifest.name))) === e.manifest.size) {
        throw notFound(`live file ${e.missing} named by ${e.manifest.name} is missing from ${dir}`, { file: e.missing });
      }
      await sleep(Math.min(1000, 20 * attempt));
    } finally {
      if (!keep) await pinner.release().catch(() => {});
    }
  }
  throw incomplete(`${dir} kept changing: no consistent set of files after ${attempts} attempts`);
}

/** Direct mode only: the copy is good if no file it read changed size or vanished meanwhile. */
async function checkUnchanged(dir: string, files: DbFile[]): Promise<void> {
  const manifest = files.find((f) => f.type === 'manifest')!;
  const current = await readCurrent(dir).catch(() => undefined);
  const manifestNow = await statSize(path.join(dir, manifest.name));
  let changed = current !== manifest.name || manifestNow !== manifest.observedSize;
  for (const f of files) {
    if (changed || f.contents) continue;
    if ((await statSize(path.join(f.dir, f.name))) !== f.size) changed = true;
  }
  if (changed) {
    throw incomplete(
      `${dir} changed while being backed up and its files could not be hard-linked to hold them still ` +
        '(read-only directory or a filesystem without hard links): stop the DB, back up a checkpoint, or use --checkpoint-cmd',
    );
  }
}
