// MinIO for bench:scale, started by hand on a data directory the bench keeps: the generated
// backup directory is uploaded once into a pristine data directory (cached between runs), and
// every run that changes the bucket works on a copy of that directory, so no run pays for the
// upload again and every run starts from the same objects.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Agent } from 'node:http';
import { freePort, TOOLS } from '../../test/support/s3-servers.ts';
import { fanOut } from '../../src/io/fan-out.ts';

export const MINIO_USER = 'cairn-bench';
export const MINIO_SECRET = 'cairn-bench-secret';
export const BUCKET = 'scale';

export interface Minio {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startMinio(dataDir: string): Promise<Minio> {
  const bin = path.join(TOOLS, 'bin', 'minio');
  if (!fs.existsSync(bin)) throw new Error(`no MinIO at ${bin}: bash scripts/install-s3-servers.sh`);
  const port = await freePort();
  const consolePort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, MINIO_ROOT_USER: MINIO_USER, MINIO_ROOT_PASSWORD: MINIO_SECRET, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off', MINIO_CI_CD: '1', MINIO_REGION: 'us-east-1' };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
  const log = fs.openSync(`${dataDir}.log`, 'a');
  const child = spawn(bin, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'], { env, detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (sig: NodeJS.Signals) => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
  process.once('exit', () => kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`MinIO exited early; see ${dataDir}.log`);
    try {
      if ((await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(2000) })).status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { kill('SIGKILL'); throw new Error(`MinIO not ready after 60 s; see ${dataDir}.log`); }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    endpoint,
    stop: async () => {
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export const s3Env = (endpoint: string) => ({ AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: MINIO_USER, AWS_SECRET_ACCESS_KEY: MINIO_SECRET, AWS_REGION: 'us-east-1', AWS_CA_BUNDLE: undefined });

// Objects carry a CRC32C as cairn's own uploads do, so verify --server-checksum has one to compare.
const UPLOAD_VERSION = 2;

function* walk(root: string, rel = ''): Generator<string> {
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) yield* walk(root, r);
    else if (e.isFile()) yield r;
  }
}

/** A data directory holding `srcDir` in bucket BUCKET under `prefix`; uploaded once, then reused. */
export async function pristineDataDir(srcDir: string, dataDir: string, prefix: string, log: (s: string) => void): Promise<{ dir: string; uploadSecs: number; objects: number }> {
  const marker = `${dataDir}.uploaded.json`;
  if (fs.existsSync(marker)) {
    const m = JSON.parse(fs.readFileSync(marker, 'utf8')) as { objects: number; version?: number };
    if (m.version === UPLOAD_VERSION) return { dir: dataDir, objects: m.objects, uploadSecs: 0 };
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const m = await startMinio(dataDir);
  const t0 = performance.now();
  let objects = 0;
  try {
    const client = new S3Client({ endpoint: m.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_SECRET },
      requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) } });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await fanOut(walk(srcDir), async (rel) => {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${rel}`, Body: fs.readFileSync(path.join(srcDir, rel)), ChecksumAlgorithm: 'CRC32C' }));
      if (++objects % 10_000 === 0) log(`  uploaded ${objects} objects`);
    }, { concurrency: 48 });
    client.destroy();
  } finally {
    await m.stop();
  }
  const uploadSecs = (performance.now() - t0) / 1000;
  fs.writeFileSync(marker, JSON.stringify({ objects, uploadSecs, version: UPLOAD_VERSION }));
  return { dir: dataDir, uploadSecs, objects };
}

/** A fresh copy of a (stopped) MinIO data directory. */
export function copyDataDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(to), { recursive: true });
  const r = spawnSync('cp', ['-a', from, to]);
  if (r.status !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr}`);
}
