// npm run bench:resume (also run at the end of `npm run bench` for local disk and of
// `npm run bench:s3` for MinIO and fake-gcs-server): what resumed work transfers, against a full
// run, with real `cairn` processes:
//   - a backup SIGKILLed at 80% of its bytes (seen in its --progress json events), run again
//     (each kill RESUME_KILLS times, default 5, the median shown):
//     bytes uploaded by the second run / bytes of a full backup (target <= 25%);
//   - a restore killed at 80%, run again: bytes downloaded / a full restore's (target <= 25%);
//   - a restore over yesterday's restore of the DB, today's DB having one new table file per 10:
//     bytes downloaded / a full restore's (target <= 15%).
// Requests by verb come from --metrics-file. Usage: node bench/resume.ts [local,minio,gcs]
// Env: BENCH_DIR (default /tmp/cairn-bench), RESUME_KEYS (default 240000 keys of 1000 bytes in
// 8 MB table files, ~30 files), THREADS (default 4), RESUME_KILLS (default 5).
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server, type S3Server } from '../test/support/s3-servers.ts';
import { startGcsServer, type GcsServer } from '../test/support/gcs-server.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'src/cli/main.ts');
const W = path.join(process.env.BENCH_DIR ?? '/tmp/cairn-bench', 'resume');
const KEYS = Number(process.env.RESUME_KEYS ?? 240_000);
const T = String(process.env.THREADS ?? 4);
// What a killed run leaves depends on which files were in flight at the kill (one more or one
// fewer file of 34 moves the share by ~3 points), so each kill is repeated and the median shown.
const KILLS = Number(process.env.RESUME_KILLS ?? 5);
const targets = (process.argv[2] ?? 'local').split(',');

interface Outcome { code: number | null; signal: string | null; json: Record<string, number>; requests: Record<string, number>; secs: number; killedAt?: number }

let runNo = 0;
function cairn(vars: NodeJS.ProcessEnv, args: string[], killAt?: number): Promise<Outcome> {
  const metrics = path.join(W, `run-${++runNo}.prom`);
  const started = performance.now();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', cli, ...args, '--json', '--progress', 'json', '--metrics-file', metrics], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...vars },
  });
  let stdout = '';
  let stderr = '';
  let killedAt: number | undefined;
  child.stdout.on('data', (d) => (stdout += d));
  createInterface({ input: child.stderr }).on('line', (line) => {
    if (!line.startsWith('{')) {
      stderr += line + '\n';
      return;
    }
    const ev = JSON.parse(line);
    if (killAt !== undefined && killedAt === undefined && ev.event === 'progress' && ev.bytesDone >= killAt * ev.bytesTotal) {
      killedAt = ev.bytesDone / ev.bytesTotal;
      child.kill('SIGKILL');
    }
  });
  return new Promise((resolve, reject) => child.once('close', (code, signal) => {
    const secs = (performance.now() - started) / 1000;
    if (killAt === undefined && code !== 0) return reject(new Error(`cairn ${args.join(' ')} exited ${code}: ${stderr}`));
    if (killAt !== undefined && signal !== 'SIGKILL') return reject(new Error(`cairn ${args.join(' ')} ended (${code}) before the kill: ${stderr}`));
    const requests: Record<string, number> = {};
    if (fs.existsSync(metrics)) {
      for (const m of fs.readFileSync(metrics, 'utf8').matchAll(/^cairn_last_run_requests\{[^}]*verb="(\w+)"[^}]*\} (\d+)$/gm)) requests[m[1]] = Number(m[2]);
    }
    resolve({ code, signal, json: stdout ? JSON.parse(stdout) : {}, requests, secs, killedAt });
  }));
}

function dbBench(db: string, keys: number, existing: boolean): void {
  // (fill* benchmarks refuse an existing DB; overwrite adds to it.)
  execFileSync('db_bench', [`--db=${db}`, `--benchmarks=${existing ? 'overwrite' : 'fillrandom'}`, `--num=${keys}`, '--value_size=1000', '--key_size=16', '--compression_type=none',
    '--write_buffer_size=8388608', '--target_file_size_base=8388608', '--disable_auto_compactions=1', `--use_existing_db=${existing ? 1 : 0}`,
    '--stats_interval_seconds=0', '--disable_wal=0', '--sync=0'], { stdio: 'ignore' });
}

const tables = (db: string) => fs.readdirSync(db).filter((n) => n.endsWith('.sst')).length;
const fresh = (d: string) => { fs.rmSync(d, { recursive: true, force: true }); return d; };
const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(1)}%`;
const reqs = (r: Record<string, number>) => Object.entries(r).filter(([, n]) => n > 0).map(([v, n]) => `${v} ${n}`).join(', ') || '-';

/** One kill and its resumed run: the share of a full run's bytes the resumed run transferred. */
interface Killed {
  killedAt: number;
  share: number;
  resumed: Outcome;
}

/** The run with the median share (the lower middle one of an even count). */
const medianKill = (runs: Killed[]): Killed => [...runs].sort((a, b) => a.share - b.share)[(runs.length - 1) >> 1]!;
const killsNote = (runs: Killed[]) => {
  if (runs.length < 2) return '';
  const shares = runs.map((r) => r.share).sort((a, b) => a - b);
  return ` (median of ${runs.length} kills: ${pct(shares[0]!, 1)}-${pct(shares.at(-1)!, 1)})`;
};

async function benchTarget(label: string, url: (sub: string) => string, vars: NodeJS.ProcessEnv): Promise<string[]> {
  const yesterday = path.join(W, 'db-yesterday');
  const today = path.join(W, 'db-today');
  const out: string[] = [];
  const row = (what: string, ratio: string, target: string, o: Outcome, full: Outcome) =>
    out.push(`| ${label} | ${what} | ${ratio} | ${target} | ${o.secs.toFixed(2)} s (full ${full.secs.toFixed(2)} s) | ${reqs(o.requests)} (full: ${reqs(full.requests)}) |`);

  // Backup: full, then killed at 80% into another directory and resumed, KILLS times.
  const full = await cairn(vars, ['backup', '--db', today, '--backup-dir', url('full'), '--threads', T]);
  const backups: Killed[] = [];
  for (let i = 0; i < KILLS; i++) {
    const killed = await cairn(vars, ['backup', '--db', today, '--backup-dir', url(`killed${i}`), '--threads', T], 0.8);
    const resumed = await cairn(vars, ['backup', '--db', today, '--backup-dir', url(`killed${i}`), '--threads', T]);
    if (resumed.json.size !== full.json.size) throw new Error('the resumed backup differs in size from the full one');
    backups.push({ killedAt: killed.killedAt!, share: resumed.json.copiedBytes / full.json.copiedBytes, resumed });
  }
  const mb = medianKill(backups);
  row(`backup killed at ${pct(mb.killedAt, 1)}, resumed${killsNote(backups)}`, pct(mb.share, 1), '<= 25%', mb.resumed, full);

  // Restore: full, then killed at 80% and resumed, KILLS times.
  const size = full.json.size;
  const rfull = await cairn(vars, ['restore', '--backup-dir', url('full'), '--db', fresh(path.join(W, 'r-full')), '--threads', T]);
  const restores: Killed[] = [];
  for (let i = 0; i < KILLS; i++) {
    const rdir = fresh(path.join(W, 'r-killed'));
    const rkilled = await cairn(vars, ['restore', '--backup-dir', url('full'), '--db', rdir, '--threads', T], 0.8);
    const rresumed = await cairn(vars, ['restore', '--backup-dir', url('full'), '--db', rdir, '--threads', T]);
    restores.push({ killedAt: rkilled.killedAt!, share: (size - rresumed.json.bytesReused) / size, resumed: rresumed });
  }
  const mr = medianKill(restores);
  row(`restore killed at ${pct(mr.killedAt, 1)}, resumed${killsNote(restores)}`, pct(mr.share, 1), '<= 25%', mr.resumed, rfull);

  // Restore over yesterday's restore: back up yesterday's DB, restore it, then restore today's over it.
  await cairn(vars, ['backup', '--db', yesterday, '--backup-dir', url('days'), '--threads', T]);
  const over = fresh(path.join(W, 'r-over'));
  await cairn(vars, ['restore', '--backup-dir', url('days'), '--db', over, '--threads', T]);
  await cairn(vars, ['backup', '--db', today, '--backup-dir', url('days'), '--threads', T]);
  const rover = await cairn(vars, ['restore', '--backup-dir', url('days'), '--db', over, '--threads', T]);
  row(`restore over yesterday's DB (${tables(today) - tables(yesterday)} new of ${tables(today)} tables)`, pct(size - rover.json.bytesReused, size), '<= 15%', rover, rfull);
  const a = fs.readdirSync(over).sort();
  const b = fs.readdirSync(path.join(W, 'r-full')).sort();
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error('the restore over yesterday\'s DB holds other files than a fresh restore');
  for (const n of b) if (!fs.readFileSync(path.join(over, n)).equals(fs.readFileSync(path.join(W, 'r-full', n)))) throw new Error(`${n} differs after the restore over yesterday's DB`);
  return out;
}

async function main(): Promise<void> {
  fs.mkdirSync(W, { recursive: true });
  const yesterday = path.join(W, 'db-yesterday');
  const today = path.join(W, 'db-today');
  const stamp = path.join(W, `db.done.${KEYS}`);
  if (!fs.existsSync(stamp)) {
    console.log(`== making yesterday's DB (${KEYS} keys) and today's (one new table file per 10), once; cached in ${W}`);
    fresh(yesterday);
    dbBench(yesterday, KEYS, false);
    fresh(today);
    fs.cpSync(yesterday, today, { recursive: true });
    // Yesterday's WAL is flushed into a table of its own when today's run opens the DB: about
    // one new table file per 10 in all.
    dbBench(today, Math.round(KEYS / 8), true);
    fs.writeFileSync(stamp, '');
  }
  console.log(`== today's DB: ${tables(today)} table files, ${tables(today) - tables(yesterday)} of them new since yesterday's; ${T} threads`);
  const lines = ['| target | run | transferred / a full run | target | time | requests |', '|---|---|---:|---|---|---|'];
  let minio: S3Server | undefined;
  let gcs: GcsServer | undefined;
  try {
    for (const label of targets) {
      const tag = `${label}-${Date.now()}`;
      if (label === 'local') {
        const base = fresh(path.join(W, 'backups'));
        lines.push(...(await benchTarget(label, (s) => path.join(base, s), {})));
        fresh(base);
      } else if (label === 'minio') {
        minio = await startS3Server('minio');
        if (!minio) throw new Error('MinIO is not installed: bash scripts/install-test-deps');
        const s = minio;
        lines.push(...(await benchTarget(label, (sub) => `s3://${s.bucket}/${tag}/${sub}`,
          { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: s.region, AWS_CA_BUNDLE: undefined })));
      } else if (label === 'gcs') {
        gcs = await startGcsServer();
        if (!gcs) throw new Error('fake-gcs-server is not installed: bash scripts/install-test-deps');
        const s = gcs;
        lines.push(...(await benchTarget(label, (sub) => `gs://${s.bucket}/${tag}/${sub}`, { CAIRN_GCS_ENDPOINT: s.endpoint })));
      } else {
        throw new Error(`unknown target ${label} (local, minio, gcs)`);
      }
    }
  } finally {
    await minio?.stop();
    await gcs?.stop();
    for (const d of ['r-full', 'r-killed', 'r-over']) fresh(path.join(W, d));
    for (const f of fs.readdirSync(W)) if (f.endsWith('.prom')) fs.rmSync(path.join(W, f));
  }
  console.log('== resumed work: bytes transferred against a full run');
  console.log(lines.join('\n'));
}

await main();
