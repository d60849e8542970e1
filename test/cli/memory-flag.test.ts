// --memory / CAIRN_MEMORY_BUDGET: a bad value is a usage error naming where it came from, and
// nothing is written; a good one is accepted (a local backup, which buffers nothing, ignores it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cairn } from './run-cli.ts';
import { fakeWal, table, writeFakeDb } from '../support/fake-db.ts';

describe('cairn backup --memory', () => {
  it('refuses a malformed or zero budget (exit 2, naming --memory or CAIRN_MEMORY_BUDGET) and backs up with a good one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-memflag-'));
    try {
      const db = join(dir, 'db');
      await writeFakeDb(db, { tables: [table(7, 5000)], wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
      const bdir = join(dir, 'backups');
      const bad = await cairn(['backup', '--db', db, '--backup-dir', bdir, '--memory', 'lots']);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--memory takes a size/);
      const zero = await cairn(['backup', '--db', db, '--backup-dir', bdir], { env: { CAIRN_MEMORY_BUDGET: '0' } });
      assert.equal(zero.code, 2, zero.stderr);
      assert.match(zero.stderr, /CAIRN_MEMORY_BUDGET must be more than 0/);
      assert.deepEqual(await readdir(bdir).catch(() => []), [], 'nothing written by a refused command');
      const ok = await cairn(['backup', '--db', db, '--backup-dir', bdir, '--memory', '16MiB', '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).id, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
