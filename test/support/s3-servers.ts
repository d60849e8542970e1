// Starts a throw-away S3 server for integration tests: MinIO (Go binary), LocalStack (S3 only, host
// mode, no Docker), moto or SeaweedFS (`weed server -s3`: master, volume, filer and S3 gateway in one
// process, as an on-prem install runs them), as installed by scripts/install-s3-servers.sh into .tools/. Each server
// gets a free loopback port, a fresh temporary data directory and a fresh bucket, runs in its own
// process group, and is killed (group-wide) by stop(), or at the latest when this process exits.
//
// Returns undefined when the server is not installed: callers decide with requireOrSkip (a missing
// server fails in CI).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

export type S3ServerKind = 'minio' | 'localstack' | 'moto' | 'seaweedfs';

export interface S3Server {
  kind: S3ServerKind;
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A fresh bucket, created for this server instance. */
  bucket: string;
  /** Data and log directory of this instance. */
  dir: string;
  /** Version string of the installed server, for messages. */
  version: string;
  /** Credentials allowed to read and list but not write (SeaweedFS only: an identity with Read and List). */
  readOnly?: { accessKeyId: string; secretAccessKey: string };
  /** Creates another bucket on the same server. */
  createBucket(name?: string): Promise<string>;
  stop(): Promise<void>;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SEAWEED_READER = { accessKeyId: 'cairn-reader', secretAccessKey: 'cairn-reader-secret' };

export const TOOLS = process.env.CAIRN_TOOLS_DIR ?? join(REPO, '.tools');

const paths = {
  minio: join(TOOLS, 'bin', 'minio'),
  localstack: join(TOOLS, 'localstack-venv', 'bin', 'python'),
  moto: join(TOOLS, 'moto-venv', 'bin', 'python'),
  seaweedfs: join(TOOLS, 'bin', 'weed'),
};

/** Whether the server binary/venv of this kind is installed. */
export function s3ServerInstalled(kind: S3ServerKind): boolean {
  return existsSync(paths[kind]);
}

function installedVersion(kind: S3ServerKind): string {
  const stamp =
    kind === 'minio' ? join(TOOLS, 'bin', '.minio-version') : kind === 'seaweedfs' ? join(TOOLS, 'bin', '.weed-version') : join(TOOLS, `${kind}-venv`, '.cairn-version');
  try {
    return readFileSync(stamp, 'utf8').trim();
  } catch {
    return 'unknown version';
  }
}

// Every started process group, killed on exit if a test forgot (or could not) stop it.
const running = new Set<ChildProcess>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const killAll = () => {
    for (const child of running) killGroup(child, 'SIGKILL');
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * A plain SDK client for a test server, for tests that look at the store behind cairn's back: no
 * retries, and no checksum the SDK would add on its own (what is sent is what the test says).
 * `overrides` changes any of it (another endpoint, such as a proxy's; retries).
 */
export function rawS3Client(server: S3Server, overrides: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...overrides,
  });
}

export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitUntil(what: string, child: ChildProcess, logFile: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited early (code ${child.exitCode ?? child.signalCode}); log ${logFile}:\n${tail(logFile)}`);
    }
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms; log ${logFile}:\n${tail(logFile)}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-40).join('\n');
  } catch {
    return '(no log)';
  }
}

async function httpOk(url: string, accept: (status: number, body: string) => boolean): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  const body = await res.text();
  return accept(res.status, body);
}

export async function startS3Server(kind: S3ServerKind): Promise<S3Server | undefined> {
  if (!s3ServerInstalled(kind)) return undefined;
  hookExit();
  try {
    return await startOnce(kind);
  } catch (e) {
    // Ports are found free, closed, and bound by the server a moment later: a server another test
    // starts meanwhile can take one (SeaweedFS needs nine), and then the probe is answered by the
    // wrong server, which refuses connections once its test stops it. Once more, on other ports.
    process.stderr.write(`# ${kind} did not start (${(e as Error).message.split('\n')[0]}); starting it again on other ports\n`);
    return await startOnce(kind);
  }
}

async function startOnce(kind: S3ServerKind): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-${kind}-`));
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  let accessKeyId = 'test';
  let secretAccessKey = 'test';
  let cmd: string;
  let args: string[];
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Keep the SDK variables of the caller's shell away from the servers.
  for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
  let probe: () => Promise<boolean>;
  let readyTimeout = 60_000; // generous: a loaded machine starts servers slowly
  /** Files outside `dir` the server leaves behind, removed by stop(). */
  const leftovers: string[] = [];

  switch (kind) {
    case 'minio': {
      accessKeyId = 'cairn-minio';
      secretAccessKey = 'cairn-minio-secret';
      const consolePort = await freePort();
      await mkdir(join(dir, 'data'));
      cmd = paths.minio;
      args = ['server', join(dir, 'data'), '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'];
      Object.assign(env, {
        MINIO_ROOT_USER: accessKeyId,
        MINIO_ROOT_PASSWORD: secretAccessKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_CI_CD: '1', // allows a data dir on the root disk
        MINIO_REGION: region,
      });
      probe = () => httpOk(`${endpoint}/minio/health/live`, (s) => s === 200);
      break;
    }
    case 'localstack': {
      await mkdir(join(dir, 'tmp'));
      cmd = paths.localstack;
      args = ['-m', 'localstack.runtime.main'];
      Object.assign(env, {
        GATEWAY_LISTEN: `127.0.0.1:${port}`,
        SERVICES: 's3',
        EAGER_SERVICE_LOADING: '1',
        DNS_ADDRESS: '0',
        PERSISTENCE: '0',
        OVERRIDE_IN_DOCKER: '0', // host mode: keep everything under FILESYSTEM_ROOT
        FILESYSTEM_ROOT: join(dir, 'fs'),
        TMPDIR: join(dir, 'tmp'),
        DISABLE_EVENTS: '1',
        SKIP_SSL_CERT_DOWNLOAD: '1',
        LOCALSTACK_CLI: '0',
        AWS_DEFAULT_REGION: region,
      });
      readyTimeout = 90_000;
      probe = () =>
        httpOk(`${endpoint}/_localstack/health`, (s, body) => {
          if (s !== 200) return false;
          const state = (JSON.parse(body) as { services?: Record<string, string> }).services?.s3;
          if (state === 'error') throw new Error('LocalStack reports its s3 service in error');
          return state === 'running' || state === 'available';
        });
      break;
    }
    case 'moto': {
      cmd = paths.moto;
      args = ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)];
      Object.assign(env, { TMPDIR: dir, MOTO_ALLOW_NONEXISTENT_REGION: 'true' });
      probe = () => httpOk(`${endpoint}/moto-api/`, (s) => s === 200);
      break;
    }
    case 'seaweedfs': {
      accessKeyId = 'cairn-seaweed';
      secretAccessKey = 'cairn-seaweed-secret';
      await mkdir(join(dir, 'data'));
      const s3Config = join(dir, 's3.json');
      await writeFile(
        s3Config,
        JSON.stringify({
          identities: [
            { name: 'cairn', credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] },
            { name: 'reader', credentials: [{ accessKey: SEAWEED_READER.accessKeyId, secretKey: SEAWEED_READER.secretAccessKey }], actions: ['Read', 'List'] },
          ],
        }),
      );
      // Every listener gets its own free port: the defaults (and gRPC's port + 10000) would collide
      // with a second instance or another test's server.
      const p = async () => String(await freePort());
      // It listens on /tmp/seaweedfs-<service>-grpc-<port>.sock too (a fixed path), and leaves
      // the master's behind when stopped.
      const grpc = async (service: string) => {
        const port = await p();
        leftovers.push(join('/tmp', `seaweedfs-${service}-grpc-${port}.sock`));
        return port;
      };
      cmd = paths.seaweedfs;
      args = [
        'server',
        '-ip=127.0.0.1',
        '-ip.bind=127.0.0.1',
        `-dir=${join(dir, 'data')}`,
        `-master.port=${await p()}`,
        `-master.port.grpc=${await grpc('master')}`,
        '-master.volumeSizeLimitMB=64', // small volumes: a test bucket never fills one
        `-volume.port=${await p()}`,
        `-volume.port.grpc=${await grpc('volume')}`,
        '-volume.max=0', // as many volumes as the disk holds (each bucket is a collection of its own)
        '-volume.preStopSeconds=0',
        '-filer',
        `-filer.port=${await p()}`,
        `-filer.port.grpc=${await grpc('filer')}`,
        '-s3',
        `-s3.port=${port}`,
        `-s3.port.grpc=${await grpc('s3')}`,
        '-s3.port.iceberg=0',
        '-s3.port.lance=0',
        `-s3.config=${s3Config}`,
      ];
      // /healthz answers once the gateway listens; writes may still fail until the volume server has
      // registered, which createBucket below waits for.
      probe = () => httpOk(`${endpoint}/healthz`, (s) => s === 200);
      readyTimeout = 60_000;
      break;
    }
  }

  const logFd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd: dir, env, detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  running.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => running.delete(child));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    // Children of the server (if any) share its group: make sure none survives.
    killGroup(child, 'SIGKILL');
    running.delete(child);
    await Promise.all(leftovers.map((f) => rm(f, { force: true })));
    if (!process.env.CAIRN_KEEP_S3_SERVER_DIR) await rm(dir, { recursive: true, force: true });
  };

  const version = installedVersion(kind);
  try {
    await waitUntil(`${kind} (${version})`, child, logFile, readyTimeout, probe);
    const client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      maxAttempts: 1,
    });
    const createBucket = async (name = `cairn-${randomBytes(5).toString('hex')}`) => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await client.send(new CreateBucketCommand({ Bucket: name }));
          return name;
        } catch (e) {
          // MinIO answers 503 for a moment after its health endpoint is up; SeaweedFS until its filer
          // and volume server have registered with the master.
          if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${kind} (${version}): CreateBucket failed: ${(e as Error).message}; log ${logFile}:\n${tail(logFile)}`, { cause: e });
          }
          await sleep(250);
        }
      }
    };
    const bucket = await createBucket();
    return {
      kind,
      endpoint,
      accessKeyId,
      secretAccessKey,
      region,
      bucket,
      dir,
      version,
      ...(kind === 'seaweedfs' ? { readOnly: SEAWEED_READER } : {}),
      createBucket,
      stop: async () => {
        client.destroy();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
