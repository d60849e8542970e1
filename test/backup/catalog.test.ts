// The Catalog on hand-written backup directories: reference counts, RocksDB's AddFile checks,
// corrupt backups and the files they protect, and the compact form of a backup's file list.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { Catalog } from '../../src/backup/catalog.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { isCairnError } from '../../src/errors.ts';

const sst = (n: number) => `shared_checksum/${String(n).padStart(6, '0')}_sSESSION_${n}.sst`;
const privates = (id: number) => [`private/${id}/CURRENT`, `private/${id}/MANIFEST-000005`];

let root: string;
let dirNo = 0;

/** A backup dir: stored files (name -> size) and manifests (id -> entries "name crc"). */
async function makeDir(stored: Record<string, number>, metas: Record<number, string[] | string>): Promise<string> {
  const dir = path.join(root, `d${++dirNo}`);
  for (const [name, size] of Object.entries(stored)) {
    await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fsp.writeFile(path.join(dir, name), Buffer.alloc(size, 1));
  }
  await fsp.mkdir(path.join(dir, 'meta'), { recursive: true });
  for (const [id, entries] of Object.entries(metas)) {
    const text = typeof entries === 'string' ? entries : `1700000000\n${id}\n${entries.length}\n${entries.map((e) => `${e}\n`).join('')}`;
    await fsp.writeFile(path.join(dir, 'meta', id), text);
  }
  return dir;
}

const load = async (dir: string, maxValidBackups?: number) => Catalog.load(new LocalEnv(dir), { maxValidBackups });
const refsOf = (c: Catalog, name: string) => {
  const i = c.files.find(name);
  return i === undefined ? undefined : c.files.refs(i);
};

describe('Catalog', () => {
  before(async () => {
    root = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-catalog-'));
  });
  after(async () => {
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('one record per distinct file, with its reference count, after load, add and remove', async () => {
    const stored: Record<string, number> = {};
    for (const n of [10, 11, 12, 13]) stored[sst(n)] = n;
    for (const id of [1, 2, 3]) for (const p of privates(id)) stored[p] = 5;
    const dir = await makeDir(stored, {
      1: [`${sst(10)} crc32 1`, `${sst(11)} crc32 2`, ...privates(1).map((p) => `${p} crc32 9`)],
      2: [`${sst(10)} crc32 1`, `${sst(11)} crc32 2`, `${sst(12)} crc32 3`, ...privates(2).map((p) => `${p} crc32 9`)],
      3: [`${sst(11)} crc32 2`, `${sst(12)} crc32 3`, ...privates(3).map((p) => `${p} crc32 9`)],
    });
    const c = await load(dir);
    assert.deepEqual([...c.backups.keys()].sort(), [1, 2, 3]);
    assert.equal(c.files.size, 3 + 6);
    assert.deepEqual([10, 11, 12].map((n) => refsOf(c, sst(n))), [2, 3, 2]);
    assert.equal(refsOf(c, sst(13)), undefined, 'stored but named by no manifest: no record');
    assert.equal(refsOf(c, 'private/2/CURRENT'), 1);
    // A backup's files come back in manifest order, with the listed size, the manifest's crc and
    // how many backups use each.
    const b2 = c.info(c.backups.get(2)!, true);
    assert.deepEqual(b2.files!.slice(0, 3), [{ name: sst(10), size: 10, crc32c: 1, usedBy: 2 }, { name: sst(11), size: 11, crc32c: 2, usedBy: 3 }, { name: sst(12), size: 12, crc32c: 3, usedBy: 2 }]);
    assert.equal(b2.files![3].usedBy, 1, 'a private file');
    assert.equal(b2.size, 10 + 11 + 12 + 10);
    assert.equal(b2.numFiles, 5);

    c.add(4, { schemaVersion: '1', timestamp: 1, sequence: 4n, appMetadata: Buffer.alloc(0) }, [{ name: sst(12), size: 12, crc32c: 3 }, { name: sst(13), size: 13, crc32c: 4 }]);
    assert.deepEqual([12, 13].map((n) => refsOf(c, sst(n))), [3, 1]);
    assert.equal(c.latestBackupId, 4);

    c.remove(2);
    c.remove(3);
    assert.deepEqual([10, 11, 12, 13].map((n) => refsOf(c, sst(n))), [1, 1, 1, 1]);
    assert.equal(refsOf(c, 'private/2/CURRENT'), 0, 'kept, unreferenced, until GC');
    assert.ok(!c.isNeeded('private/2/CURRENT'));
    c.remove(1);
    c.dropUnreferenced();
    assert.deepEqual([10, 11, 12, 13].map((n) => refsOf(c, sst(n))), [undefined, undefined, 1, 1]);
    assert.equal(c.files.size, 2);
  });

  it("AddFile: a shared file with another checksum in an older backup makes that one corrupt, and leaves the table as it was", async () => {
    const stored: Record<string, number> = { [sst(10)]: 10, [sst(11)]: 11, [sst(20)]: 20 };
    for (const id of [1, 2]) for (const p of privates(id)) stored[p] = 5;
    const dir = await makeDir(stored, {
      // Backup 1 (loaded after 2, newest first) names sst 20 first (a new record), then disagrees on sst 10.
      1: [`${sst(20)} crc32 7`, `${sst(10)} crc32 999`, `${sst(11)} crc32 2`, ...privates(1).map((p) => `${p} crc32 9`)],
      2: [`${sst(10)} crc32 1`, `${sst(11)} crc32 2`, ...privates(2).map((p) => `${p} crc32 9`)],
    });
    const c = await load(dir);
    assert.deepEqual([...c.backups.keys()], [2]);
    const err = c.corrupt.get(1)!;
    assert.ok(isCairnError(err, 'Corruption'));
    assert.equal(err.message, `checksum mismatch for ${sst(10)}: 1 in one backup, 999 in backup 1`);
    assert.equal(refsOf(c, sst(10)), 1);
    assert.equal(refsOf(c, sst(11)), 1);
    assert.equal(refsOf(c, sst(20)), undefined, 'the corrupt backup added no record');
    assert.equal(c.files.crc32c(c.files.find(sst(10))!), 1);
    // ... but everything it names is kept by GC while it exists.
    for (const n of [sst(20), 'private/1/CURRENT']) assert.ok(c.isNeeded(n), n);

    // add() checks before it changes anything.
    assert.throws(
      () => c.add(3, { schemaVersion: '1', timestamp: 1, sequence: 1n, appMetadata: Buffer.alloc(0) }, [{ name: sst(11), size: 11, crc32c: 2 }, { name: sst(10), size: 77, crc32c: 1 }]),
      (e) => isCairnError(e, 'Corruption') && e.message === `size mismatch for ${sst(10)}: 10 in one backup, 77 in backup 3`,
    );
    assert.equal(refsOf(c, sst(11)), 1);
    assert.ok(!c.backups.has(3));
  });

  it('corrupt manifests: bad entries are reported first-in-order and protect their names; an unparseable one keeps every shared file', async () => {
    const stored: Record<string, number> = { [sst(10)]: 10, [sst(30)]: 30, [sst(31)]: 31 };
    for (const id of [1, 2, 3, 4]) for (const p of privates(id)) stored[p] = 5;
    const dir = await makeDir(stored, {
      1: [`${sst(31)} crc32 1`, `${sst(10)} crc32 1`, ...privates(1).map((p) => `${p} crc32 9`)],
      // names a missing file, then a duplicate: the first is the error
      2: [`${sst(30)} crc32 1`, `${sst(99)} crc32 1`, `${sst(30)} crc32 1`, ...privates(2).map((p) => `${p} crc32 9`)],
      // does not parse: a count that does not match
      3: `1\n2\n2\n${sst(10)} crc32 1\n`,
      // names a file outside its own private dir
      4: [`${sst(10)} crc32 1`, `private/1/CURRENT crc32 9`],
    });
    const c = await load(dir);
    assert.deepEqual([...c.backups.keys()], [1]);
    assert.match(c.corrupt.get(2)!.message, /shared_checksum\/000099_sSESSION_99\.sst is missing from the backup directory/);
    assert.match(c.corrupt.get(3)!.message, /says 2 files but lists 1/);
    assert.match(c.corrupt.get(4)!.message, /bad file entry "private\/1\/CURRENT": not in shared\/, shared_checksum\/ or private\/4\//);
    assert.equal(refsOf(c, sst(10)), 1, 'corrupt backups 4 and 3 hold no reference');
    assert.ok(c.isNeeded(sst(30)), 'named only by corrupt backup 2');
    assert.ok(c.isNeeded('private/2/CURRENT'));
    assert.ok(!c.isNeeded('private/3/CURRENT'), 'backup 3 did not parse: nothing private of it is protected by name');
    assert.deepEqual(c.unreadableBackups, [3]);
    assert.ok(c.isNeeded(sst(31)) && c.isNeeded('shared_checksum/000077_sX_77.sst'), 'what backup 3 needs is unknown: every shared file stays');

    // Removing corrupt backup 2: what it alone protected is still kept while 3 is unreadable...
    c.remove(2);
    await c.refreshProtected(new LocalEnv(dir));
    assert.ok(c.isNeeded(sst(30)));
    // ...and free once 3 is gone too.
    c.remove(3);
    await c.refreshProtected(new LocalEnv(dir));
    assert.deepEqual(c.unreadableBackups, []);
    assert.ok(!c.isNeeded(sst(30)));
    assert.ok(c.isNeeded('private/1/CURRENT'), 'still named by backup 1 (and by corrupt backup 4)');
    assert.deepEqual(c.listCorrupt().map((x) => x.id), [4]);
  });

  it('maxValidBackups opens only the newest valid ones', async () => {
    const stored: Record<string, number> = { [sst(10)]: 10 };
    const metas: Record<number, string[]> = {};
    for (const id of [1, 2, 3, 4]) {
      for (const p of privates(id)) stored[p] = 5;
      metas[id] = [`${sst(10)} crc32 1`, ...privates(id).map((p) => `${p} crc32 9`)];
    }
    const c = await load(await makeDir(stored, metas), 2);
    assert.deepEqual([...c.backups.keys()].sort(), [3, 4]);
    assert.equal(refsOf(c, sst(10)), 2);
    assert.equal(c.latestBackupId, 4);
  });

  it('backups listing the same files in the same order are stored as a few runs', async () => {
    const stored: Record<string, number> = {};
    for (let n = 100; n < 1100; n++) stored[sst(n)] = 1;
    const metas: Record<number, string[]> = {};
    for (const id of [1, 2, 3]) {
      for (const p of privates(id)) stored[p] = 5;
      const from = 100 + id * 50;
      metas[id] = [...Array.from({ length: 800 }, (_, k) => `${sst(from + k)} crc32 ${from + k}`), ...privates(id).map((p) => `${p} crc32 9`)];
    }
    const c = await load(await makeDir(stored, metas));
    for (const id of [1, 2, 3]) {
      const b = c.backups.get(id)!;
      assert.ok(b.files.byteLength <= 4 * 8 * 4, `backup ${id}: ${b.files.byteLength} bytes for ${b.files.length} files`);
      const names = c.info(b, true).files!.map((f) => f.name);
      assert.deepEqual(names, metas[id].map((l) => l.split(' ')[0]));
    }
  });

  it('a file first named by a corrupt manifest (read first, being newer) is still found for the valid older one', async () => {
    const stored: Record<string, number> = { [sst(10)]: 10, [sst(11)]: 11, 'shared_checksum/000011_sOTHER_11.sst': 11 };
    for (const id of [1, 2, 3]) for (const p of privates(id)) stored[p] = 5;
    const dir = await makeDir(stored, {
      // 3: sst(11) first (new to the table), then a missing file: corrupt, its records undone.
      3: [`${sst(11)} crc32 11`, `${sst(12)} crc32 12`, ...privates(3).map((p) => `${p} crc32 9`)],
      // 2: a second entry restoring to 000011.sst: corrupt once all three are in the table.
      2: [`${sst(10)} crc32 10`, `${sst(11)} crc32 11`, 'shared_checksum/000011_sOTHER_11.sst crc32 11', ...privates(2).map((p) => `${p} crc32 9`)],
      1: [`${sst(10)} crc32 10`, `${sst(11)} crc32 11`, ...privates(1).map((p) => `${p} crc32 9`)],
    });
    const c = await load(dir);
    assert.deepEqual([...c.backups.keys()], [1]);
    assert.deepEqual([...c.corrupt.keys()].sort(), [2, 3]);
    assert.match(c.corrupt.get(2)!.message, /both restore to 000011\.sst/);
    assert.match(c.corrupt.get(3)!.message, /000012.*missing/);
    assert.equal(refsOf(c, 'shared_checksum/000011_sOTHER_11.sst'), undefined);
    assert.equal(refsOf(c, sst(11)), 1);
    assert.equal(refsOf(c, sst(10)), 1);
    assert.equal(c.backups.get(1)!.size, 10 + 11 + 10);
  });

  it('a manifest two of whose entries restore to one DB file name is corrupt (restore would refuse it)', async () => {
    const twin = 'shared_checksum/000010_sOTHER_10.sst';
    const stored: Record<string, number> = { [sst(10)]: 10, [twin]: 10, [sst(11)]: 11 };
    for (const id of [1, 2]) for (const p of privates(id)) stored[p] = 5;
    const dir = await makeDir(stored, {
      1: [`${sst(10)} crc32 1`, `${twin} crc32 1`, ...privates(1).map((p) => `${p} crc32 9`)],
      2: [`${sst(10)} crc32 1`, `${sst(11)} crc32 2`, ...privates(2).map((p) => `${p} crc32 9`)],
    });
    const c = await load(dir);
    assert.deepEqual([...c.backups.keys()], [2]);
    const err = c.corrupt.get(1);
    assert.ok(isCairnError(err, 'Corruption'));
    assert.match(err.message, /both restore to 000010\.sst/);
  });

  it('a corrupt manifest that cannot be read whole keeps every shared file from GC until it is deleted', async () => {
    const orphan = sst(30);
    const stored: Record<string, number> = { [sst(10)]: 10, [orphan]: 30 };
    for (const p of privates(2)) stored[p] = 5;
    const dir = await makeDir(stored, {
      1: 'not a manifest at all\n',
      2: [`${sst(10)} crc32 1`, ...privates(2).map((p) => `${p} crc32 9`)],
    });
    const { BackupEngine } = await import('../../src/backup/engine.ts');
    // (No grace period: the orphan was written just now, and would otherwise stay for a resumed backup.)
    const engine = await BackupEngine.open({ env: new LocalEnv(dir), gcGraceMs: 0 });
    assert.deepEqual(engine.listCorruptedBackups().map((c) => c.id), [1]);
    const gc1 = await engine.garbageCollect();
    assert.ok(!gc1.deleted.includes(orphan), 'what backup 1 needs is unknown: the shared file stays');
    await fsp.access(path.join(dir, orphan));
    await engine.deleteBackup(1);
    await assert.rejects(fsp.access(path.join(dir, orphan)), 'once backup 1 is deleted, the orphan goes');
    await fsp.access(path.join(dir, sst(10)));
    await engine.close();
  });
});
