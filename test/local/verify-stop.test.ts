// When one check of a verification fails, the others are stopped and waited for: nothing is still
// reading (or starts reading) the backup directory once verifyBackup / verifyBackups has rejected.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import type { BackupEnv } from '../../src/env.ts';
import { CairnError, isCairnError } from '../../src/errors.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';

describe('verification stops every check when one fails', () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-verify-stop-'));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  for (const how of ['verifyBackup', 'verifyBackups'] as const) {
    it(`${how}: no read runs or starts after it rejected`, async () => {
      const db = path.join(work, `db-${how}`);
      await writeFakeDb(db, {
        tables: Array.from({ length: 12 }, (_, k) => table(10 + k, 5_000)),
        wals: [{ number: 40, data: fakeWal(10) }],
        manifestNumber: 5,
        optionsNumber: 6,
        logNumber: 40,
        lastSequence: 100,
      });
      const local = new LocalEnv(path.join(work, `backups-${how}`));
      const w = await BackupEngine.open({ env: local });
      const b = await w.createBackup(db);
      await w.close();

      // Every read but one hangs until its signal aborts; that one fails with an IOError (not a
      // problem of the file, a failure of the verification).
      let started = 0;
      let running = 0;
      let failedOnce = false;
      const env: BackupEnv = {
        ...local,
        list: local.list.bind(local),
        stat: local.stat.bind(local),
        close: local.close.bind(local),
        write: local.write.bind(local),
        delete: local.delete.bind(local),
        openRead: async (name, o) => {
          if (name.startsWith('meta/')) return local.openRead(name, o);
          started++;
          running++;
          try {
            if (!failedOnce && started >= 3) {
              failedOnce = true;
              throw new CairnError('IOError', `read of ${name} failed`);
            }
            await new Promise<void>((_, reject) => {
              const stop = () => reject(new CairnError('Aborted', 'aborted'));
              if (o?.signal?.aborted) stop();
              else o?.signal?.addEventListener('abort', stop, { once: true });
            });
            throw new Error('unreachable');
          } finally {
            running--;
          }
        },
      };
      const e = await BackupEngine.open({ env, readOnly: true, maxBackgroundOperations: 4 });
      const verify = how === 'verifyBackup' ? e.verifyBackup(b.id, { checksum: true }) : e.verifyBackups('all', { checksum: true });
      await assert.rejects(verify, (err) => isCairnError(err, 'IOError') && /failed/.test(err.message));
      assert.equal(running, 0, 'every started read has ended');
      const startedAtRejection = started;
      assert.ok(startedAtRejection >= 3 && startedAtRejection < 13, `${startedAtRejection} reads started of 13 files`);
      // Give anything still queued every chance to start: it must not.
      for (let k = 0; k < 50; k++) await new Promise((r) => setImmediate(r));
      assert.equal(started, startedAtRejection, 'no read started after the rejection');
      await e.close();
    });
  }
});
