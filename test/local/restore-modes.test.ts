// Restore modes (RocksDB's RestoreOptions::mode): restoring over yesterday's restore of the DB
// downloads only the files that changed and ends byte-identical to a fresh purge-all restore; a
// file that only looks like the backup's is replaced; a killed CLI restore, run again, downloads
// only what it had not yet put in place.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import type { BackupEnv } from '../../src/env.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, fakeWal, type FakeTable } from '../support/fake-db.ts';
import { waitFor } from '../support/children.ts';
import { cairn, mainTs } from '../cli/run-cli.ts';

const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-modes-'));
after(() => fsp.rm(work, { recursive: true, force: true }));
const fixture = (n: string) => fsp.readFile(path.join(import.meta.dirname, '../fixtures/rocksdb/sst', n));

/** An env that records the backup files restore reads (meta/ left out). */
function counting(env: BackupEnv): { env: BackupEnv; reads: string[] } {
  const reads: string[] = [];
  const wrapped = new Proxy(env, {
    get(t, k) {
      const v = Reflect.get(t, k, t);
      if (k === 'openRead') {
        return (name: string, o?: unknown) => {
          if (!name.startsWith('meta/')) reads.push(name);
          return (v as (n: string, o?: unknown) => unknown).call(t, name, o);
        };
      }
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  return { env: wrapped, reads };
}

async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) out.set(n, await fsp.readFile(path.join(dir, n)));
  return out;
}
const inode = async (f: string) => (await fsp.stat(f)).ino;

// Yesterday's DB and today's: table 8 was compacted away into table 10; tables 7 and 9 (real
// SSTs, so named by DB session id) and the blob file 11 (named by crc32c) stay.
const sst7 = await fixture('fv3.sst');
const sst9 = await fixture('fv5.sst');
const t8 = table(8, 300_000);
const t10 = table(10, 250_000);
const blob: FakeTable = { number: 11, data: table(11, 100_000).data };
const db = path.join(work, 'db');
const backups = path.join(work, 'backups');
await writeFakeDb(db, { tables: [{ number: 7, data: sst7 }, t8, { number: 9, data: sst9 }], blobs: [blob], wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
{
  const e = await BackupEngine.open({ env: new LocalEnv(backups), lock: false });
  await e.createBackup(db);
  await fsp.rm(path.join(db, '000008.sst'));
  await writeFakeDb(db, { tables: [{ number: 7, data: sst7 }, { number: 9, data: sst9 }, t10], blobs: [blob], wals: [{ number: 12, data: fakeWal(5) }], manifestNumber: 13, optionsNumber: 14, logNumber: 12, lastSequence: 5 });
  await fsp.rm(path.join(db, '000004.log'));
  await e.createBackup(db);
  await e.close();
}

async function restoreInto(dir: string, backupId: number, mode?: 'purge-all' | 'keep-latest-session-files' | 'verify-checksum') {
  const c = counting(new LocalEnv(backups));
  const e = await BackupEngine.open({ env: c.env, lock: false });
  try {
    const r = await e.restore({ dbDir: dir, backupId, ...(mode ? { mode } : {}) });
    return { r, reads: c.reads.map((n) => path.basename(n)) };
  } finally {
    await e.close();
  }
}

describe('restore modes', () => {
  const fresh = path.join(work, 'fresh');
  let expected: Map<string, Buffer>;

  it('purge-all (the default) downloads every file, whatever is already there', async () => {
    const { r, reads } = await restoreInto(fresh, 2);
    assert.equal(r.filesKept, 0);
    assert.equal(r.bytesReused, 0);
    assert.equal(reads.length, r.numFiles);
    expected = await snapshot(fresh);
    const again = await restoreInto(fresh, 2, 'purge-all');
    assert.equal(again.r.filesKept, 0);
    assert.equal(again.reads.length, r.numFiles);
    assert.deepEqual(await snapshot(fresh), expected);
  });

  for (const mode of ['keep-latest-session-files', 'verify-checksum'] as const) {
    it(`${mode}: over yesterday's restore only the new files are downloaded, and the result equals a fresh restore`, async () => {
      const target = path.join(work, `yesterday-${mode}`);
      await restoreInto(target, 1);
      const inodes = await Promise.all(['000007.sst', '000009.sst', '000011.blob'].map((n) => inode(path.join(target, n))));
      const { r, reads } = await restoreInto(target, 2, mode);
      assert.equal(r.filesKept, 3);
      assert.equal(r.bytesReused, sst7.length + sst9.length + blob.data.length);
      const downloaded = reads.map((n) => n.replace(/_.*\./, '.')).sort();
      assert.deepEqual(downloaded, ['000010.sst', '000012.log', 'CURRENT', 'MANIFEST-000013', 'OPTIONS-000014']);
      assert.deepEqual(await Promise.all(['000007.sst', '000009.sst', '000011.blob'].map((n) => inode(path.join(target, n)))), inodes, 'kept files were not rewritten');
      assert.deepEqual(await snapshot(target), expected);
    });
  }

  it('a kept-named file of another size is replaced (keep-latest); one with a corrupted byte is replaced by verify-checksum', async () => {
    const target = path.join(work, 'damaged');
    await restoreInto(target, 2);
    // Same session id and name, one byte longer: not the backup's file.
    await fsp.appendFile(path.join(target, '000007.sst'), 'x');
    // Same size, one byte flipped in the middle of a crc32c-named file and of a session-named one.
    const flip = async (n: string) => {
      const f = path.join(target, n);
      const b = await fsp.readFile(f);
      b[b.length >> 1] ^= 0xff;
      await fsp.writeFile(f, b);
    };
    await flip('000011.blob');
    const keep = await restoreInto(target, 2, 'keep-latest-session-files');
    assert.deepEqual(keep.reads.filter((n) => /^0000(07|09|10|11)/.test(n)).map((n) => n.slice(0, 6)).sort(), ['000007', '000011']);
    assert.deepEqual(await snapshot(target), expected);

    await flip('000009.sst');
    await flip('000010.sst');
    const verify = await restoreInto(target, 2, 'verify-checksum');
    assert.equal(verify.r.filesKept, 2);
    assert.deepEqual(verify.reads.filter((n) => /^0000(07|09|10|11)/.test(n)).map((n) => n.slice(0, 6)).sort(), ['000009', '000010']);
    assert.deepEqual(await snapshot(target), expected);
  });

  it('an unknown mode is refused before anything changes', async () => {
    const c = counting(new LocalEnv(backups));
    const e = await BackupEngine.open({ env: c.env, lock: false });
    await assert.rejects(e.restore({ dbDir: fresh, mode: 'keep-everything' as never }), (err) => isCairnError(err, 'InvalidArgument'));
    await e.close();
    assert.deepEqual(await snapshot(fresh), expected);
  });

  it('a CLI restore killed once some files are in place, run again, downloads only what is missing and ends byte-identical', async (t) => {
    const src = path.join(work, 'kill-db');
    const kb = path.join(work, 'kill-backups');
    const tables = [1, 2, 3, 4, 5, 6].map((i) => table(10 + i, 200_000));
    await writeFakeDb(src, { tables, wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
    const e = await BackupEngine.open({ env: new LocalEnv(kb), lock: false });
    await e.createBackup(src);
    await e.close();

    const target = path.join(work, 'kill-target');
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', mainTs, 'restore', '--backup-dir', kb, '--db', target, '--threads', '1', '--rate-limit', '400K'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    t.after(() => child.kill('SIGKILL'));
    const placed = () => fsp.readdir(target).then((ns) => ns.filter((n) => /^\d+\.sst$/.test(n)), () => [] as string[]);
    await waitFor(async () => ((await placed()).length >= 2 ? true : undefined), 'two table files in place', exited);
    child.kill('SIGKILL');
    await exited;
    const inPlace = await placed();
    assert.ok(!(await fsp.readdir(target)).includes('CURRENT'), 'a killed restore leaves no CURRENT');
    assert.ok(inPlace.length >= 2 && inPlace.length < tables.length, `${inPlace.length} tables in place`);

    const again = await cairn(['restore', '--backup-dir', kb, '--db', target, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const out = JSON.parse(again.stdout);
    assert.equal(out.filesKept, inPlace.length);
    assert.equal(out.bytesReused, inPlace.length * 200_000);
    const purge = await cairn(['restore', '--backup-dir', kb, '--db', path.join(work, 'kill-fresh'), '--mode', 'purge-all', '--json']);
    assert.equal(purge.code, 0, purge.stderr);
    assert.equal(JSON.parse(purge.stdout).filesKept, 0);
    assert.deepEqual(await snapshot(target), await snapshot(path.join(work, 'kill-fresh')));
    for (const tb of tables) assert.ok((await fsp.readFile(path.join(target, `0000${tb.number}.sst`))).equals(tb.data));
  });
});
