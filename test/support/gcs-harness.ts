// What the GCS provider's test files share: fake-gcs-server behind the fault proxy, envs on
// fresh prefixes through it, and a plain client that reads objects behind cairn's back.
import { after, before } from 'node:test';
import { Storage } from '@google-cloud/storage';
import type { GcsServer } from './gcs-server.ts';
import { startGcsFaultProxy, type GcsFaultProxy } from './gcs-fault-proxy.ts';
import { GcsEnv, openGcsEnv, type GcsEnvOptions } from '../../providers/gcs/index.ts';

const MiB = 1 << 20;
let seq = 0;

export interface GcsHarness {
  /** Set once the suite's `before` has run. */
  s: GcsServer;
  proxy: GcsFaultProxy;
  raw: Storage;
  /** A fresh prefix, small thresholds (1 MiB, 256 KiB chunks); through the fault proxy unless direct. Clears the proxy's rules. */
  open(opts?: GcsEnvOptions & { direct?: boolean }): Promise<{ env: GcsEnv; prefix: string }>;
  rawCrc(key: string): Promise<string | undefined>;
  rawExists(key: string): Promise<boolean>;
}

/** Call inside a describe(): starts the proxy before its tests and stops it after. */
export function useGcsHarness(server: () => GcsServer): GcsHarness {
  const h = {
    async open(opts: GcsEnvOptions & { direct?: boolean } = {}) {
      const prefix = `t${++seq}`;
      const env = (await openGcsEnv(new URL(`gs://${h.s.bucket}/${prefix}`), {
        apiEndpoint: opts.direct ? h.s.endpoint : h.proxy.endpoint,
        projectId: h.s.projectId,
        resumableThreshold: MiB,
        chunkSize: 256 * 1024,
        retry: { maxRetries: 3, maxRetryDelay: 1 },
        ...opts,
      })) as GcsEnv;
      h.proxy.clearRules();
      return { env, prefix };
    },
    async rawCrc(key: string) {
      const [md] = await h.raw.bucket(h.s.bucket).file(key).getMetadata();
      return md.crc32c;
    },
    async rawExists(key: string) {
      const [e] = await h.raw.bucket(h.s.bucket).file(key).exists();
      return e;
    },
  } as GcsHarness;
  before(async () => {
    h.s = server();
    h.proxy = await startGcsFaultProxy(h.s.endpoint);
    h.raw = new Storage({ apiEndpoint: h.s.endpoint, projectId: h.s.projectId });
  });
  after(async () => {
    await h.proxy?.stop();
  });
  return h;
}
