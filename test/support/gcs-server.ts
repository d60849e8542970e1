// Starts fake-gcs-server (installed by scripts/install-gcs-server.sh into .tools/bin/) on a free
// loopback port, in-memory, and creates a fresh bucket. Returns undefined when the binary is
// missing, so callers can apply requireOrSkip (a failure in CI, a skip elsewhere).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const GCS_SERVER_BIN = process.env.CAIRN_FAKE_GCS_BIN || path.join(repoRoot, '.tools', 'bin', 'fake-gcs-server');

export interface GcsServer {
  /** http://127.0.0.1:PORT, to pass as apiEndpoint. */
  endpoint: string;
  projectId: string;
  /** A bucket created for this server instance. */
  bucket: string;
  /** Creates another empty bucket and returns its name. */
  createBucket(name?: string): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(endpoint: string, child: ChildProcess, output: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`fake-gcs-server exited with ${child.exitCode}: ${output()}`);
    try {
      const res = await fetch(`${endpoint}/_internal/healthcheck`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fake-gcs-server not ready at ${endpoint} after ${timeoutMs} ms: ${output()}`);
}

export async function startGcsServer(): Promise<GcsServer | undefined> {
  if (!existsSync(GCS_SERVER_BIN)) return undefined;
  const projectId = 'cairn-test';
  let lastErr: unknown;
  // The free port may be taken between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child = spawn(
      GCS_SERVER_BIN,
      // No -external-url: upload session URLs are built from the request's Host header, so they
      // point back at whatever address the client used (the server itself, or a test proxy).
      ['-scheme', 'http', '-host', '127.0.0.1', '-port', String(port), '-backend', 'memory', '-log-level', 'error', '-public-host', `127.0.0.1:${port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    // Never keep the test process alive because of the server.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    };
    try {
      await waitReady(endpoint, child, () => out);
    } catch (e) {
      lastErr = e;
      await stop();
      continue;
    }
    const createBucket = async (name = `cairn-${randomBytes(6).toString('hex')}`) => {
      const res = await fetch(`${endpoint}/storage/v1/b?project=${projectId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      if (!res.ok) throw new Error(`creating bucket ${name}: HTTP ${res.status} ${await res.text()}`);
      return name;
    };
    const bucket = await createBucket();
    return { endpoint, projectId, bucket, createBucket, stop };
  }
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}
