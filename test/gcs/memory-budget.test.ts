// Backups to fake-gcs-server within a tiny upload memory budget (test/support/memory-budget-suite.ts).
import { describe, after } from 'node:test';
import { openGcsEnv } from '../../providers/gcs/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { startGcsServer } from '../support/gcs-server.ts';
import { runMemoryBudgetSuite } from '../support/memory-budget-suite.ts';

const MiB = 1 << 20;
const server = await startGcsServer();
const skip = requireOrSkip(server !== undefined, 'fake-gcs-server (run scripts/install-gcs-server.sh)');
after(async () => {
  await server?.stop();
});
let seq = 0;

describe('upload memory budget on fake-gcs-server', { skip }, () => {
  // A resumable upload here holds one 1 MiB chunk.
  runMemoryBudgetSuite('gcs', [{ name: '2 uploads', bytes: 2 * MiB }, { name: 'less than one upload', bytes: MiB }], async (memoryBudget) =>
    openGcsEnv(new URL(`gs://${server!.bucket}/budget${++seq}`), {
      apiEndpoint: server!.endpoint,
      projectId: server!.projectId,
      resumableThreshold: MiB,
      chunkSize: MiB,
      memoryBudget,
    }),
  );
});
