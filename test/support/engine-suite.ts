// The end-to-end engine suite: the themes of RocksDB's backup_engine_test.cc, run against every
// provider. Every test asserts on bytes restored, names stored and checksums, not on return codes.
// The tests are in engine-suite-*.ts by theme; this file sets up what they share (EngineCase).
import { describe, before, after, beforeEach } from 'node:test';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine, type BackupEngineOptions } from '../../src/backup/engine.ts';
import type { BackupEnv } from '../../src/env.ts';
import { table, fakeWal, type FakeDbSpec } from './fake-db.ts';
import type { MakeEnv, EnvHandle } from './env-conformance.ts';
import { prefixed } from './engine-suite-helpers.ts';
import { backupTests } from './engine-suite-backup.ts';
import { lockTests } from './engine-suite-locks.ts';
import { damageTests } from './engine-suite-damage.ts';
import { restoreTests } from './engine-suite-restore.ts';

export { prefixed } from './engine-suite-helpers.ts';

/** What every engine test shares: the state of the test running now, and helpers bound to it. */
export interface EngineCase {
  /** The env, the work directory, the DB directory and the env's sub-root of the test running now. */
  now(): { h: EnvHandle; env: BackupEnv; work: string; dbDir: string; n: number; sub: BackupEnv };
  /** A writable engine on the current test's sub-root. */
  open(o?: Partial<BackupEngineOptions>): Promise<BackupEngine>;
  /** A fresh directory name to restore into. */
  restoreDir(): string;
  /** A small DB: two tables, a blob, two WALs. */
  spec1(): FakeDbSpec;
}

export function runEngineSuite(label: string, makeEnv: MakeEnv): void {
  describe(`engine end-to-end: ${label}`, () => {
    let h: EnvHandle;
    let env: BackupEnv;
    let work: string;
    let dbDir: string;
    let n = 0;
    // Each test gets its own sub-root of the env, so tests do not see each other's backups.
    let sub: BackupEnv;

    before(async () => {
      h = await makeEnv();
      env = h.env;
      work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-engine-'));
    });
    after(async () => {
      await env?.close();
      await h?.cleanup();
      await fsp.rm(work, { recursive: true, force: true });
    });
    beforeEach(async () => {
      n++;
      dbDir = path.join(work, `db${n}`);
      sub = prefixed(env, `t${n}/`);
    });

    const open = (o: Partial<BackupEngineOptions> = {}) => BackupEngine.open({ env: sub, maxBackgroundOperations: 3, ...o });
    const restoreDir = () => path.join(work, `restore${n}-${Math.random().toString(36).slice(2, 8)}`);

    const spec1 = (): FakeDbSpec => ({
      tables: [table(7, 200_000), table(9, 70_000)],
      blobs: [table(8, 30_000)],
      wals: [{ number: 4, data: fakeWal(10) }, { number: 11, data: fakeWal(101) }],
      manifestNumber: 5,
      optionsNumber: 6,
      logNumber: 11,
      lastSequence: 100,
    });
    const c: EngineCase = { now: () => ({ h, env, work, dbDir, n, sub }), open, restoreDir, spec1 };
    backupTests(c);
    lockTests(c);
    damageTests(c);
    restoreTests(c);
  });
}
