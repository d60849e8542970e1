// npm run bench:scale — cairn on large backup directories (N daily backups of a DB with F table
// files, made by generate.ts), side by side with RocksDB's own engine (`ldb backup` of a small
// real DB into a copy of the same directory), in one run: wall time (median of several runs where
// a run is short), peak RSS, ratios to ldb's backup time, and on MinIO the requests each command
// sends, counted by a proxy in front of MinIO. Prints a table and writes bench/.work/scale-results.json.
// Not a test: numbers depend on the machine. Env: see scripts/bench-scale.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generate, parseSpec, specName, type Generated } from './generate.ts';
import { timedRun, type RunResult } from './measure.ts';
import { cairnCli } from '../cairn-cli.ts';
import { startCountingProxy, type Counts } from './counting-proxy.ts';
import { BUCKET, copyDataDir, pristineDataDir, s3Env, startMinio } from './minio.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const WORK = path.join(ROOT, 'bench', '.work');
const W = path.join(WORK, 'scale');
const RUN = path.join(W, 'run');
const RESULTS = path.join(WORK, 'scale-results.json');
const SPECS = (process.env.SCALE_SPECS ?? '60x40000:50000,365x160000').split(',').filter(Boolean);
const MINIO_SPECS = (process.env.SCALE_MINIO_SPECS ?? '60x40000:50000').split(',').filter(Boolean);
/** Where to measure (default both): local, minio. MinIO specs must be in SCALE_SPECS too. */
const WHERE = new Set((process.env.SCALE_WHERE ?? 'local,minio').split(','));
/** Commands to run (default all): ldb-backup,backup,list,verify,verify-id,purge,gc,check. */
const ONLY = process.env.SCALE_ONLY ? new Set(process.env.SCALE_ONLY.split(',')) : undefined;
const REPS = Number(process.env.SCALE_REPS ?? 3);
/** A command whose first run takes longer than this is not repeated. */
const LONG_S = Number(process.env.SCALE_LONG_S ?? 60);
const TIMEOUT_MS = Number(process.env.SCALE_TIMEOUT_S ?? 600) * 1000;
const CLI = cairnCli(ROOT);
const NODE = process.execPath;
const PREFIX = 'db1';

interface Row {
  spec: string;
  where: 'local' | 'minio';
  command: string;
  ok: boolean;
  runs: number;
  /** Median wall seconds (of ok runs). */
  secs: number;
  minSecs: number;
  maxSecs: number;
  peakRssMiB: number;
  /** secs / ldb backup's median secs on the same spec. */
  xLdbBackup?: number;
  error?: string;
  requests?: Counts;
  note?: string;
}

// Rows of the last results stay unless measured again (same spec, place and command), so specs and
// commands can be run separately (SCALE_SPECS, SCALE_ONLY) and still end up in one file.
const previous = (() => {
  try { return JSON.parse(fs.readFileSync(RESULTS, 'utf8')) as { rows: Row[]; specs: Record<string, unknown> }; } catch { return undefined; }
})();
const rows: Row[] = previous?.rows ?? [];
const info: Record<string, unknown> = {
  startedAt: new Date().toISOString(), reps: REPS, longS: LONG_S, timeoutS: TIMEOUT_MS / 1000, node: process.version, only: process.env.SCALE_ONLY,
  specs: previous?.specs ?? {},
};
const save = () => fs.writeFileSync(RESULTS, JSON.stringify({ ...info, rows }, null, 1));
const log = (s: string) => console.log(s);
const want = (k: string) => !ONLY || ONLY.has(k);

function sh(cmd: string, args: string[], opts: { quiet?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 && !opts.quiet) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return (r.stdout ?? '') + (r.stderr ?? '');
}
const linkCopy = (from: string, to: string) => { fs.rmSync(to, { recursive: true, force: true }); sh('cp', ['-al', from, to]); return to; };
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN; };

/** Accumulates the runs of one command into one row. */
class Measured {
  runs: RunResult[] = [];
  requests?: Counts;
  readonly spec: string;
  readonly where: Row['where'];
  readonly command: string;
  note?: string;
  constructor(spec: string, where: Row['where'], command: string, note?: string) {
    this.spec = spec;
    this.where = where;
    this.command = command;
    this.note = note;
  }
  /** Whether another run is worth it: none yet, or all fine and short so far. */
  again(maxRuns = REPS): boolean {
    return this.runs.length === 0 || (this.runs.length < maxRuns && this.runs.every((r) => r.ok && r.secs < LONG_S));
  }
  add(r: RunResult): RunResult {
    this.runs.push(r);
    if (!r.ok) {
      const f = path.join(W, 'failures', `${this.spec}-${this.where}-${this.command.replace(/[^a-z0-9]+/gi, '_')}.out`);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, r.stdout);
      log(`  ${this.command}: FAILED ${r.error} (its output: ${path.relative(ROOT, f)})`);
    }
    return r;
  }
  row(): Row {
    const ok = this.runs.filter((r) => r.ok);
    const secs = ok.map((r) => r.secs);
    const failed = this.runs.find((r) => !r.ok);
    return { spec: this.spec, where: this.where, command: this.command, ok: !failed, runs: this.runs.length, secs: ok.length ? median(secs) : failed!.secs,
      minSecs: Math.min(...(ok.length ? secs : [failed!.secs])), maxSecs: Math.max(...(ok.length ? secs : [failed!.secs])),
      peakRssMiB: Math.max(...this.runs.map((r) => r.rssMiB)), error: failed?.error, requests: this.requests, note: this.note };
  }
}

function record(m: Measured | undefined, ldbSecs?: number): Row | undefined {
  if (!m || m.runs.length === 0) return undefined;
  const row = m.row();
  if (ldbSecs) row.xLdbBackup = row.secs / ldbSecs;
  const same = rows.findIndex((r) => r.spec === row.spec && r.where === row.where && r.command === row.command);
  if (same >= 0) rows.splice(same, 1, row);
  else rows.push(row);
  save();
  printRow(row);
  return row;
}

function printRow(r: Row): void {
  const range = r.runs > 1 ? `${r.minSecs.toFixed(1)}-${r.maxSecs.toFixed(1)}` : '';
  const req = r.requests ? Object.entries(r.requests).filter(([, n]) => n).map(([k, n]) => `${k.split(' ')[0] === 'keys' ? 'keys deleted' : k.split(' (')[0]} ${n}`).join(', ') : '';
  log(`${r.spec.padEnd(18)} ${r.where.padEnd(6)} ${r.command.padEnd(34)} ${String(r.runs).padStart(4)} ${(r.ok ? r.secs.toFixed(2) : 'FAIL').padStart(8)} ${range.padStart(11)} ${r.peakRssMiB.toFixed(0).padStart(7)} ${(r.xLdbBackup ? r.xLdbBackup.toPrecision(2) + 'x' : '').padStart(7)}  ${r.ok ? req : `${r.error}`}${r.note ? ` [${r.note}]` : ''}`);
}
const header = () => log(`${'spec'.padEnd(18)} ${'where'.padEnd(6)} ${'command'.padEnd(34)} ${'runs'.padStart(4)} ${'median s'.padStart(8)} ${'range s'.padStart(11)} ${'RSS MiB'.padStart(7)} ${'/ ldb'.padStart(7)}  requests / error`);

/** A small real RocksDB (a few table files) to back up into the big directories. */
function smallDb(): string {
  const db = path.join(W, 'small-db');
  if (!fs.existsSync(`${db}.done`)) {
    fs.rmSync(db, { recursive: true, force: true });
    sh('db_bench', ['--benchmarks=fillrandom', `--db=${db}`, '--num=20000', '--value_size=100', '--compression_type=none', '--write_buffer_size=1048576', '--threads=1', '--use_existing_db=0', '--sync=0']);
    fs.writeFileSync(`${db}.done`, '');
  }
  // ldb opens the DB read-write: let one open replay the WAL, so every tool copies the same files.
  sh('ldb', [`--db=${db}`, 'get', 'nosuchkey'], { quiet: true });
  return db;
}

const keyCount = (db: string) => /Keys in range: (\d+)/.exec(sh('ldb', [`--db=${db}`, 'dump', '--count_only'], { quiet: true }))?.[1];

const cairn = (...args: string[]) => [...CLI, ...args] as const;
const runCairn = (args: readonly string[], env: Record<string, string | undefined> = {}, okExits?: number[]) => timedRun(NODE, [...args], { env, timeoutMs: TIMEOUT_MS, okExits });
const runLdb = (args: string[]) => timedRun('ldb', args, { timeoutMs: TIMEOUT_MS });

/** What a `list --json` run saw: number of backups and how many are corrupt. */
function listSummary(r: RunResult): string | undefined {
  try {
    const l = JSON.parse(r.stdout) as { corrupt: boolean; error?: string }[];
    const bad = l.filter((b) => b.corrupt);
    return `${l.length} backups, ${bad.length} corrupt${bad.length ? ` (first: ${bad[0].error?.slice(0, 120)})` : ''}`;
  } catch { return undefined; }
}

async function local(g: Generated, db: string): Promise<void> {
  const s = specName(g.spec);
  const dbKeys = keyCount(db);
  const ldbB = new Measured(s, 'local', 'ldb backup (RocksDB engine)', 'ldb --num_threads=1 (its default)');
  const cb = new Measured(s, 'local', 'cairn backup');
  const lsFull = new Measured(s, 'local', 'cairn list (no index: every manifest)');
  const ls = new Measured(s, 'local', 'cairn list (list index)');
  const vf = new Measured(s, 'local', 'cairn verify (sizes, every backup)');
  const vi = new Measured(s, 'local', 'cairn verify --id <new>');
  const pg = new Measured(s, 'local', 'cairn purge --keep 30');
  const gc = new Measured(s, 'local', 'cairn gc');
  const checks: string[] = [];
  let newId = g.spec.backups + 1;
  const generatedTables = fs.readdirSync(path.join(g.dir, 'shared_checksum'));
  for (let rep = 1; rep <= REPS; rep++) {
    const doLdb = want('ldb-backup') && ldbB.again();
    const doCairn = want('backup') && cb.again();
    const runL = async () => { if (doLdb) ldbB.add(await runLdb([`--db=${db}`, 'backup', `--backup_dir=${linkCopy(g.dir, path.join(RUN, 'ldb'))}`])); };
    const cairnDir = linkCopy(g.dir, path.join(RUN, 'cairn'));
    let backedUp = false;
    const runC = async () => {
      if (!doCairn) return;
      const r = cb.add(await runCairn(cairn('backup', '--db', db, '--backup-dir', cairnDir, '--json')));
      if (r.ok) { backedUp = true; newId = (JSON.parse(r.stdout) as { id: number }).id; }
    };
    // The disk absorbs a first burst of writes faster than a second: take turns going first.
    if (rep % 2) { await runL(); await runC(); } else { await runC(); await runL(); }
    let lost = 0;
    if (backedUp) {
      // A backup adds files; it must never take any of the existing backups' files away.
      const after = new Set(fs.readdirSync(path.join(cairnDir, 'shared_checksum')));
      lost = generatedTables.filter((n) => !after.has(n)).length;
      if (rep === 1 || lost > 0) checks.push(lost > 0 ? `DATA LOSS: after cairn backup ${lost} of the ${g.sharedFiles} table files of the existing backups are gone from shared_checksum/ (commands after it measured a gutted directory)` : `cairn backup kept all ${g.sharedFiles} table files of the existing backups`);
      if (lost > 0) for (const m of [lsFull, ls, vf, vi, pg, gc]) m.note = 'measured after cairn backup had deleted table files of the existing backups (see checks)';
    }
    if (rep === 1 && backedUp && want('check')) {
      const out = path.join(RUN, 'restore');
      fs.rmSync(out, { recursive: true, force: true });
      const r = await runLdb([`--db=${out}`, 'restore', `--backup_dir=${cairnDir}`]);
      checks.push(`ldb restore of cairn's backup ${newId} from the big dir: ${r.ok ? (keyCount(out) === dbKeys ? `ok, ${dbKeys} keys as in the DB` : `DIFFERENT key count ${keyCount(out)} vs ${dbKeys}`) : r.error} (${r.secs.toFixed(1)} s, ${r.rssMiB.toFixed(0)} MiB)`);
    }
    // The index list and gc measure the directory the run before them left (the index written,
    // the backups purged): in a rep where that run is not repeated (a long command runs once),
    // neither are they, or they would measure a fresh copy of the generated directory instead.
    let indexed = false;
    let purged = false;
    if (want('list') && lsFull.again()) {
      // Without the index (list-index.ts) every manifest is parsed; that run writes it again.
      indexed = true;
      fs.rmSync(path.join(cairnDir, 'meta', '.cairn-list-index'), { force: true });
      const r = lsFull.add(await runCairn(cairn('list', '--backup-dir', cairnDir, '--json')));
      if (r.ok && lsFull.runs.length === 1) checks.push(`cairn list: ${listSummary(r)}`);
    }
    if (want('list') && indexed && ls.again()) {
      const r = ls.add(await runCairn(cairn('list', '--backup-dir', cairnDir, '--json')));
      if (r.ok && ls.runs.length === 1) checks.push(`cairn list from the index: ${listSummary(r)}`);
    }
    if (want('verify') && vf.again()) vf.add(await runCairn(cairn('verify', '--backup-dir', cairnDir, '--json'), {}, [0]));
    if (want('verify-id') && backedUp && vi.again()) vi.add(await runCairn(cairn('verify', '--backup-dir', cairnDir, '--id', String(newId), '--json')));
    if (want('purge') && pg.again()) {
      purged = true;
      pg.add(await runCairn(cairn('purge', '--backup-dir', cairnDir, '--keep', '30', '--json')));
    }
    if (want('gc') && (purged || !want('purge')) && gc.again()) gc.add(await runCairn(cairn('gc', '--backup-dir', cairnDir, '--json')));
    if (rep === 1 && pg.runs[0]?.ok && want('check')) {
      const out = path.join(RUN, 'restore');
      fs.rmSync(out, { recursive: true, force: true });
      const r = await runLdb([`--db=${out}`, 'restore', `--backup_dir=${cairnDir}`]);
      checks.push(`ldb restore after cairn purge + gc: ${r.ok ? (keyCount(out) === dbKeys ? 'ok, same keys' : 'DIFFERENT key count') : r.error}`);
    }
    if (![ldbB, cb, lsFull, ls, vf, vi, pg, gc].some((m) => m.runs.length === rep)) break;
  }
  const base = record(ldbB) ?? rows.find((r) => r.spec === s && r.where === 'local' && r.command === ldbB.command);
  const ldbSecs = base?.ok ? base.secs : undefined;
  for (const m of [cb, lsFull, ls, vf, vi, pg, gc]) record(m, ldbSecs);
  for (const c of checks) log(`  check: ${c}`);
  (info.specs as Record<string, unknown>)[s] = { ...(info.specs as Record<string, object>)[s], checks };
  save();
  fs.rmSync(RUN, { recursive: true, force: true });
}

async function minio(g: Generated, db: string, ldbSecs: number | undefined): Promise<void> {
  const s = specName(g.spec);
  log(`== ${s} on MinIO: uploading once into a cached data directory (if not done yet)`);
  const pristine = await pristineDataDir(g.dir, path.join(W, `minio-${s}`), PREFIX, log);
  (info.specs as Record<string, object>)[s] = { ...(info.specs as Record<string, object>)[s], minioUpload: { objects: pristine.objects, seconds: pristine.uploadSecs } };
  log(`  ${pristine.objects} objects${pristine.uploadSecs ? `, uploaded in ${pristine.uploadSecs.toFixed(1)} s` : ' (cached)'}; every command through a request-counting proxy`);
  header();
  const dataDir = path.join(RUN, 'minio-data');
  copyDataDir(pristine.dir, dataDir);
  const server = await startMinio(dataDir);
  const proxy = await startCountingProxy(server.endpoint);
  const env = s3Env(proxy.endpoint);
  const url = `s3://${BUCKET}/${PREFIX}`;
  try {
    const one = async (m: Measured, args: readonly string[], maxRuns = 1, okExits?: number[]) => {
      while (m.again(maxRuns)) {
        proxy.take();
        const r = m.add(await runCairn(args, env, okExits));
        m.requests = proxy.take();
        if (!r.ok) break;
      }
      return m;
    };
    let newId = g.spec.backups + 1;
    // The uploaded directory has no list index: the first list parses every manifest and writes it.
    const listFull = await one(new Measured(s, 'minio', 'cairn list (no index: every manifest)'), cairn('list', '--backup-dir', url, '--json'));
    if (listFull.runs[0]?.ok) log(`  check: cairn list on MinIO: ${listSummary(listFull.runs[0])}`);
    record(listFull, ldbSecs);
    record(await one(new Measured(s, 'minio', 'cairn list (list index)'), cairn('list', '--backup-dir', url, '--json'), REPS), ldbSecs);
    if (want('verify')) record(await one(new Measured(s, 'minio', 'cairn verify (sizes, every backup)'), cairn('verify', '--backup-dir', url, '--json')), ldbSecs);
    if (want('verify')) record(await one(new Measured(s, 'minio', 'cairn verify --server-checksum (every)'), cairn('verify', '--backup-dir', url, '--server-checksum', '--json')), ldbSecs);
    const b = new Measured(s, 'minio', 'cairn backup');
    if (want('backup')) {
      await one(b, cairn('backup', '--db', db, '--backup-dir', url, '--json'));
      if (b.runs[0]?.ok) newId = (JSON.parse(b.runs[0].stdout) as { id: number }).id;
      record(b, ldbSecs);
    }
    if (want('backup')) record(await one(new Measured(s, 'minio', 'cairn backup (no change)'), cairn('backup', '--db', db, '--backup-dir', url, '--json')), ldbSecs);
    if (want('verify-id') && b.runs[0]?.ok) {
      record(await one(new Measured(s, 'minio', 'cairn verify --id <new>'), cairn('verify', '--backup-dir', url, '--id', String(newId), '--json'), REPS), ldbSecs);
      record(await one(new Measured(s, 'minio', 'cairn verify --server-checksum --id <new>'), cairn('verify', '--backup-dir', url, '--server-checksum', '--id', String(newId), '--json'), REPS), ldbSecs);
    }
    if (want('purge')) record(await one(new Measured(s, 'minio', 'cairn purge --keep 30'), cairn('purge', '--backup-dir', url, '--keep', '30', '--json')), ldbSecs);
    if (want('gc')) record(await one(new Measured(s, 'minio', 'cairn gc'), cairn('gc', '--backup-dir', url, '--json')), ldbSecs);
  } finally {
    await proxy.stop();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(RUN, { recursive: true });
  const db = smallDb();
  log(`== small DB ${db}: ${fs.readdirSync(db).length} files, ${keyCount(db)} keys; reps up to ${REPS} (commands over ${LONG_S} s run once), timeout ${TIMEOUT_MS / 1000} s per command`);
  for (const spec of SPECS.map(parseSpec)) {
    const s = specName(spec);
    log(`== ${s}: ${spec.backups} backups x ${spec.files} table files, ${spec.distinct} distinct`);
    const g = await generate(spec, W, log);
    log(`  generated ${g.cached ? `(cached; made in ${g.seconds.toFixed(1)} s)` : `in ${g.seconds.toFixed(1)} s`}: ${g.manifestLines} manifest lines, ${(g.metaBytes / 1048576).toFixed(0)} MiB of manifests, ${g.sharedFiles} table files (${(g.sharedBytes / 1048576).toFixed(0)} MiB)`);
    (info.specs as Record<string, object>)[s] = { ...(info.specs as Record<string, object>)[s], generated: { ...g, dir: path.relative(ROOT, g.dir) } };
    save();
    header();
    if (WHERE.has('local')) await local(g, db);
    if (WHERE.has('minio') && MINIO_SPECS.map((m) => specName(parseSpec(m))).includes(s)) {
      const ldb = rows.find((r) => r.spec === s && r.command.startsWith('ldb backup') && r.ok);
      await minio(g, db, ldb?.secs);
    }
  }
  log('== all rows');
  header();
  for (const r of rows) printRow(r);
  log(`results: ${path.relative(ROOT, RESULTS)}`);
}

await main();
