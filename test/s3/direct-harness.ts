// MinIO behind the fault proxy, for the tests of cairn's own requests (direct-head, direct-list):
// each env gets its own proxy, so each test sees exactly its requests, and whether each went
// through the SDK (its amz-sdk-invocation-id header) or was cairn's own.
import { before, after } from 'node:test';
import { S3Env, type S3EnvOptions } from '../../providers/s3/index.ts';
import { startS3Server, type S3Server } from '../support/s3-servers.ts';
import { startFaultProxy, type FaultProxy, type FaultRule, type LoggedRequest } from '../support/fault-proxy.ts';

export const viaSdk = (r: LoggedRequest) => r.headers['amz-sdk-invocation-id'] !== undefined;

export type EnvVia = (o?: S3EnvOptions & { rules?: FaultRule[]; prefix?: string }) => Promise<{ proxy: FaultProxy; env: S3Env }>;

/** Starts MinIO for the enclosing suite; `envVia` makes an env (prefix `<base>-<n>` unless given) behind a proxy of its own. */
export function minioBehindProxies(base: string, defaults: S3EnvOptions = {}): EnvVia {
  let server: S3Server;
  const proxies: FaultProxy[] = [];
  const envs: S3Env[] = [];
  before(async () => {
    server = (await startS3Server('minio'))!;
  });
  after(async () => {
    await Promise.all(envs.map((e) => e.close()));
    await Promise.all(proxies.map((p) => p.stop()));
    await server?.stop();
  });
  let n = 0;
  return async (o = {}) => {
    const { rules = [], prefix = `${base}-${++n}`, ...rest } = o;
    const proxy = await startFaultProxy({ target: server.endpoint, rules, lifetimeMs: 300_000 });
    proxies.push(proxy);
    const env = new S3Env(`s3://${server.bucket}/${prefix}`, {
      endpoint: proxy.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      checksum: 'crc32c',
      maxAttempts: 2,
      ...defaults,
      ...rest,
    });
    envs.push(env);
    return { proxy, env };
  };
}

export async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
