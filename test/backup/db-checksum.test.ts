// The DB's own file checksums (FileChecksumGenCrc32cFactory): a backup compares the crc32c of
// what it read with what the MANIFEST records, and fails, publishing nothing, on a mismatch.
// RocksDB 10 itself is exercised in test/interop/rocksdb10.test.ts; these cover every naming
// (session id, crc32c, shared/, private) and a copy already stored, on DB directories built here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine, type BackupEngineOptions } from '../../src/backup/engine.ts';
import { snapshotDb } from '../../src/backup/db-files.ts';
import { dbCrc32c } from '../../src/backup/db-checksum.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { writeFakeDb, table, type FakeDbSpec } from '../support/fake-db.ts';

const spec = (): FakeDbSpec => ({
  tables: [table(7, 20_000), table(8, 30_000)],
  blobs: [table(10, 5_000)],
  manifestNumber: 5,
  optionsNumber: 6,
  logNumber: 11,
  lastSequence: 10,
  fileChecksums: true,
});

/** Every file under dir, relative to it. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

async function flipByte(file: string, at: number): Promise<void> {
  const bytes = await fsp.readFile(file);
  bytes[at] ^= 0x40;
  await fsp.writeFile(file, bytes);
}

describe('the DB\'s file checksums (MANIFEST file_checksum)', () => {
  let work: string;
  let n = 0;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-dbcsum-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  const fresh = async () => {
    const dir = path.join(work, `case-${++n}`);
    const s = spec();
    await writeFakeDb(path.join(dir, 'db'), s);
    return { db: path.join(dir, 'db'), bk: path.join(dir, 'backups'), s };
  };
  const open = (bk: string, opts: Omit<BackupEngineOptions, 'env'> = {}) => BackupEngine.open({ env: new LocalEnv(bk), sync: false, lock: false, ...opts });

  it('are read from the MANIFEST for table and blob files (4 bytes, big-endian)', async () => {
    const { db, s } = await fresh();
    const snap = await snapshotDb(db, { backupLogFiles: false });
    try {
      const byName = Object.fromEntries(snap.files.map((f) => [f.name, f.dbCrc32c]));
      assert.deepEqual(byName, {
        '000007.sst': crc32c(s.tables[0].data),
        '000008.sst': crc32c(s.tables[1].data),
        '000010.blob': crc32c(s.blobs![0].data),
        'MANIFEST-000005': undefined,
        CURRENT: undefined,
        'OPTIONS-000006': undefined,
      });
    } finally {
      await snap.release();
    }
    const be = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    assert.equal(dbCrc32c({ funcName: 'FileChecksumCrc32c', value: be }, 'x.sst', 'MANIFEST-1'), 0x12345678);
    assert.equal(dbCrc32c({ funcName: 'MyOwnChecksum', value: be }, 'x.sst', 'MANIFEST-1'), undefined, 'a generator cairn cannot recompute is passed over');
    assert.equal(dbCrc32c(undefined, 'x.sst', 'MANIFEST-1'), undefined);
    assert.throws(() => dbCrc32c({ funcName: 'FileChecksumCrc32c', value: Buffer.alloc(0) }, 'x.sst', 'MANIFEST-1'), (e) => isCairnError(e, 'Corruption') && /x\.sst/.test((e as Error).message));
  });

  it('matching checksums: the backup passes and stores the DB\'s crc32c for each file', async () => {
    const { db, bk, s } = await fresh();
    for (const opts of [{}, { naming: 'legacy-crc32c-size' as const }, { shareFilesWithChecksum: false }, { shareTableFiles: false }]) {
      const engine = await open(`${bk}-${Object.keys(opts).join('') || 'default'}`, opts);
      try {
        const info = await engine.createBackup(db);
        const crcs = Object.fromEntries(engine.getBackupInfo(info.id, { includeFileDetails: true }).files!.map((f) => [path.basename(f.name).slice(0, 6), f.crc32c]));
        assert.equal(crcs['000007'], crc32c(s.tables[0].data), JSON.stringify(opts));
        assert.equal(crcs['000010'], crc32c(s.blobs![0].data), JSON.stringify(opts));
      } finally {
        await engine.close();
      }
    }
  });

  for (const [what, opts] of [
    ['shared_checksum/, default naming (no session id in these tables: named by the DB\'s checksum)', {}],
    ['shared_checksum/, crc32c naming (named by the DB\'s checksum)', { naming: 'legacy-crc32c-size' as const }],
    ['shared/ by plain name (checked as it is copied)', { shareFilesWithChecksum: false }],
    ['private copies (checked as they are copied)', { shareTableFiles: false }],
  ] as const) {
    for (const victim of ['000008.sst', '000010.blob']) {
      it(`${what}: ${victim} damaged on disk after RocksDB wrote it (size kept) fails the backup naming it; nothing is published`, async () => {
        const { db, bk } = await fresh();
        await flipByte(path.join(db, victim), 1234);
        const engine = await open(bk, { ...opts, maxBackgroundOperations: 2 });
        try {
          await assert.rejects(engine.createBackup(db), (e) => {
            assert.ok(isCairnError(e, 'Corruption'), String(e));
            assert.match((e as Error).message, new RegExp(`^${victim.replace('.', '\\.')}: .*crc32c .* MANIFEST records`));
            return true;
          });
          assert.deepEqual(engine.listBackups(), []);
        } finally {
          await engine.close();
        }
        // Whole shared copies of the good files may stay for a resumed run; the damaged one never
        // is stored, and nothing is published.
        const stored = (await tree(bk)).filter((f) => !f.startsWith('locks/'));
        assert.deepEqual(stored.filter((f) => f.startsWith('meta/') || f.startsWith('private/')), [], 'no manifest, no private file');
        assert.deepEqual(stored.filter((f) => path.basename(f).startsWith(victim.split('.')[0])), [], 'no copy of the damaged file');
        assert.ok(stored.every((f) => f.startsWith('shared')), String(stored));
        assert.deepEqual((await fsp.readdir(db)).filter((f) => f.startsWith('.cairn')), [], 'no staging left');
      });
    }
  }

  it('crc32c naming takes the DB\'s checksum, not a first read: a file damaged after an earlier backup stored it shares that good copy, as in RocksDB', async () => {
    const { db, bk, s } = await fresh();
    const engine = await open(bk, { naming: 'legacy-crc32c-size' });
    try {
      await engine.createBackup(db);
      await flipByte(path.join(db, '000008.sst'), 500);
      const second = await engine.createBackup(db);
      assert.equal(second.copiedBytes, second.size - 30_000 - 20_000 - 5_000, 'tables and blob file shared, not copied');
      assert.deepEqual((await engine.verifyBackup(second.id, { checksum: true })).problems, []);
      const out = path.join(path.dirname(bk), 'restored');
      await engine.restore({ backupId: second.id, dbDir: out });
      assert.deepEqual(await fsp.readFile(path.join(out, '000008.sst')), s.tables[1].data, 'the backup holds the bytes RocksDB wrote');
    } finally {
      await engine.close();
    }
  });

  it('a copy already stored under the same name whose crc32c is not what the DB now records fails the backup', async () => {
    const { db, bk, s } = await fresh();
    const engine = await open(bk, { shareFilesWithChecksum: false });
    try {
      await engine.createBackup(db);
      // The DB is recreated: table 8 has other bytes of the same size, and the MANIFEST says so.
      await writeFakeDb(db, { ...s, manifestNumber: 12, tables: [s.tables[0], table(8, 30_000)] });
      await assert.rejects(engine.createBackup(db), (e) => isCairnError(e, 'Corruption') && /^000008\.sst: the copy already in the backup directory \(shared\/000008\.sst\)/.test((e as Error).message));
      assert.deepEqual(engine.listBackups().map((b) => b.id), [1]);
    } finally {
      await engine.close();
    }
  });

  it('files the DB recorded no checksum for are backed up as before', async () => {
    const { db, bk, s } = await fresh();
    await writeFakeDb(db, { ...s, manifestNumber: 12, fileChecksums: false });
    await flipByte(path.join(db, '000008.sst'), 10);
    const engine = await open(bk);
    try {
      assert.equal((await engine.createBackup(db)).numFiles, 6);
    } finally {
      await engine.close();
    }
  });
});
