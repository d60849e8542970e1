// A backup whose upload memory budget is tiny (a couple of parts, or less than one) still
// completes and restores byte for byte: writes wait for memory instead of failing, and no write
// keeps memory another one waits for. Shared by the S3 (MinIO) and GCS wiring files.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BackupEnv } from '../../src/env.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { fakeWal, writeFakeDb } from './fake-db.ts';

const MiB = 1 << 20;

/** `open(budget)` gives a fresh, empty location whose uploads share `budget` bytes. */
export function runMemoryBudgetSuite(label: string, budgets: { name: string; bytes: number }[], open: (budget: number) => Promise<BackupEnv>): void {
  for (const [k, budget] of budgets.entries()) {
    // The first budget also sees a backup stopped midway first: had it kept memory, the backup
    // after it through the same env would wait forever (the test's timeout).
    const stopFirst = k === 0;
    it(`${label}: a backup of several large files with a budget of ${budget.name}${stopFirst ? ', after one stopped midway,' : ''} completes and restores byte-identical`, { timeout: 300_000 }, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cairn-budget-'));
      const db = join(dir, 'db');
      const out = join(dir, 'restored');
      const env = await open(budget.bytes);
      try {
        // Four multipart-sized tables at once (4 threads), a small one and a WAL.
        const tables = [11, 12, 13, 14].map((n, i) => ({ number: n, data: randomBytes(12 * MiB + i * 1000) }));
        tables.push({ number: 15, data: randomBytes(3000) });
        await writeFakeDb(db, { tables, wals: [{ number: 20, data: fakeWal(9) }], manifestNumber: 16, optionsNumber: 17, logNumber: 20, lastSequence: 9 });
        const engine = await BackupEngine.open({ env, maxBackgroundOperations: 4 });
        try {
          if (stopFirst) {
            const ac = new AbortController();
            const stopped = engine.createBackup(db, { signal: ac.signal, onProgress: (ev) => { if (ev.bytesDone > 0) ac.abort(); } });
            await assert.rejects(stopped, (e: unknown) => isCairnError(e, 'Incomplete') || isCairnError(e, 'Aborted'));
          }
          const { id } = await engine.createBackup(db);
          await engine.restore({ backupId: id, dbDir: out });
        } finally {
          await engine.close();
        }
        // Every file a backup takes (not IDENTITY, LOCK and the info LOG, as in RocksDB).
        const names = (await readdir(db)).filter((n) => !['IDENTITY', 'LOCK', 'LOG'].includes(n)).sort();
        assert.deepEqual((await readdir(out)).sort(), names);
        for (const n of names) assert.ok((await readFile(join(out, n))).equals(await readFile(join(db, n))), `${n} differs after the round trip`);
      } finally {
        await env.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
}
