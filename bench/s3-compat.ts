// Part of `npm run bench:s3` (also runnable alone: node bench/s3-compat.ts): cairn against
// SeaweedFS with the default CAIRN_S3_CHECKSUM=auto (whatever write path the probe picks there),
// and the CPU cost of the compatible (MD5) write path: the same backup to MinIO with
// CAIRN_S3_CHECKSUM=crc32c and =md5, user and system CPU from /usr/bin/time. Not a test.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server, type S3Server } from '../test/support/s3-servers.ts';
import { S3Env } from '../providers/s3/index.ts';
import { cairnCli } from './cairn-cli.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface CompatBenchOptions {
  /** The DB directory and its size in bytes. */
  db: string;
  bytes: number;
  /** Scratch directory (restores go below it). */
  work: string;
  threads: number;
  /** The cairn CLI: node and its arguments (the built one in bench:s3). */
  cli: string[];
  /** A running MinIO for the MD5 cost runs. */
  minio: S3Server;
  reps?: number;
}

interface Run { secs: number; user: number; sys: number; rss: number }

function s3Env(s: S3Server): Record<string, string> {
  return { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: s.region };
}

function run(o: CompatBenchOptions, args: string[], env: Record<string, string>): Run {
  spawnSync('sync');
  const tf = path.join(o.work, 'bench-s3-compat.time');
  const { AWS_CA_BUNDLE: _ca, ...base } = process.env;
  const r = spawnSync('/usr/bin/time', ['-o', tf, '-f', '%e %U %S %M', process.execPath, ...o.cli, ...args], { env: { ...base, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`cairn ${args[0]} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`);
  const [secs, user, sys, kb] = fs.readFileSync(tf, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { secs, user, sys, rss: kb / 1024 };
}

/** Empties a prefix (the runs would otherwise fill the disk: every run uploads the whole DB). */
async function emptyPrefix(s: S3Server, prefix: string): Promise<void> {
  const env = new S3Env(`s3://${s.bucket}/${prefix}`, { endpoint: s.endpoint, region: s.region, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey }, checksum: 'crc32c' });
  try {
    const names: string[] = [];
    for await (const f of env.list('')) names.push(f.name);
    await env.delete(names);
  } finally {
    await env.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];

function report(name: string, bytes: number, runs: Run[]): Run {
  const m: Run = { secs: median(runs.map((r) => r.secs)), user: median(runs.map((r) => r.user)), sys: median(runs.map((r) => r.sys)), rss: Math.max(...runs.map((r) => r.rss)) };
  const spread = runs.length > 1 ? ` (median of ${runs.length})` : '';
  console.log(`${name.padEnd(40)} ${m.secs.toFixed(2).padStart(7)} s ${(bytes / 1048576 / Math.max(m.secs, 0.01)).toFixed(0).padStart(6)} MB/s ${m.rss.toFixed(0).padStart(6)} MiB  user ${m.user.toFixed(2)} s sys ${m.sys.toFixed(2)} s${spread}`);
  return m;
}

const fresh = (d: string) => {
  fs.rmSync(d, { recursive: true, force: true });
  return d;
};

export async function benchCompat(o: CompatBenchOptions): Promise<void> {
  const T = String(o.threads);
  const reps = o.reps ?? 3;
  const seaweed = await startS3Server('seaweedfs');
  if (!seaweed) throw new Error('SeaweedFS is not installed: bash scripts/install-s3-servers.sh seaweedfs');
  try {
    const env = s3Env(seaweed);
    const url = `s3://${seaweed.bucket}/cairn`;
    console.log(`== S3 (SeaweedFS ${seaweed.version}), CAIRN_S3_CHECKSUM=auto`);
    const check = spawnSync(process.execPath, [...o.cli, 'check', '--backup-dir', url, '--json'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    console.log(`write path: ${(JSON.parse(check.stdout) as { writePath?: string }).writePath ?? check.stderr.trim()}`);
    report('cairn backup → SeaweedFS', o.bytes, [run(o, ['backup', '--db', o.db, '--backup-dir', url, '--threads', T], env)]);
    const out = path.join(o.work, 'seaweedfs-restore');
    report('cairn restore ← SeaweedFS', o.bytes, [run(o, ['restore', '--backup-dir', url, '--db', fresh(out), '--threads', T], env)]);
    fresh(out);
  } finally {
    await seaweed.stop();
  }

  console.log(`== CPU of the write path: a full backup to MinIO, CAIRN_S3_CHECKSUM=crc32c vs md5 (${reps} each, alternating)`);
  const runs: Record<'crc32c' | 'md5', Run[]> = { crc32c: [], md5: [] };
  for (let i = 0; i < reps; i++) {
    for (const mode of ['crc32c', 'md5'] as const) {
      // A fresh prefix each time: every byte is uploaded.
      runs[mode].push(run(o, ['backup', '--db', o.db, '--backup-dir', `s3://${o.minio.bucket}/cpu-${mode}-${i}`, '--threads', T], { ...s3Env(o.minio), CAIRN_S3_CHECKSUM: mode }));
      await emptyPrefix(o.minio, `cpu-${mode}-${i}`);
    }
  }
  const c = report('cairn backup, crc32c', o.bytes, runs.crc32c);
  const m = report('cairn backup, md5 (Content-MD5 added)', o.bytes, runs.md5);
  const gib = o.bytes / 1024 ** 3;
  const extra = m.user + m.sys - (c.user + c.sys);
  console.log(`MD5 path: ${extra >= 0 ? '+' : ''}${extra.toFixed(2)} s CPU (${((extra / (c.user + c.sys)) * 100).toFixed(0)}%), ${(extra / gib).toFixed(2)} s per GiB; wall ${((m.secs / c.secs - 1) * 100).toFixed(0)}%`);
}

if (import.meta.main) {
  const W = process.env.BENCH_DIR ?? '/tmp/cairn-bench';
  const db = path.join(W, 'db');
  if (!fs.existsSync(path.join(db, 'CURRENT'))) throw new Error(`no DB at ${db}: run npm run bench first`);
  const bytes = fs.readdirSync(db, { withFileTypes: true }).filter((e) => e.isFile()).reduce((a, e) => a + fs.statSync(path.join(db, e.name)).size, 0);
  const minio = await startS3Server('minio');
  if (!minio) throw new Error('MinIO is not installed');
  const work = fs.mkdtempSync(path.join(process.env.BENCH_WORK ?? W, 's3-compat-'));
  const built = path.join(root, 'dist/src/cli/cairn.js');
  const cli = fs.existsSync(built) ? cairnCli(root) : ['--disable-warning=ExperimentalWarning', path.join(root, 'src/cli/main.ts')];
  try {
    console.log(`== DB ${db}: ${(bytes / 1048576).toFixed(0)} MiB; cli ${cli.at(-1)}`);
    await benchCompat({ db, bytes, work, threads: Number(process.env.THREADS ?? 4), cli, minio, reps: Number(process.env.REPS ?? 3) });
  } finally {
    await minio.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
