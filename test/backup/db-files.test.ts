// Which files a backup takes from a DB directory, and what it refuses to take.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { snapshotDb } from '../../src/backup/db-files.ts';
import { optionValue } from '../../src/rocksdb/options-file.ts';
import { dbLockHolder } from '../../src/rocksdb/db-lock.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);
const dbBench = await run('db_bench', ['--version']).then(() => true, () => false);
const dbBenchSkip = requireOrSkip(dbBench, 'db_bench (Debian package rocksdb-tools)');

const OPTIONS = (recycle: number) => `# This is a RocksDB option file.
[Version]
  rocksdb_version=7.8.3
  options_file_version=1.1

[DBOptions]
  max_background_flushes=-1
  recycle_log_file_num=${recycle}
  wal_dir=

[CFOptions "default"]
  recycle_log_file_num=7
`;

describe('snapshotDb', () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-dbfiles-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  const spec: FakeDbSpec = { tables: [table(7, 10_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 };

  it('reads DBOptions from an OPTIONS file, not a column family section of the same name', () => {
    assert.equal(optionValue(OPTIONS(3), 'DBOptions', 'recycle_log_file_num'), '3');
    assert.equal(optionValue(OPTIONS(3), 'CFOptions', 'recycle_log_file_num'), '7');
    assert.equal(optionValue(OPTIONS(3), 'DBOptions', 'wal_dir'), '');
    assert.equal(optionValue(OPTIONS(3), 'DBOptions', 'missing'), undefined);
  });

  it('refuses the WALs of a DB that recycles them, and says what to do instead', async () => {
    const db = path.join(work, 'recycling');
    await writeFakeDb(db, spec);
    await fsp.writeFile(path.join(db, 'OPTIONS-000006'), OPTIONS(4));
    await assert.rejects(snapshotDb(db, { backupLogFiles: true }), (e) =>
      isCairnError(e, 'NotSupported') && /recycle_log_file_num=4.*--checkpoint-cmd.*--no-backup-log-files/.test((e as Error).message));
    assert.deepEqual((await fsp.readdir(db)).filter((n) => n.startsWith('.cairn-pin-')), [], 'no staging left behind');
    // without WAL files there is nothing recycled to copy
    const snap = await snapshotDb(db, { backupLogFiles: false });
    assert.deepEqual(snap.files.map((f) => f.name).sort(), ['000007.sst', 'CURRENT', 'MANIFEST-000005', 'OPTIONS-000006']);
    await snap.release();
  });

  it('a DB whose LOCK nobody holds is not reported open (the held case runs against db_bench in test/interop)', async () => {
    const db = path.join(work, 'closed');
    await writeFakeDb(db, spec);
    assert.equal(await dbLockHolder(db), undefined, 'no LOCK file');
    await fsp.writeFile(path.join(db, 'LOCK'), '');
    assert.equal(await dbLockHolder(db), undefined, 'LOCK not held');
  });

  it('takes the WALs of a DB that does not recycle them', async () => {
    const db = path.join(work, 'plain');
    await writeFakeDb(db, spec);
    await fsp.writeFile(path.join(db, 'OPTIONS-000006'), OPTIONS(0));
    const snap = await snapshotDb(db, { backupLogFiles: true });
    assert.equal(snap.pinning, 'hardlink');
    assert.ok(snap.files.some((f) => f.name === '000009.log'));
    await snap.release();
  });
  it('takes the newest sequence from the WALs, drops a WAL without a record and keeps a damaged one unread', async () => {
    const db = path.join(work, 'scanned');
    const damaged = fakeWal(30);
    damaged[damaged.length - 1] ^= 0x01; // the last payload byte: a checksum mismatch, not a torn tail
    await writeFakeDb(db, { ...spec, wals: [{ number: 9, data: fakeWal(20) }, { number: 10, data: Buffer.alloc(4096) }, { number: 11, data: damaged }] });
    await fsp.writeFile(path.join(db, 'OPTIONS-000006'), OPTIONS(0));
    const snap = await snapshotDb(db, { backupLogFiles: true });
    try {
      assert.deepEqual(snap.files.filter((f) => f.type === 'wal').map((f) => f.name), ['000009.log', '000011.log']);
      assert.equal(snap.sequence, 20n, 'from 000009.log (the MANIFEST says 10); the damaged WAL is not trusted');
    } finally {
      await snap.release();
    }
  });

  it('CURRENT naming a MANIFEST that does not exist fails at once as a damaged DB, not after 50 retries', async () => {
    const db = path.join(work, 'no-manifest');
    await writeFakeDb(db, spec);
    await fsp.rm(path.join(db, 'MANIFEST-000005'));
    await assert.rejects(snapshotDb(db, { backupLogFiles: true }), (e) =>
      isCairnError(e, 'NotFound') && /CURRENT names MANIFEST-000005, which does not exist/.test((e as Error).message));
    // (It used to be retried 50 times, ~25 s, and then reported as Incomplete: "kept changing".)
    assert.deepEqual((await fsp.readdir(db)).filter((n) => n.startsWith('.cairn-pin-')), [], 'no staging left behind');
  });
});

describe('snapshotDb of a DB db_bench wrote', { skip: dbBenchSkip }, () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-dbfiles-wal-'));
    // 450 puts of 100 KB and a write buffer large enough that nothing is flushed: all in one WAL.
    await run('db_bench', [`--db=${path.join(work, 'db')}`, '--benchmarks=fillseq', '--num=450', '--value_size=100000',
      '--write_buffer_size=268435456', '--compression_type=none', '--stats_interval_seconds=0']);
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('scans its 40+ MiB WAL for the sequence number and takes the WAL whole', async () => {
    const db = path.join(work, 'db');
    const snap = await snapshotDb(db, { backupLogFiles: true });
    try {
      const wals = snap.files.filter((f) => f.type === 'wal');
      assert.equal(wals.length, 1);
      assert.ok(wals[0].size > 40 * 1024 * 1024, `WAL of ${wals[0].size} bytes`);
      assert.equal(wals[0].size, (await fsp.stat(path.join(db, wals[0].name))).size);
      assert.ok(snap.manifest.lastSequence < 450, 'nothing flushed: the MANIFEST does not know the writes');
      assert.equal(snap.sequence, 450n, 'one sequence number per put, read from the WAL');
    } finally {
      await snap.release();
    }
  });
});
