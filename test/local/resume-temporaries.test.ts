// Temporaries a killed backup left on local disk (a shared file written whole into
// `<name>.<random>.tmp`, killed before its fsync and rename): gc keeps them for the grace period,
// the next backup publishes one that holds the DB file's bytes instead of copying the file again,
// copies again the files whose temporaries are short or differ, and gc then removes those.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { crc32c } from '../../src/crc32c.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { dirContents, expectedFiles, assertSameFiles } from '../support/engine-suite-helpers.ts';

const spec = (): FakeDbSpec => ({
  tables: [table(7, 300_000), table(9, 200_000), table(10, 100_000), table(12, 50_000)],
  wals: [{ number: 11, data: fakeWal(10) }],
  manifestNumber: 5,
  optionsNumber: 6,
  logNumber: 11,
  lastSequence: 10,
});

describe('temporaries of a killed backup (local disk)', () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-temporaries-'));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  const sharedName = async (db: string, n: number) => {
    const data = await fsp.readFile(path.join(db, `${String(n).padStart(6, '0')}.sst`));
    return { name: `shared_checksum/${String(n).padStart(6, '0')}_${crc32c(data)}_${data.length}.sst`, data };
  };
  const tmps = async (dir: string) => (await fsp.readdir(path.join(dir, 'shared_checksum'))).filter((n) => n.endsWith('.tmp')).sort();

  it('LocalEnv names its temporaries so that temporaryTarget finds the name they were for', async () => {
    const env = new LocalEnv(path.join(work, 'names'));
    assert.equal(env.temporaryTarget('shared_checksum/000007_1_2.sst.0a1b2c3d.tmp'), 'shared_checksum/000007_1_2.sst');
    assert.equal(env.temporaryTarget('shared_checksum/000007_1_2.sst'), undefined);
    assert.equal(env.temporaryTarget('shared_checksum/000007_1_2.sst.tmp'), undefined);
    assert.equal(env.temporaryTarget('shared_checksum/000007.sst.0A1B2C3D.tmp'), undefined);
    await fsp.mkdir(path.join(work, 'names', 'x'), { recursive: true });
    await fsp.writeFile(path.join(work, 'names', 'x', 'a.sst.00000001.tmp'), 'abc');
    await fsp.writeFile(path.join(work, 'names', 'x', 'b.sst'), 'old');
    await fsp.writeFile(path.join(work, 'names', 'x', 'b.sst.00000002.tmp'), 'new');
    await env.promoteTemporary('x/a.sst.00000001.tmp', { sync: true });
    assert.equal(await fsp.readFile(path.join(work, 'names', 'x', 'a.sst'), 'utf8'), 'abc');
    await assert.rejects(env.promoteTemporary('x/b.sst.00000002.tmp'), (e: Error & { code?: string }) => e.code === 'AlreadyExists');
    assert.equal(await fsp.readFile(path.join(work, 'names', 'x', 'b.sst'), 'utf8'), 'old', 'an existing file is never replaced');
    assert.deepEqual((await fsp.readdir(path.join(work, 'names', 'x'))).sort(), ['a.sst', 'b.sst', 'b.sst.00000002.tmp']);
  });

  it('the next backup publishes a whole temporary, copies again a short or different one, and gc removes those', async () => {
    const db = path.join(work, 'db1');
    const dir = path.join(work, 'backup1');
    await writeFakeDb(db, spec());
    const [t7, t9, t10] = [await sharedName(db, 7), await sharedName(db, 9), await sharedName(db, 10)];
    await fsp.mkdir(path.join(dir, 'shared_checksum'), { recursive: true });
    // Whole: what a run killed between its last write and its rename leaves.
    await fsp.writeFile(path.join(dir, `${t7.name}.0a1b2c3d.tmp`), t7.data);
    // Cut short: killed mid-write.
    await fsp.writeFile(path.join(dir, `${t9.name}.1a1b2c3d.tmp`), t9.data.subarray(0, 1000));
    // Whole size, other bytes (never synced before a power loss).
    const bad = Buffer.from(t10.data);
    bad[500] ^= 1;
    await fsp.writeFile(path.join(dir, `${t10.name}.2a1b2c3d.tmp`), bad);
    const e = await BackupEngine.open({ env: new LocalEnv(dir) });
    assert.deepEqual(e.cleanedOnOpen.deleted, [], 'temporaries of shared files stay for the backup to resume');
    assert.equal(e.cleanedOnOpen.keptForResume, 3);
    const r = await e.createBackup(db);
    assert.equal(r.filesResumed, 1);
    assert.equal(r.bytesResumed, t7.data.length);
    assert.equal(r.copiedBytes, r.size - t7.data.length, 'every other file copied, the short and the different one again');
    assert.ok((await fsp.readFile(path.join(dir, t7.name))).equals(t7.data));
    assert.ok((await fsp.readFile(path.join(dir, t10.name))).equals(t10.data), 'the damaged temporary was not published');
    assert.deepEqual(await tmps(dir), [`${t10.name.slice('shared_checksum/'.length)}.2a1b2c3d.tmp`, `${t9.name.slice('shared_checksum/'.length)}.1a1b2c3d.tmp`].sort());
    const g = await e.garbageCollect();
    assert.deepEqual(g.deleted.sort(), [`${t10.name}.2a1b2c3d.tmp`, `${t9.name}.1a1b2c3d.tmp`].sort(), 'temporaries of stored files are garbage');
    assert.deepEqual(await tmps(dir), []);
    assert.deepEqual((await e.verifyBackup(r.id, { checksum: true })).problems, []);
    const out = path.join(work, 'restore1');
    await e.restore({ dbDir: out });
    assertSameFiles(await dirContents(out), await expectedFiles(db, spec()), 'restored');
    await e.close();
  });

  it('a temporary older than the grace period, or of a file no backup needs, goes at open', async () => {
    const db = path.join(work, 'db2');
    const dir = path.join(work, 'backup2');
    await writeFakeDb(db, spec());
    const t7 = await sharedName(db, 7);
    await fsp.mkdir(path.join(dir, 'shared_checksum'), { recursive: true });
    const old = path.join(dir, `${t7.name}.0a1b2c3d.tmp`);
    await fsp.writeFile(old, t7.data);
    const twoDaysAgo = new Date(Date.now() - 48 * 3_600_000);
    await fsp.utimes(old, twoDaysAgo, twoDaysAgo);
    // Not a temporary of a table file: an interrupted write of something else.
    await fsp.writeFile(path.join(dir, 'shared_checksum', 'notes.txt.0a1b2c3d.tmp'), 'x');
    const e = await BackupEngine.open({ env: new LocalEnv(dir) });
    assert.deepEqual(e.cleanedOnOpen.deleted.sort(), [`${t7.name}.0a1b2c3d.tmp`, 'shared_checksum/notes.txt.0a1b2c3d.tmp']);
    const r = await e.createBackup(db);
    assert.equal(r.filesResumed, 0);
    await e.close();
  });
});
