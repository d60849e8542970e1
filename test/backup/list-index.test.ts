// The list index as the engine's writing operations leave it, when they key it by the listing
// taken once under the writer lock and followed through their own writes and deletes
// (dir-listing.ts): it must answer the next list exactly as parsing every manifest would, after
// every kind of write (new files, a leftover written over, GC, delete, purge), and it must not
// answer when the directory changed behind the writer's back after that listing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { LocalEnv } from '../../providers/local/index.ts';
import type { BackupEnv } from '../../src/env.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { listBackupsIndexed } from '../../src/backup/list-index.ts';
import { table, writeFakeDb, type FakeDbSpec, type FakeTable } from '../support/fake-db.ts';

let work: string;
before(async () => {
  work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-list-index-engine-'));
});
after(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

let n = 0;
function dirs() {
  n++;
  return { db: path.join(work, `db${n}`), bk: path.join(work, `backup${n}`) };
}

const spec = (tables: FakeTable[], k: number): FakeDbSpec => ({ tables, manifestNumber: 5 + 2 * k, optionsNumber: 6 + 2 * k, logNumber: 30 + k, lastSequence: 100 + k });

/** What list shows when every manifest is parsed (the index neither read nor written). */
async function fullParse(bk: string) {
  const r = await listBackupsIndexed(new LocalEnv(bk), { write: false, ignoreIndex: true });
  return { backups: r.backups, corrupt: r.corrupt.map((c) => ({ id: c.id, message: c.error.message })) };
}

/** What list shows through the index, and whether the index answered (nothing written). */
async function viaIndex(bk: string) {
  const r = await listBackupsIndexed(new LocalEnv(bk), { write: false });
  return { fromIndex: r.fromIndex, shown: { backups: r.backups, corrupt: r.corrupt.map((c) => ({ id: c.id, message: c.error.message })) } };
}

async function assertIndexAnswers(bk: string, what: string): Promise<void> {
  const v = await viaIndex(bk);
  assert.equal(v.fromIndex, true, `${what}: the index the operation wrote matches the directory`);
  assert.deepEqual(v.shown, await fullParse(bk), `${what}: the index shows what parsing every manifest shows`);
}

/** An env that counts list() calls by prefix. */
function countingLists(env: BackupEnv, lists: string[]): BackupEnv {
  return new Proxy(env, {
    get(t, p) {
      if (p === 'list') return (prefix: string, o?: { signal?: AbortSignal }) => (lists.push(prefix), t.list(prefix, o));
      const v = Reflect.get(t, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

describe('list index after writing operations keyed by the run\'s one listing', () => {
  it('answers after backups (new files, one new file, no change), gc, delete and purge, on one engine holding the lock', async () => {
    const { db, bk } = dirs();
    const tables = [table(10, 5000), table(11, 7000), table(12, 3000)];
    await writeFakeDb(db, spec(tables, 0));
    const lists: string[] = [];
    const e = await BackupEngine.open({ env: countingLists(new LocalEnv(bk), lists), lock: { hold: true } });
    try {
      await e.createBackup(db);
      await assertIndexAnswers(bk, 'first backup');
      tables.push(table(13, 4000));
      await writeFakeDb(db, spec(tables, 1));
      await e.createBackup(db);
      await assertIndexAnswers(bk, 'backup with one new table');
      await e.createBackup(db);
      await assertIndexAnswers(bk, 'backup with no change');
      // Each directory once (on open), locks/ by the lock, meta/ again by each index write
      // (for the manifests' modification times): no other listing by GC, leftovers or the index.
      const counts = (p: string) => lists.filter((x) => x === p).length;
      assert.deepEqual(
        { meta: counts('meta/'), shared: counts('shared/'), sharedChecksum: counts('shared_checksum/'), private: counts('private/'), all: counts('') },
        { meta: 1 + 3, shared: 1, sharedChecksum: 1, private: 1, all: 0 },
        lists.join(' '),
      );
      await e.deleteBackup(1);
      await assertIndexAnswers(bk, 'delete (GC removed its private files)');
      tables.splice(0, 2, table(14, 6000));
      await writeFakeDb(db, spec(tables, 2));
      await fsp.rm(path.join(db, '000010.sst'));
      await fsp.rm(path.join(db, '000011.sst'));
      await e.createBackup(db);
      await e.purgeOldBackups(1);
      await assertIndexAnswers(bk, 'purge (GC removed two tables only older backups used)');
      assert.deepEqual((await fullParse(bk)).backups.map((b) => b.id), [4]);
      assert.deepEqual((await fsp.readdir(path.join(bk, 'shared_checksum'))).map((f) => f.slice(0, 6)).sort(), ['000012', '000013', '000014']);
      await e.garbageCollect({ graceMs: 0 });
      await assertIndexAnswers(bk, 'gc with nothing to do');
    } finally {
      await e.close();
    }
  });

  it('answers after a backup that writes over a leftover of another size, and after gc removes leftovers', async () => {
    const { db, bk } = dirs();
    const tables = [table(20, 9000), table(21, 8000)];
    await writeFakeDb(db, spec(tables, 0));
    let e = await BackupEngine.open({ env: new LocalEnv(bk) });
    const first = await e.createBackup(db);
    const names = e.getBackupInfo(first.id, { includeFileDetails: true }).files!.map((f) => f.name).filter((f) => f.startsWith('shared_checksum/'));
    await e.close();
    // As an interrupted run leaves them: one table cut short under its final name, one stray
    // resumable table no backup names.
    const cut = path.join(bk, names[0]);
    const whole = await fsp.readFile(cut);
    await fsp.writeFile(cut, whole.subarray(0, 100));
    await fsp.rm(path.join(bk, 'meta', String(first.id)));
    await fsp.writeFile(path.join(bk, 'shared_checksum', '000099_123_4.sst'), 'abcd');
    e = await BackupEngine.open({ env: new LocalEnv(bk), lock: { hold: true } });
    try {
      assert.equal(e.cleanedOnOpen.keptForResume, 3, 'both tables and the stray kept for a resumed backup');
      const r = await e.createBackup(db);
      assert.equal(r.filesResumed, 1, 'the whole table reused, the cut one written again');
      assert.equal((await fsp.stat(cut)).size, whole.length);
      await assertIndexAnswers(bk, 'backup over a leftover');
      const gc = await e.garbageCollect({ graceMs: 0 });
      assert.deepEqual(gc.deleted, ['shared_checksum/000099_123_4.sst']);
      await assertIndexAnswers(bk, 'gc of the stray leftover');
    } finally {
      await e.close();
    }
  });

  it('a file deleted behind the writer\'s back after its listing: the index it writes does not answer, list shows the damage', async () => {
    const { db, bk } = dirs();
    const tables = [table(30, 5000), table(31, 6000)];
    await writeFakeDb(db, spec(tables, 0));
    const e = await BackupEngine.open({ env: new LocalEnv(bk), lock: { hold: true } });
    let gone = '';
    try {
      const b1 = await e.createBackup(db);
      await assertIndexAnswers(bk, 'first backup');
      gone = e.getBackupInfo(b1.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000030_'))!.name;
      // Deleted while the engine holds the lock and its listing: its next backup shares the
      // file by the catalog, and writes an index from a catalog that believes it is there.
      await fsp.rm(path.join(bk, gone));
      tables.push(table(32, 4000));
      await writeFakeDb(db, spec(tables, 1));
      await e.createBackup(db);
    } finally {
      await e.close();
    }
    const v = await viaIndex(bk);
    assert.equal(v.fromIndex, false, 'the stored files differ from the index\'s key');
    const parsed = await fullParse(bk);
    assert.deepEqual(v.shown, parsed);
    assert.deepEqual(parsed.backups, []);
    assert.deepEqual(parsed.corrupt.map((c) => c.id), [1, 2]);
    assert.ok(parsed.corrupt.every((c) => c.message.includes(gone)), JSON.stringify(parsed.corrupt));
  });

  it('a file resized behind the writer\'s back after its listing: the index it writes does not answer, list shows the new size', async () => {
    const { db, bk } = dirs();
    const tables = [table(40, 5000)];
    await writeFakeDb(db, spec(tables, 0));
    const e = await BackupEngine.open({ env: new LocalEnv(bk), lock: { hold: true } });
    let size = 0;
    try {
      const b1 = await e.createBackup(db);
      size = b1.size;
      const f = e.getBackupInfo(b1.id, { includeFileDetails: true }).files!.find((x) => x.name.startsWith('shared_checksum/'))!.name;
      await fsp.appendFile(path.join(bk, f), 'more');
      await e.garbageCollect();
    } finally {
      await e.close();
    }
    const v = await viaIndex(bk);
    assert.equal(v.fromIndex, false);
    assert.deepEqual(v.shown, await fullParse(bk));
    // (A schema 1 manifest records no sizes: the backup is valid, with the size stored now.)
    assert.deepEqual(v.shown.backups.map((b) => [b.id, b.size]), [[1, size + 4]]);
  });
});
