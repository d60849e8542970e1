// npm run bench:s3 — cairn against the local MinIO, side by side with `aws s3 cp --recursive`
// (Debian awscli) and `rclone copy` (Debian rclone) on the same DB, same concurrency, in one run;
// plus cairn against fake-gcs-server, and verify --server-checksum against verify --checksum.
// Not a test: numbers depend on the machine. Env: BENCH_DIR (the DB from `npm run bench`),
// THREADS (files in parallel, default 4; each peer gets the same total of requests in flight),
// BENCH_REPS (runs of each transfer, default 3: the median is reported), BENCH_BACKUP_REPS (runs of
// each upload, default BENCH_REPS: every upload writes the whole DB into MinIO again, and MinIO
// frees deleted objects' space later, so many rounds can fill a small disk), BENCH_BASELINE (the
// directory of another built checkout of cairn, whose backup and restore run in the same rounds),
// BENCH_SAME_START=1 (root only: before each transfer, the page cache is dropped and refilled with
// just what that transfer reads, so no tool runs on what the one before left in memory).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server } from '../test/support/s3-servers.ts';
import { startGcsServer } from '../test/support/gcs-server.ts';
import { benchCompat } from './s3-compat.ts';
import { cairnCli } from './cairn-cli.ts';
import { BackupEngine } from '../src/backup/engine.ts';
import { openBackupEnv } from '../src/open-env.ts';
import { registerBuiltinProviders } from '../providers/builtin.ts';

registerBuiltinProviders();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const W = process.env.BENCH_DIR ?? '/tmp/cairn-bench';
const db = path.join(W, 'db');
const T = Number(process.env.THREADS ?? 4);
const REPS = Number(process.env.BENCH_REPS ?? 3); // transfers: this disk makes single runs vary by ±15% and more
const BACKUP_REPS = Number(process.env.BENCH_BACKUP_REPS ?? REPS);
const VERIFY_REPS = 5; // the short server-checksum runs vary by ±10%
const PARTS = 4; // parts in flight per file (cairn's default); peers get T * PARTS requests
const cli = cairnCli(root);
// The hard-link directories a cairn backup of the DB holds while it runs (another one, started
// by someone else on this machine, say): not the DB's, so the peers leave them out.
const PIN_DIRS = '.cairn-pin-';
// Another checkout of cairn (built), run beside this one in the same rounds: a change's cost
// measured side by side instead of against an earlier run's figures.
const BASELINE = process.env.BENCH_BASELINE;
const SAME_START = process.env.BENCH_SAME_START === '1';
const baselineCli = cairnCli(BASELINE ?? '.');

function dirBytes(d: string): number {
  return fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isFile()).reduce((a, e) => a + fs.statSync(path.join(d, e.name)).size, 0);
}

interface Row { name: string; secs: number; rss: number; bytes: number }
const rows: Row[] = [];

interface Run { secs: number; rss: number }

function runOnce(cmd: string, args: string[], env: Record<string, string>): Run | string {
  spawnSync('sync');
  const tf = path.join(W, 'bench-s3.time');
  // Loopback http: a CA bundle from the machine's environment only confuses rclone's AWS SDK
  // ("unable to load custom CA bundle, HTTPClient's transport unsupported type").
  const { AWS_CA_BUNDLE: _ca, ...base } = process.env;
  const r = spawnSync('/usr/bin/time', ['-o', tf, '-f', '%e %M', cmd, ...args], { env: { ...base, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').filter((l) => l && !l.startsWith('Command exited')).slice(-1)[0] ?? ''}`;
  const [secs, kb] = fs.readFileSync(tf, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { secs, rss: kb / 1024 };
}

/** One command under comparison. */
interface Contender {
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  /** A peer: its failure is reported and left out of the ratios instead of stopping the bench. */
  peer?: boolean;
  /** A download: emptied before each run; a peer's must then hold every byte of the DB (cairn checks its own). */
  outDir?: string;
  /** Runs before every run but the first (an upload: empty its destination, so each run copies everything). */
  reset?: () => Promise<void>;
  /** What it reads (the DB, or its objects in MinIO's data directory): cached before it runs with BENCH_SAME_START. */
  reads?: string;
}

/** Prints one row: the median time (the range when there were several runs) and the highest peak RSS. */
function report(name: string, bytes: number, runs: Run[]): Row {
  const sorted = [...runs].sort((a, b) => a.secs - b.secs);
  const row = { name, secs: median(sorted.map((r) => r.secs)), rss: Math.max(...runs.map((r) => r.rss)), bytes };
  rows.push(row);
  const spread = runs.length > 1 ? ` (median of ${runs.length}: ${sorted[0].secs.toFixed(2)}-${sorted.at(-1)!.secs.toFixed(2)})` : '';
  console.log(`${name.padEnd(40)} ${row.secs.toFixed(2).padStart(7)} s ${(bytes / 1048576 / Math.max(row.secs, 0.01)).toFixed(0).padStart(6)} MB/s ${row.rss.toFixed(0).padStart(6)} MiB${spread}`);
  return row;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs the contenders (undefined: a place left empty) `reps` times in rounds, the order reversed every other round (this disk's
 * speed for a burst of writes depends on what was written just before), and reports each one's
 * median. A cairn failure stops the bench; a failed peer is reported and left out.
 */
async function race(bytes: number, reps: number, contenders: (Contender | undefined)[]): Promise<(Row | undefined)[]> {
  const runs = contenders.map((): Run[] => []);
  const failed = contenders.map((): string | undefined => undefined);
  for (let round = 0; round < reps; round++) {
    const order = contenders.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const c = contenders[i];
      if (c === undefined || failed[i] !== undefined) continue;
      if (round > 0) await c.reset?.();
      if (c.outDir) fresh(c.outDir);
      if (SAME_START) sameStart(c.reads);
      let r = runOnce(c.cmd, c.args, c.env ?? {});
      if (typeof r !== 'string' && c.peer && c.outDir && dirBytes(c.outDir) !== bytes) r = `${c.outDir} holds ${dirBytes(c.outDir)} bytes, not ${bytes}`;
      if (typeof r === 'string') {
        if (!c.peer) throw new Error(`${c.name} failed: ${r}`);
        failed[i] = r;
        continue;
      }
      runs[i].push(r);
    }
  }
  return contenders.map((c, i) => {
    if (c === undefined) return undefined;
    if (failed[i] !== undefined) {
      console.log(`${c.name.padEnd(40)} FAILED: ${failed[i]!.slice(0, 160)}`);
      return undefined;
    }
    return report(c.name, bytes, runs[i]);
  });
}

/** Drops the page cache and reads `dir` back into it (BENCH_SAME_START). */
function sameStart(dir: string | undefined): void {
  spawnSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  if (dir !== undefined) spawnSync('sh', ['-c', 'find "$1" -type f -exec cat {} + > /dev/null', 'sh', dir]);
}

/** Runs one short command `reps` times in a row and reports its median. */
function timed(name: string, bytes: number, cmd: string, args: string[], env: Record<string, string>, reps: number): Row {
  const runs: Run[] = [];
  for (let i = 0; i < reps; i++) {
    const r = runOnce(cmd, args, env);
    if (typeof r === 'string') throw new Error(`${name} failed: ${r}`);
    runs.push(r);
  }
  return report(name, bytes, runs);
}

/** Deletes every object under an s3:// or gs:// location (the env variables of its store must be set). */
async function emptyLocation(url: string): Promise<void> {
  const env = await openBackupEnv(url);
  const names: string[] = [];
  for await (const f of env.list('')) names.push(f.name);
  await env.delete(names);
  await env.close();
}

const fresh = (d: string) => { fs.rmSync(d, { recursive: true, force: true }); return d; };

async function main() {
  if (!fs.existsSync(path.join(db, 'CURRENT'))) throw new Error(`no DB at ${db}: run npm run bench first (it makes it)`);
  if (BASELINE && !fs.existsSync(baselineCli.at(-1)!)) throw new Error(`BENCH_BASELINE: no ${baselineCli.at(-1)} (build that checkout first: npm run build)`);
  const bytes = dirBytes(db);
  console.log(`== DB ${db}: ${(bytes / 1048576).toFixed(0)} MiB; ${T} files in parallel, ${T * PARTS} requests in flight for every tool; transfers: median of ${REPS} runs (uploads ${BACKUP_REPS}), in rounds`);
  const minio = await startS3Server('minio');
  const gcs = await startGcsServer();
  if (!minio || !gcs) throw new Error('MinIO or fake-gcs-server is not installed: bash scripts/install-test-deps');
  try {
    const s3env = { AWS_ENDPOINT_URL_S3: minio.endpoint, AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: minio.region };
    const genv = { CAIRN_GCS_ENDPOINT: gcs.endpoint };
    // For the in-process parts (emptying a destination between runs, the in-process verify).
    for (const [k, v] of Object.entries({ ...s3env, ...genv })) process.env[k] = v;
    const awsConfig = path.join(W, 'aws-config');
    // The plugin works around a botocore bug that otherwise fails some uploads (see its comment).
    fs.writeFileSync(awsConfig, `[default]\nregion = ${minio.region}\ns3 =\n  max_concurrent_requests = ${T * PARTS}\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n` +
      `[plugins]\ncli_legacy_plugin_path = ${path.join(root, 'bench/aws-plugin')}\ncairn_bench_no_expect = cairn_bench_no_expect\n`);
    const awsEnv = { ...s3env, AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
    const aws = (...a: string[]) => ({ cmd: '/usr/bin/aws', args: ['--endpoint-url', minio.endpoint, 's3', ...a, '--only-show-errors'], env: awsEnv });
    const rcloneFlags = ['--s3-provider=Minio', `--s3-endpoint=${minio.endpoint}`, `--s3-access-key-id=${minio.accessKeyId}`, `--s3-secret-access-key=${minio.secretAccessKey}`,
      `--s3-region=${minio.region}`, `--transfers=${T}`, `--s3-upload-concurrency=${PARTS}`, '--s3-chunk-size=8M', `--multi-thread-streams=${PARTS}`, '--config=/dev/null'];
    const b = minio.bucket;
    const node = process.execPath;
    const s3 = (p: string) => `s3://${b}/${p}`;
    const out = (d: string) => path.join(W, d);
    const backupArgs = (cliPath: string[], url: string) => [...cliPath, 'backup', '--db', db, '--backup-dir', url, '--threads', String(T)];
    const restoreArgs = (cliPath: string[], url: string, dir: string, ...more: string[]) => [...cliPath, 'restore', '--backup-dir', url, '--db', out(dir), '--threads', String(T), ...more];
    const emptied = (url: string) => () => emptyLocation(url);
    // Where MinIO keeps the objects under a prefix (BENCH_SAME_START reads them before a restore).
    const stored = (prefix: string) => path.join(minio.dir, 'data', b, prefix);

    console.log('== S3 (MinIO) backup');
    const [cb, ab, rb, bb] = await race(bytes, BACKUP_REPS, [
      { name: 'cairn backup', cmd: node, args: backupArgs(cli, s3('cairn')), env: s3env, reset: emptied(s3('cairn')), reads: db },
      { name: 'aws s3 cp --recursive (upload)', ...aws('cp', '--recursive', db, s3('aws'), '--exclude', `${PIN_DIRS}*`), peer: true, reset: emptied(s3('aws')), reads: db },
      { name: 'rclone copy (upload)', cmd: 'rclone', args: ['copy', db, `:s3:${b}/rclone`, `--exclude=${PIN_DIRS}*/**`, ...rcloneFlags], peer: true, reset: emptied(s3('rclone')), reads: db },
      BASELINE ? { name: 'cairn backup (baseline)', cmd: node, args: backupArgs(baselineCli, s3('base')), env: s3env, reset: emptied(s3('base')), reads: db } : undefined,
    ]);
    timed('cairn backup (no change)', bytes, node, backupArgs(cli, s3('cairn')), s3env, 1);
    console.log('== S3 (MinIO) restore');
    const [cr, crn, ar, rr, br] = await race(bytes, REPS, [
      { name: 'cairn restore', cmd: node, args: restoreArgs(cli, s3('cairn'), 's3-cairn-restore'), env: s3env, outDir: out('s3-cairn-restore'), reads: stored('cairn') },
      { name: 'cairn restore --no-sync', cmd: node, args: restoreArgs(cli, s3('cairn'), 's3-cairn-restore', '--no-sync'), env: s3env, outDir: out('s3-cairn-restore'), reads: stored('cairn') },
      ab ? { name: 'aws s3 cp --recursive (download)', ...aws('cp', '--recursive', s3('aws'), out('s3-aws-restore')), peer: true, outDir: out('s3-aws-restore'), reads: stored('aws') } : undefined,
      rb ? { name: 'rclone copy (download)', cmd: 'rclone', args: ['copy', `:s3:${b}/rclone`, out('s3-rclone-restore'), ...rcloneFlags], peer: true, outDir: out('s3-rclone-restore'), reads: stored('rclone') } : undefined,
      bb ? { name: 'cairn restore --no-sync (baseline)', cmd: node, args: restoreArgs(baselineCli, s3('base'), 's3-base-restore', '--no-sync'), env: s3env, outDir: out('s3-base-restore'), reads: stored('base') } : undefined,
    ]);
    console.log('== S3 (MinIO) verify');
    const vs = timed('cairn verify --server-checksum', bytes, node, [...cli, 'verify', '--backup-dir', s3('cairn'), '--server-checksum', '--threads', String(T), '--id', '1'], s3env, VERIFY_REPS);
    const vc = timed('cairn verify --checksum', bytes, node, [...cli, 'verify', '--backup-dir', s3('cairn'), '--checksum', '--threads', String(T), '--id', '1'], s3env, VERIFY_REPS);

    // The same two verifications inside one process: what the store's checksums save, without
    // the ~0.17 s of Node start-up and SDK loading that every CLI run pays.
    const engine = await BackupEngine.open({ env: await openBackupEnv(s3('cairn')), readOnly: true, maxBackgroundOperations: T });
    let t = performance.now();
    await engine.verifyBackup(1, { serverChecksum: true });
    const inSrv = (performance.now() - t) / 1000;
    t = performance.now();
    await engine.verifyBackup(1, { checksum: true });
    const inDl = (performance.now() - t) / 1000;
    await engine.close();
    console.log(`in-process verify: --server-checksum ${inSrv.toFixed(3)} s, --checksum ${inDl.toFixed(2)} s (${(inDl / inSrv).toFixed(0)}x)`);

    console.log('== GCS (fake-gcs-server)');
    const gs = `gs://${gcs.bucket}/cairn`;
    // fake-gcs-server keeps objects in memory: the destination is emptied before each run.
    const [gb] = await race(bytes, BACKUP_REPS, [{ name: 'cairn backup → gs://', cmd: node, args: backupArgs(cli, gs), env: genv, reset: emptied(gs) }]);
    const [gr] = await race(bytes, REPS, [{ name: 'cairn restore ← gs://', cmd: node, args: restoreArgs(cli, gs, 'gcs-cairn-restore'), env: genv, outDir: out('gcs-cairn-restore') }]);
    const gvs = timed('cairn verify --server-checksum (gs)', bytes, node, [...cli, 'verify', '--backup-dir', gs, '--server-checksum', '--id', '1'], genv, VERIFY_REPS);
    const gvc = timed('cairn verify --checksum (gs)', bytes, node, [...cli, 'verify', '--backup-dir', gs, '--checksum', '--threads', String(T), '--id', '1'], genv, VERIFY_REPS);

    const x = (peer: Row | undefined, ours: Row) => (peer ? (peer.secs / ours.secs).toFixed(2) + 'x' : 'n/a');
    const faster = (...rs: (Row | undefined)[]) => rs.filter((r): r is Row => !!r).sort((p, q) => p.secs - q.secs)[0];
    const ours = (r: Row | undefined) => r!;
    console.log('== ratios of medians (throughput of cairn / throughput of the peer; > 1: cairn faster)');
    console.log(`S3 backup:  ${x(faster(ab, rb), ours(cb))} of the faster peer (${faster(ab, rb)?.name ?? 'none ran'}); aws ${x(ab, ours(cb))}, rclone ${x(rb, ours(cb))}`);
    // The peers do not fsync what they download; `--no-sync` is cairn at the same durability.
    console.log(`S3 restore: ${x(faster(ar, rr), ours(crn))} of the faster peer (${faster(ar, rr)?.name ?? 'none ran'}) with --no-sync like the peers; aws ${x(ar, ours(crn))}, rclone ${x(rr, ours(crn))}; with fsync (default) ${x(faster(ar, rr), ours(cr))}`);
    if (bb && br) console.log(`this code / baseline (${BASELINE}): backup ${x(bb, ours(cb))}, restore --no-sync ${x(br, ours(crn))}`);
    console.log(`peak RSS: backup ${ours(cb).rss.toFixed(0)} MiB (rclone ${rb?.rss.toFixed(0) ?? 'n/a'}), restore ${Math.max(ours(cr).rss, ours(crn).rss).toFixed(0)} MiB (rclone ${rr?.rss.toFixed(0) ?? 'n/a'}); GCS backup ${ours(gb).rss.toFixed(0)}, restore ${ours(gr).rss.toFixed(0)} MiB`);
    console.log(`verify --server-checksum is ${(ours(vc).secs / ours(vs).secs).toFixed(1)}x faster than --checksum on S3, ${(ours(gvc).secs / ours(gvs).secs).toFixed(1)}x on GCS`);
    console.log(`GCS (emulator): backup ${(bytes / 1048576 / ours(gb).secs).toFixed(0)} MB/s, restore ${(bytes / 1048576 / ours(gr).secs).toFixed(0)} MB/s`);

    // SeaweedFS (auto write path) and the MD5 path's CPU cost: bench/s3-compat.ts.
    await benchCompat({ db, bytes, work: W, threads: T, cli: [...cli], minio });
  } finally {
    await minio.stop();
    await gcs.stop();
    for (const d of ['s3-cairn-restore', 's3-aws-restore', 's3-rclone-restore', 's3-base-restore', 'gcs-cairn-restore']) fresh(path.join(W, d));
  }
}

await main();
