import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runEngineSuite } from '../support/engine-suite.ts';
import { LocalEnv } from '../../providers/local/index.ts';

runEngineSuite('local', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-local-engine-'));
  return { env: new LocalEnv(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
