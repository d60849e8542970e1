// Which files of a RocksDB directory make up a backup, found the way RocksDB's checkpoint finds
// them but from outside the process: CURRENT names the MANIFEST; replaying the MANIFEST gives the
// live table and blob files and the oldest WAL still needed; the newest OPTIONS file completes it.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { corruption, notFound, ioError, CairnError } from '../errors.ts';
import { parseDbFileName, tableFileName, blobFileName, type DbFileType } from '../rocksdb/filename.ts';
import { replayManifest, type ManifestState } from '../rocksdb/manifest.ts';
import { lastSequenceInWal } from '../rocksdb/write-batch.ts';

export interface DbFile {
  /** File name in the DB (or WAL) directory, e.g. "000013.sst". */
  name: string;
  type: DbFileType;
  /** Absolute directory the file is read from. */
  dir: string;
  /** Bytes to back up: the whole file, or the prefix that existed when the set was taken. */
  size: number;
  /** Set for CURRENT, which is written from contents rather than copied. */
  contents?: Buffer;
}

export interface DbSnapshot {
  files: DbFile[];
  /** Latest sequence number covered by the backup (MANIFEST and WAL). */
  sequence: bigint;
  manifest: ManifestState;
}

async function statSize(p: string): Promise<number | undefined> {
  try {
    const st = await fsp.stat(p);
    return st.isFile() ? st.size : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`stat ${p}: ${(e as Error).message}`, { file: p, cause: e });
  }
}

async function readPrefix(p: string, size: number): Promise<Buffer> {
  const fh = await fsp.open(p, 'r');
  try {
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) throw corruption(`${p} shrank while being read`, { file: p });
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(`list ${dir}: ${(e as Error).message}`, { file: dir, cause: e });
  }
}

const WAL_SCAN_LIMIT = 64 * 1024 * 1024;

export async function snapshotDb(dbDir: string, opts: { walDir?: string; backupLogFiles: boolean }): Promise<DbSnapshot> {
  const dir = path.resolve(dbDir);
  const walDir = path.resolve(opts.walDir ?? dbDir);
  let current: string;
  try {
    current = await fsp.readFile(path.join(dir, 'CURRENT'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`${dir} is not a RocksDB database: no CURRENT file`, { file: path.join(dir, 'CURRENT') });
    throw ioError(`read ${dir}/CURRENT: ${(e as Error).message}`, { cause: e });
  }
  const manifestName = current.endsWith('\n') ? current.slice(0, -1) : '';
  const parsedManifest = parseDbFileName(manifestName);
  if (!parsedManifest || parsedManifest.type !== 'manifest' || manifestName.includes('/')) {
    throw corruption(`${dir}/CURRENT does not name a MANIFEST: ${JSON.stringify(current.slice(0, 80))}`, { file: 'CURRENT' });
  }
  const manifestPath = path.join(dir, manifestName);
  const manifestSize = await statSize(manifestPath);
  if (manifestSize === undefined) throw notFound(`${manifestPath} named by CURRENT does not exist`, { file: manifestName });
  const manifestData = await readPrefix(manifestPath, manifestSize);
  const manifest = replayManifest(manifestData, manifestName);

  const files: DbFile[] = [];
  for (const t of manifest.tableFiles) {
    let name = tableFileName(t.number);
    let size = await statSize(path.join(dir, name));
    if (size === undefined) {
      // Files written by LevelDB-era RocksDB may still carry the .ldb extension.
      const legacy = name.replace(/\.sst$/, '.ldb');
      size = await statSize(path.join(dir, legacy));
      if (size !== undefined) name = legacy;
    }
    if (size === undefined) throw notFound(`live table file ${name} named by ${manifestName} is missing from ${dir}`, { file: name });
    if (size !== t.size) throw corruption(`${name} is ${size} bytes but ${manifestName} records ${t.size}`, { file: name });
    files.push({ name, type: 'table', dir, size });
  }
  for (const b of manifest.blobFiles) {
    const name = blobFileName(b.number);
    const size = await statSize(path.join(dir, name));
    if (size === undefined) throw notFound(`live blob file ${name} named by ${manifestName} is missing from ${dir}`, { file: name });
    files.push({ name, type: 'blob', dir, size });
  }
  files.push({ name: manifestName, type: 'manifest', dir, size: manifestSize });
  files.push({ name: 'CURRENT', type: 'current', dir, size: current.length, contents: Buffer.from(`${manifestName}\n`) });

  let newestOptions: { name: string; number: number } | undefined;
  for (const f of await listDir(dir)) {
    const p = parseDbFileName(f);
    if (p?.type === 'options' && (!newestOptions || p.number > newestOptions.number)) newestOptions = { name: f, number: p.number };
  }
  if (newestOptions) {
    const size = await statSize(path.join(dir, newestOptions.name));
    if (size !== undefined) files.push({ name: newestOptions.name, type: 'options', dir, size });
  }

  let sequence = BigInt(manifest.lastSequence);
  if (opts.backupLogFiles) {
    const oldestLive = manifest.prevLogNumber > 0 ? Math.min(manifest.minLogNumber, manifest.prevLogNumber) : manifest.minLogNumber;
    const wals = (await listDir(walDir))
      .map((f) => ({ f, p: parseDbFileName(f) }))
      .filter(({ p }) => p?.type === 'wal' && p.number >= oldestLive)
      .sort((a, b) => a.p!.number - b.p!.number);
    for (const { f } of wals) {
      const size = await statSize(path.join(walDir, f));
      // Recycled or deleted since listing, or empty: RocksDB's WalManager skips WAL files with
      // no record (every open of a DB leaves one), and so does cairn.
      if (!size) continue;
      // Read for the sequence number only while that stays cheap: it is informational.
      if (size <= WAL_SCAN_LIMIT) {
        let last: number | undefined;
        try {
          last = lastSequenceInWal(await readPrefix(path.join(walDir, f), size), f);
        } catch (e) {
          // A WAL RocksDB itself would stop replaying at is still backed up byte for byte.
          if (!(e instanceof CairnError)) throw e;
          last = -1;
        }
        if (last === undefined) continue;
        if (last > 0 && BigInt(last) > sequence) sequence = BigInt(last);
      }
      files.push({ name: f, type: 'wal', dir: walDir, size });
    }
  }
  return { files, sequence, manifest };
}
