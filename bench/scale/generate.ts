// Generates a large backup directory in RocksDB's layout, as N daily backups of a DB with F live
// table files would leave it: every day `churn` table files are replaced by new ones (compaction),
// so the directory holds D distinct shared_checksum files over the N backups. Manifests are
// schema version 1, written with cairn's encoder format (one line per file); file contents are
// tiny, with the size their name carries and the CRC32C their manifests record, so both RocksDB's
// BackupEngine and cairn accept every backup. Deterministic: the same spec gives the same bytes.
//
// Cached: a directory with a complete marker is reused; a partial one (killed generator) is
// made again from scratch.
//
// CLI: node bench/scale/generate.ts <backups>x<files>[:<distinct>] [outDir]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '../../src/crc32c.ts';
import { prng } from '../../test/support/prng.ts';

export interface ScaleSpec {
  backups: number;
  /** Live table files per backup. */
  files: number;
  /** Distinct table files over all backups (files + the churn of every day after the first). */
  distinct: number;
}

export interface Generated {
  dir: string;
  spec: ScaleSpec;
  /** Lines of all manifests together (one per file entry). */
  manifestLines: number;
  sharedFiles: number;
  metaBytes: number;
  sharedBytes: number;
  /** Seconds the generation took (when it made the cached directory, if cached). */
  seconds: number;
  cached: boolean;
}

const MARKER = '.generated.json';
const GENERATOR_VERSION = 1;

/** Same default churn as 60 x 40k -> 50k distinct (0.42 % of the files a day). */
export function parseSpec(s: string): ScaleSpec {
  const m = /^(\d+)x(\d+)(?::(\d+))?$/.exec(s);
  if (!m) throw new Error(`bad spec ${JSON.stringify(s)}: want <backups>x<files>[:<distinct>], e.g. 60x40000:50000`);
  const backups = Number(m[1]);
  const files = Number(m[2]);
  const distinct = m[3] ? Number(m[3]) : Math.round(files + (files * (backups - 1) * 10_000) / (40_000 * 59));
  if (backups < 1 || files < 1 || distinct < files) throw new Error(`bad spec ${s}: need backups >= 1, files >= 1, distinct >= files`);
  return { backups, files, distinct };
}

export const specName = (s: ScaleSpec) => `${s.backups}x${s.files}-${s.distinct}`;

const B36 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** A 20-character db_session_id as RocksDB makes them (base 36, upper case). */
function sessionId(rand: () => number): string {
  let s = '';
  for (let i = 0; i < 20; i++) s += B36[Math.floor(rand() * 36)];
  return s;
}

const pad6 = (n: number) => String(n).padStart(6, '0');

export async function generate(spec: ScaleSpec, root: string, log: (s: string) => void = () => {}): Promise<Generated> {
  const dir = path.join(root, specName(spec));
  // Beside the directory, not in it: gc and RocksDB would take it for a stray file.
  const markerPath = dir + MARKER;
  if (fs.existsSync(markerPath)) {
    const m = JSON.parse(fs.readFileSync(markerPath, 'utf8')) as Generated & { version: number };
    if (m.version === GENERATOR_VERSION) return { ...m, dir, cached: true }; // seconds: of the generation that made it
  }
  const t0 = performance.now();
  fs.rmSync(dir, { recursive: true, force: true });
  for (const d of ['meta', 'private', 'shared_checksum']) fs.mkdirSync(path.join(dir, d), { recursive: true });

  const rand = prng(0xca1e5 ^ spec.backups ^ (spec.files << 8));
  // Bytes that file contents are cut from: cheap to make, different for each file.
  const pool = Buffer.alloc(1 << 16);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  const content = (number: number, size: number): Buffer => {
    const off = (number * 7919) % (pool.length - size);
    const b = Buffer.from(pool.subarray(off, off + size));
    b.writeUInt32LE(number >>> 0, 0);
    return b;
  };

  let nextNumber = 10;
  let sharedBytes = 0;
  let sharedFiles = 0;
  // The DB's live table files, as manifest lines; replaced in place by the daily churn.
  const live: string[] = new Array(spec.files);
  const replacedOn = new Int32Array(spec.files);
  const newTable = (session: string): string => {
    const number = nextNumber++;
    const size = 64 + Math.floor(rand() * 1984);
    const name = `shared_checksum/${pad6(number)}_s${session}_${size}.sst`;
    const data = content(number, size);
    fs.writeFileSync(path.join(dir, name), data);
    sharedBytes += size;
    sharedFiles++;
    return `${name} crc32 ${crc32c(data)}\n`;
  };

  let manifestLines = 0;
  let metaBytes = 0;
  const extra = spec.distinct - spec.files;
  const t1 = 1767225600; // 2026-01-01
  for (let day = 1; day <= spec.backups; day++) {
    const session = sessionId(rand);
    if (day === 1) {
      for (let i = 0; i < spec.files; i++) live[i] = newTable(session);
    } else {
      // Spread the extra files evenly over the days after the first, to the exact total.
      const n = Math.floor(((day - 1) * extra) / (spec.backups - 1)) - Math.floor(((day - 2) * extra) / (spec.backups - 1));
      for (let k = 0; k < n; k++) {
        let pos: number;
        do pos = Math.floor(rand() * spec.files);
        while (replacedOn[pos] === day);
        replacedOn[pos] = day;
        live[pos] = newTable(session);
      }
    }
    // This backup's private files, as RocksDB's BackupEngine copies them.
    const manifestNo = nextNumber++;
    const optionsNo = nextNumber++;
    const priv = path.join(dir, 'private', String(day));
    fs.mkdirSync(priv);
    const privLines: string[] = [];
    const addPrivate = (name: string, data: Buffer) => {
      fs.writeFileSync(path.join(priv, name), data);
      privLines.push(`private/${day}/${name} crc32 ${crc32c(data)}\n`);
    };
    addPrivate(`MANIFEST-${pad6(manifestNo)}`, content(manifestNo, 200 + Math.floor(rand() * 1800)));
    addPrivate('CURRENT', Buffer.from(`MANIFEST-${pad6(manifestNo)}\n`));
    addPrivate(`OPTIONS-${pad6(optionsNo)}`, Buffer.from(`# generated by cairn's bench:scale\n[Version]\n  rocksdb_version=7.8.3\n  options_file_version=1.1\n`));

    const count = spec.files + privLines.length;
    const meta = Buffer.from(`${t1 + day * 86400}\n${day * 1_000_000}\n${count}\n${live.join('')}${privLines.join('')}`);
    fs.writeFileSync(path.join(dir, 'meta', String(day)), meta);
    manifestLines += count;
    metaBytes += meta.length;
    if (day % 30 === 0 || day === spec.backups) log(`  day ${day}/${spec.backups}: ${sharedFiles} table files, ${(metaBytes / 1048576).toFixed(0)} MiB of manifests`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const out: Generated = { dir, spec, manifestLines, sharedFiles, metaBytes, sharedBytes, seconds, cached: false };
  fs.writeFileSync(markerPath, JSON.stringify({ ...out, version: GENERATOR_VERSION }));
  return out;
}

if (import.meta.main) {
  const spec = parseSpec(process.argv[2] ?? '60x40000:50000');
  const root = process.argv[3] ?? path.join(import.meta.dirname, '..', '.work', 'scale');
  const g = await generate(spec, root, console.log);
  console.log(JSON.stringify(g));
}
