// The restore modes (RocksDB's RestoreOptions::mode), run against a provider: restoring over
// yesterday's restore of the DB downloads only the files that changed and ends byte-identical
// to a fresh purge-all restore; a file that only looks like the backup's is replaced.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import type { BackupEnv } from '../../src/env.ts';
import type { ProgressEvent } from '../../src/backup/types.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, fakeWal, type FakeTable } from './fake-db.ts';

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

export async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) out.set(n, await fsp.readFile(path.join(dir, n)));
  return out;
}
const inode = async (f: string) => (await fsp.stat(f)).ino;

/** `makeEnv` gives a fresh, empty backup directory each call (one is used per suite run). */
export function runRestoreModesSuite(label: string, makeEnv: () => Promise<BackupEnv>): void {
  describe(`restore modes: ${label}`, () => {
    let work: string;
    let backupEnv: BackupEnv;
    // Yesterday's DB and today's: table 8 was compacted away into table 10; tables 7 and 9 (real
    // SSTs, so named by DB session id) and the blob file 11 (named by crc32c) stay.
    let sst7: Buffer;
    let sst9: Buffer;
    const blob: FakeTable = { number: 11, data: table(11, 100_000).data };
    const fresh = () => path.join(work, 'fresh');
    let expected: Map<string, Buffer>;

    before(async () => {
      work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-modes-'));
      sst7 = await fixture('fv3.sst');
      sst9 = await fixture('fv5.sst');
      backupEnv = await makeEnv();
      const db = path.join(work, 'db');
      await writeFakeDb(db, { tables: [{ number: 7, data: sst7 }, table(8, 300_000), { number: 9, data: sst9 }], blobs: [blob], wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
      const e = await BackupEngine.open({ env: backupEnv, lock: false });
      await e.createBackup(db);
      await fsp.rm(path.join(db, '000008.sst'));
      await writeFakeDb(db, { tables: [{ number: 7, data: sst7 }, { number: 9, data: sst9 }, table(10, 250_000)], blobs: [blob], wals: [{ number: 12, data: fakeWal(5) }], manifestNumber: 13, optionsNumber: 14, logNumber: 12, lastSequence: 5 });
      await fsp.rm(path.join(db, '000004.log'));
      await e.createBackup(db);
      await e.close();
    });
    after(() => fsp.rm(work, { recursive: true, force: true }));

    async function restoreInto(dir: string, backupId: number, mode?: 'purge-all' | 'keep-latest-session-files' | 'verify-checksum') {
      const c = counting(backupEnv);
      const e = await BackupEngine.open({ env: c.env, lock: false });
      const events: ProgressEvent[] = [];
      try {
        const r = await e.restore({ dbDir: dir, backupId, ...(mode ? { mode } : {}), onProgress: (ev) => events.push(ev) });
        return { r, reads: c.reads.map((n) => path.basename(n)), events };
      } finally {
        await e.close();
      }
    }
    /** The table and blob files a restore downloaded, by DB file number. */
    const dataReads = (reads: string[]) => [...new Set(reads.filter((n) => /^0000(07|09|10|11)/.test(n)).map((n) => n.slice(0, 6)))].sort();

    it('purge-all (the default) downloads every file, whatever is already there', async () => {
      const { r, reads } = await restoreInto(fresh(), 2);
      assert.equal(r.filesKept, 0);
      assert.equal(r.bytesReused, 0);
      assert.equal(new Set(reads).size, r.numFiles);
      expected = await snapshot(fresh());
      const again = await restoreInto(fresh(), 2, 'purge-all');
      assert.equal(again.r.filesKept, 0);
      assert.equal(new Set(again.reads).size, r.numFiles);
      assert.deepEqual(await snapshot(fresh()), expected);
    });

    for (const mode of ['keep-latest-session-files', 'verify-checksum'] as const) {
      it(`${mode}: over yesterday's restore only the new files are downloaded, and the result equals a fresh restore`, async () => {
        const target = path.join(work, `yesterday-${mode}`);
        await restoreInto(target, 1);
        const inodes = await Promise.all(['000007.sst', '000009.sst', '000011.blob'].map((n) => inode(path.join(target, n))));
        const { r, reads, events } = await restoreInto(target, 2, mode);
        assert.equal(r.filesKept, 3);
        // Progress counts the kept files as done: it starts at them and ends at the totals.
        assert.deepEqual([events[0]!.filesDone, events[0]!.bytesDone], [3, r.bytesReused]);
        const last = events.at(-1)!;
        assert.deepEqual([last.filesDone, last.bytesDone], [last.filesTotal, last.bytesTotal]);
        assert.equal(last.filesTotal, r.numFiles);
        assert.equal(r.bytesReused, sst7.length + sst9.length + blob.data.length);
        const downloaded = reads.map((n) => n.replace(/_.*\./, '.'));
        const downloadedSet = [...new Set(downloaded)].sort();
        assert.deepEqual(downloadedSet, ['000010.sst', '000012.log', 'CURRENT', 'MANIFEST-000013', 'OPTIONS-000014']);
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
      assert.deepEqual(dataReads(keep.reads), ['000007', '000011']);
      assert.deepEqual(await snapshot(target), expected);

      await flip('000009.sst');
      await flip('000010.sst');
      const verify = await restoreInto(target, 2, 'verify-checksum');
      assert.equal(verify.r.filesKept, 2);
      assert.deepEqual(dataReads(verify.reads), ['000009', '000010']);
      assert.deepEqual(await snapshot(target), expected);
    });

    it('an unknown mode is refused before anything changes', async () => {
      const e = await BackupEngine.open({ env: backupEnv, lock: false });
      await assert.rejects(e.restore({ dbDir: fresh(), mode: 'keep-everything' as never }), (err) => isCairnError(err, 'InvalidArgument'));
      await e.close();
      assert.deepEqual(await snapshot(fresh()), expected);
    });
  });
}
