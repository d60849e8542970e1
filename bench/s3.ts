// npm run bench:s3 — cairn against the local MinIO, side by side with `aws s3 cp --recursive`
// (Debian awscli) and `rclone copy` (Debian rclone) on the same DB, same concurrency, in one run;
// plus cairn against fake-gcs-server, and verify --server-checksum against verify --checksum.
// Not a test: numbers depend on the machine. Env: BENCH_DIR (the DB from `npm run bench`),
// THREADS (files in parallel, default 4; each peer gets the same total of requests in flight).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server } from '../test/support/s3-servers.ts';
import { startGcsServer } from '../test/support/gcs-server.ts';
import { benchCompat } from './s3-compat.ts';
import { BackupEngine } from '../src/backup/engine.ts';
import { openBackupEnv } from '../src/open-env.ts';
import { registerBuiltinProviders } from '../providers/builtin.ts';

registerBuiltinProviders();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const W = process.env.BENCH_DIR ?? '/tmp/cairn-bench';
const db = path.join(W, 'db');
const T = Number(process.env.THREADS ?? 4);
const VERIFY_REPS = 5; // the short server-checksum runs vary by ±10%
const PARTS = 4; // parts in flight per file (cairn's default); peers get T * PARTS requests
const cli = [path.join(root, 'dist/src/cli/cairn.js')];

function dirBytes(d: string): number {
  return fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isFile()).reduce((a, e) => a + fs.statSync(path.join(d, e.name)).size, 0);
}

interface Row { name: string; secs: number; rss: number; bytes: number }
const rows: Row[] = [];

interface TimedOpts {
  /** A peer: its failure is reported and left out of the ratios instead of stopping the bench. */
  peer?: boolean;
  /** Runs; the median is reported (short commands vary by more than they take). */
  reps?: number;
  /** A download: the directory must then hold every byte of the DB, or the row is a failure. */
  outDir?: string;
}

function runOnce(cmd: string, args: string[], env: Record<string, string>): { secs: number; rss: number } | string {
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

/** Runs one contender (the median of `reps` runs); a peer that fails is reported and left out of the ratios. */
function timed(name: string, bytes: number, cmd: string, args: string[], env: Record<string, string> = {}, o: TimedOpts = {}): Row | undefined {
  const runs: { secs: number; rss: number }[] = [];
  for (let i = 0; i < (o.reps ?? 1); i++) {
    if (o.outDir) fresh(o.outDir);
    let r = runOnce(cmd, args, env);
    if (typeof r !== 'string' && o.outDir && dirBytes(o.outDir) !== bytes) r = `${o.outDir} holds ${dirBytes(o.outDir)} bytes, not ${bytes}`;
    if (typeof r === 'string') {
      if (!o.peer) throw new Error(`${name} failed: ${r}`);
      console.log(`${name.padEnd(40)} FAILED: ${r.slice(0, 160)}`);
      return undefined;
    }
    runs.push(r);
  }
  runs.sort((a, b) => a.secs - b.secs);
  const mid = runs[(runs.length - 1) >> 1];
  const row = { name, secs: mid.secs, rss: Math.max(...runs.map((r) => r.rss)), bytes };
  rows.push(row);
  const spread = runs.length > 1 ? ` (median of ${runs.length}: ${runs[0].secs.toFixed(2)}-${runs.at(-1)!.secs.toFixed(2)})` : '';
  console.log(`${name.padEnd(40)} ${row.secs.toFixed(2).padStart(7)} s ${(bytes / 1048576 / Math.max(row.secs, 0.01)).toFixed(0).padStart(6)} MB/s ${row.rss.toFixed(0).padStart(6)} MiB${spread}`);
  return row;
}

const fresh = (d: string) => { fs.rmSync(d, { recursive: true, force: true }); return d; };

async function main() {
  if (!fs.existsSync(path.join(db, 'CURRENT'))) throw new Error(`no DB at ${db}: run npm run bench first (it makes it)`);
  const bytes = dirBytes(db);
  console.log(`== DB ${db}: ${(bytes / 1048576).toFixed(0)} MiB; ${T} files in parallel, ${T * PARTS} requests in flight for every tool`);
  const minio = await startS3Server('minio');
  const gcs = await startGcsServer();
  if (!minio || !gcs) throw new Error('MinIO or fake-gcs-server is not installed: bash scripts/install-test-deps');
  try {
    const s3env = { AWS_ENDPOINT_URL_S3: minio.endpoint, AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: minio.region };
    const awsConfig = path.join(W, 'aws-config');
    // The plugin works around a botocore bug that otherwise fails some uploads (see its comment).
    fs.writeFileSync(awsConfig, `[default]\nregion = ${minio.region}\ns3 =\n  max_concurrent_requests = ${T * PARTS}\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n` +
      `[plugins]\ncli_legacy_plugin_path = ${path.join(root, 'bench/aws-plugin')}\ncairn_bench_no_expect = cairn_bench_no_expect\n`);
    const awsEnv = { ...s3env, AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
    const aws = (...a: string[]): [string, string[]] => ['/usr/bin/aws', ['--endpoint-url', minio.endpoint, 's3', ...a, '--only-show-errors']];
    const rcloneFlags = ['--s3-provider=Minio', `--s3-endpoint=${minio.endpoint}`, `--s3-access-key-id=${minio.accessKeyId}`, `--s3-secret-access-key=${minio.secretAccessKey}`,
      `--s3-region=${minio.region}`, `--transfers=${T}`, `--s3-upload-concurrency=${PARTS}`, '--s3-chunk-size=8M', `--multi-thread-streams=${PARTS}`, '--config=/dev/null'];
    const b = minio.bucket;
    const node = process.execPath;

    console.log('== S3 (MinIO) backup');
    const cb = timed('cairn backup', bytes, node, [...cli, 'backup', '--db', db, '--backup-dir', `s3://${b}/cairn`, '--threads', String(T)], s3env);
    const ab = timed('aws s3 cp --recursive (upload)', bytes, ...aws('cp', '--recursive', db, `s3://${b}/aws`), awsEnv, { peer: true });
    const rb = timed('rclone copy (upload)', bytes, 'rclone', ['copy', db, `:s3:${b}/rclone`, ...rcloneFlags], {}, { peer: true });
    timed('cairn backup (no change)', bytes, node, [...cli, 'backup', '--db', db, '--backup-dir', `s3://${b}/cairn`, '--threads', String(T)], s3env);
    console.log('== S3 (MinIO) restore');
    const cr = timed('cairn restore', bytes, node, [...cli, 'restore', '--backup-dir', `s3://${b}/cairn`, '--db', fresh(path.join(W, 's3-cairn-restore')), '--threads', String(T)], s3env);
    const crn = timed('cairn restore --no-sync', bytes, node, [...cli, 'restore', '--backup-dir', `s3://${b}/cairn`, '--db', fresh(path.join(W, 's3-cairn-restore')), '--threads', String(T), '--no-sync'], s3env);
    const ar = ab && timed('aws s3 cp --recursive (download)', bytes, ...aws('cp', '--recursive', `s3://${b}/aws`, fresh(path.join(W, 's3-aws-restore'))), awsEnv, { peer: true, outDir: path.join(W, 's3-aws-restore') });
    const rr = rb && timed('rclone copy (download)', bytes, 'rclone', ['copy', `:s3:${b}/rclone`, fresh(path.join(W, 's3-rclone-restore')), ...rcloneFlags], {}, { peer: true, outDir: path.join(W, 's3-rclone-restore') });
    console.log('== S3 (MinIO) verify');
    const vs = timed('cairn verify --server-checksum', bytes, node, [...cli, 'verify', '--backup-dir', `s3://${b}/cairn`, '--server-checksum', '--threads', String(T), '--id', '1'], s3env, { reps: VERIFY_REPS });
    const vc = timed('cairn verify --checksum', bytes, node, [...cli, 'verify', '--backup-dir', `s3://${b}/cairn`, '--checksum', '--threads', String(T), '--id', '1'], s3env, { reps: VERIFY_REPS });

    // The same two verifications inside one process: what the store's checksums save, without
    // the ~0.17 s of Node start-up and SDK loading that every CLI run pays.
    for (const [k, v] of Object.entries(s3env)) process.env[k] = v;
    const engine = await BackupEngine.open({ env: await openBackupEnv(`s3://${b}/cairn`), readOnly: true, maxBackgroundOperations: T });
    let t = performance.now();
    await engine.verifyBackup(1, { serverChecksum: true });
    const inSrv = (performance.now() - t) / 1000;
    t = performance.now();
    await engine.verifyBackup(1, { checksum: true });
    const inDl = (performance.now() - t) / 1000;
    await engine.close();
    console.log(`in-process verify: --server-checksum ${inSrv.toFixed(3)} s, --checksum ${inDl.toFixed(2)} s (${(inDl / inSrv).toFixed(0)}x)`);

    console.log('== GCS (fake-gcs-server)');
    const genv = { CAIRN_GCS_ENDPOINT: gcs.endpoint };
    const gb = timed('cairn backup → gs://', bytes, node, [...cli, 'backup', '--db', db, '--backup-dir', `gs://${gcs.bucket}/cairn`, '--threads', String(T)], genv);
    const gr = timed('cairn restore ← gs://', bytes, node, [...cli, 'restore', '--backup-dir', `gs://${gcs.bucket}/cairn`, '--db', fresh(path.join(W, 'gcs-cairn-restore')), '--threads', String(T)], genv);
    const gvs = timed('cairn verify --server-checksum (gs)', bytes, node, [...cli, 'verify', '--backup-dir', `gs://${gcs.bucket}/cairn`, '--server-checksum', '--id', '1'], genv, { reps: VERIFY_REPS });
    const gvc = timed('cairn verify --checksum (gs)', bytes, node, [...cli, 'verify', '--backup-dir', `gs://${gcs.bucket}/cairn`, '--checksum', '--threads', String(T), '--id', '1'], genv, { reps: VERIFY_REPS });

    const x = (peer: Row | undefined, ours: Row) => (peer ? (peer.secs / ours.secs).toFixed(2) + 'x' : 'n/a');
    const faster = (...rs: (Row | undefined)[]) => rs.filter((r): r is Row => !!r).sort((p, q) => p.secs - q.secs)[0];
    const ours = (r: Row | undefined) => r!;
    console.log('== ratios (throughput of cairn / throughput of the peer; > 1: cairn faster)');
    console.log(`S3 backup:  ${x(faster(ab, rb), ours(cb))} of the faster peer (${faster(ab, rb)?.name ?? 'none ran'}); aws ${x(ab, ours(cb))}, rclone ${x(rb, ours(cb))}`);
    // The peers do not fsync what they download; `--no-sync` is cairn at the same durability.
    console.log(`S3 restore: ${x(faster(ar, rr), ours(crn))} of the faster peer (${faster(ar, rr)?.name ?? 'none ran'}) with --no-sync like the peers; aws ${x(ar, ours(crn))}, rclone ${x(rr, ours(crn))}; with fsync (default) ${x(faster(ar, rr), ours(cr))}`);
    console.log(`verify --server-checksum is ${(ours(vc).secs / ours(vs).secs).toFixed(1)}x faster than --checksum on S3, ${(ours(gvc).secs / ours(gvs).secs).toFixed(1)}x on GCS`);
    console.log(`GCS (emulator): backup ${(bytes / 1048576 / ours(gb).secs).toFixed(0)} MB/s, restore ${(bytes / 1048576 / ours(gr).secs).toFixed(0)} MB/s`);

    // SeaweedFS (auto write path) and the MD5 path's CPU cost: bench/s3-compat.ts.
    await benchCompat({ db, bytes, work: W, threads: T, cli: [...cli], minio });
  } finally {
    await minio.stop();
    await gcs.stop();
    for (const d of ['s3-cairn-restore', 's3-aws-restore', 's3-rclone-restore', 'gcs-cairn-restore']) fresh(path.join(W, d));
  }
}

await main();
