import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runEnvConformance } from '../support/env-conformance.ts';
import { LocalEnv } from '../../providers/local/index.ts';

runEnvConformance('local', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-local-'));
  return { env: new LocalEnv(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
