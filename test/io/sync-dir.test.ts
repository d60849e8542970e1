import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { syncDir } from '../../src/io/sync-dir.ts';

describe('syncDir', () => {
  it('syncs an existing directory; a missing one fails with ENOENT', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-sync-'));
    try {
      await writeFile(path.join(dir, 'f'), 'x');
      await syncDir(dir);
      await assert.rejects(syncDir(path.join(dir, 'missing')), (e) => (e as NodeJS.ErrnoException).code === 'ENOENT');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
