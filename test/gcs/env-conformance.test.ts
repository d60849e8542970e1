// The BackupEnv contract (and, when present, the engine suite) against fake-gcs-server, once with
// the default sizes and once with small thresholds so that resumable multi-chunk uploads and
// parallel ranged reads are exercised by the shared tests too.
import { after, describe } from 'node:test';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runEnvConformance, type MakeEnv } from '../support/env-conformance.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer } from '../support/gcs-server.ts';
import { openGcsEnv, type GcsEnvOptions } from '../../providers/gcs/index.ts';

const server = await startGcsServer();
const skip = requireOrSkip(server !== undefined, 'fake-gcs-server (run scripts/install-gcs-server.sh)');
after(async () => {
  await server?.stop();
});

let n = 0;
function makeEnv(opts: GcsEnvOptions): MakeEnv {
  return async () => {
    const s = server!;
    // A fresh prefix per suite: the suites share the server's bucket.
    const env = await openGcsEnv(new URL(`gs://${s.bucket}/conformance-${++n}/root`), {
      apiEndpoint: s.endpoint,
      projectId: s.projectId,
      retry: { maxRetryDelay: 1 },
      ...opts,
    });
    return { env, cleanup: async () => {} };
  };
}

const MiB = 1 << 20;
const small: GcsEnvOptions = { resumableThreshold: 1 << 20, chunkSize: 256 * 1024, readPartSize: 1 << 20, readConcurrency: 3, listPageSize: 2 };
const configs: Array<[string, GcsEnvOptions]> = [
  ['gcs (fake-gcs-server, defaults)', {}],
  ['gcs (fake-gcs-server, 1 MiB threshold, 256 KiB chunks, parallel reads, pages of 2)', small],
  ['gcs (fake-gcs-server, 256 KiB threshold, 1 MiB chunks: one-chunk sessions)', { ...small, resumableThreshold: 256 * 1024, chunkSize: MiB }],
];

if (skip) {
  describe('BackupEnv conformance: gcs', { skip }, () => {});
} else {
  for (const [label, opts] of configs) runEnvConformance(label, makeEnv(opts), { listPageSize: opts.listPageSize ?? 1000 });
  const engineSuite = fileURLToPath(new URL('../support/engine-suite.ts', import.meta.url));
  if (existsSync(engineSuite)) {
    const { runEngineSuite } = (await import(engineSuite)) as { runEngineSuite: (label: string, make: MakeEnv) => void };
    runEngineSuite('gcs (fake-gcs-server)', makeEnv(small));
  }
}
