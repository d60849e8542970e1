// Interop with a newer RocksDB than the Debian tools (7.8.3): RocksDB 10 through its Java binding
// (rocksdbjni, version in rocksdb10/rocksdbjni.version), driven by rocksdb10/RocksHelper.java.
// Both directions over column families, blob files, table format_version 7 and the DB's own
// file checksums (FileChecksumGenCrc32cFactory), and hot backups by cairn while RocksDB 10
// writes. Every check reads the data back with RocksDB 10 and compares keys and values.
import { describe, it, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { crc32c } from '../../src/crc32c.ts';
import { decodeFooter, FOOTER_SIZE } from '../../src/rocksdb/table-footer.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { spawnChild } from '../support/children.ts';
import { Rocks, skip, assertHolds, prefixHeld, ROCKSDBJNI_VERSION } from './rocksdb10/helper.ts';

const CFS = ['default', 'a', 'b'];
const cairnMain = path.join(import.meta.dirname, '../../src/cli/main.ts');

function cairnCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--disable-warning=ExperimentalWarning', cairnMain, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
const fillArgs = ['--cfs', 'a,b', '--blob', '--format-version', '7'];

async function formatVersion(file: string): Promise<number> {
  const fh = await fsp.open(file);
  try {
    const { size } = await fh.stat();
    const tail = Buffer.alloc(FOOTER_SIZE);
    await fh.read(tail, 0, FOOTER_SIZE, size - FOOTER_SIZE);
    return decodeFooter(tail, size, file).formatVersion;
  } finally {
    await fh.close();
  }
}

const kinds = async (dir: string) => {
  const names = await fsp.readdir(dir);
  return { sst: names.filter((n) => n.endsWith('.sst')), blob: names.filter((n) => n.endsWith('.blob')) };
};

describe(`interop with RocksDB ${ROCKSDBJNI_VERSION} (Java binding)`, { skip, timeout: 600_000 }, () => {
  let work: string;
  let rocks: Rocks;
  const open = (dir: string, readOnly = false) => BackupEngine.open({ env: new LocalEnv(dir), readOnly, maxBackgroundOperations: 2, sync: false });
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-rocksdb10-'));
    rocks = await Rocks.compile(path.join(work, 'classes'));
    assert.match(await rocks.run(['version']), /^1\d\.\d+/, 'RocksDB 10 or newer');
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('RocksDB 10 backups (column families, blob files, format_version 7, file checksums) are listed, verified and restored by cairn; RocksDB reads them', async () => {
    const db = path.join(work, 'a-db');
    const bk = path.join(work, 'a-backups');
    await rocks.run(['fill', db, '0', '1500', ...fillArgs, '--file-checksums']);
    const { sst, blob } = await kinds(db);
    assert.ok(sst.length > 3 && blob.length > 3, `tables ${sst.length}, blob files ${blob.length}`);
    assert.equal(await formatVersion(path.join(db, sst[0])), 7);
    await rocks.run(['backup', db, bk, 'first']);
    await rocks.run(['fill', db, '1500', '500', ...fillArgs]);
    await rocks.run(['backup', db, bk, 'second']);
    const theirs = await rocks.info(bk);
    assert.deepEqual(theirs.corrupted, []);

    const engine = await open(bk, true);
    assert.deepEqual(engine.listCorruptedBackups(), []);
    const ours = engine.listBackups();
    assert.deepEqual(ours.map((b) => [b.id, String(b.appMetadata), b.numFiles, b.size]), theirs.backups.map((b) => [b.id, b.appMetadata, b.numFiles, b.size]));
    const files = engine.getBackupInfo(2, { includeFileDetails: true }).files!.map((f) => f.name);
    assert.ok(files.some((n) => n.endsWith('.blob')) && files.some((n) => n.startsWith('private/2/MANIFEST-')), files.join(' '));
    for (const id of [1, 2]) assert.deepEqual((await engine.verifyBackup(id, { checksum: true })).problems, [], `verify ${id}`);
    for (const [id, n] of [[1, 1500], [2, 2000]]) {
      const out = path.join(work, `a-restored-${id}`);
      await engine.restore({ backupId: id, dbDir: out });
      assertHolds(await rocks.dump(out), CFS, n, `RocksDB backup ${id} restored by cairn`);
    }
    await engine.close();
  });

  it('cairn backups of a RocksDB 10 DB are restored by RocksDB 10\'s BackupEngine and read back', async () => {
    const db = path.join(work, 'b-db');
    const bk = path.join(work, 'b-backups');
    await rocks.run(['fill', db, '0', '1500', ...fillArgs, '--file-checksums']);
    const engine = await open(bk);
    const first = await engine.createBackup(db, { appMetadata: 'one' });
    await rocks.run(['fill', db, '1500', '500', ...fillArgs]);
    const second = await engine.createBackup(db, { appMetadata: 'two' });
    assert.ok(second.sharedBytesReused > 0, 'the second backup shares the unchanged files');
    await engine.close();
    const theirs = await rocks.info(bk);
    assert.deepEqual(theirs.corrupted, []);
    assert.deepEqual(theirs.backups.map((b) => [b.id, b.appMetadata, b.numFiles]), [[first.id, 'one', first.numFiles], [second.id, 'two', second.numFiles]]);
    for (const [id, n] of [[first.id, 1500], [second.id, 2000]]) {
      const out = path.join(work, `b-restored-${id}`);
      await rocks.run(['restore', bk, out, String(id)]);
      assertHolds(await rocks.dump(out), CFS, n, `cairn backup ${id} restored by RocksDB`);
    }
  });

  it('hot backups by cairn while RocksDB 10 writes (2 column families, blob files, file checksums checked): each restores, by cairn and by RocksDB, to a prefix of the writes', async (t: TestContext) => {
    const db = path.join(work, 'hot-db');
    const bk = path.join(work, 'hot-backups');
    const STEP = 1500;
    const TOTAL = 15 * STEP;
    // The writer writes up to the limit it is given and waits; the test raises the limit as each
    // backup begins, so the writes run while the backup pins and copies, on any machine's speed.
    const writer = spawnChild(t, 'java', rocks.javaArgs(['write', db]), { stdio: ['pipe', 'pipe', 'pipe'] });
    // "written N" lines: N writes returned, so they are in the WAL file
    const written = () => {
      const all = [...writer.stdout().matchAll(/^written (\d+)$/gm)];
      return all.length > 0 ? Number(all[all.length - 1][1]) : 0;
    };
    const writtenAtLeast = (n: number) => writer.until(() => written() >= n, `${n} writes`);
    const setLimit = (n: number) => writer.child.stdin!.write(`limit ${n}\n`);
    setLimit(STEP);
    const engine = await open(bk);
    const hot: { id: number; before: number; limit: number }[] = [];
    for (let i = 1; i * STEP < TOTAL; i++) {
      await writtenAtLeast(i * STEP);
      const limit = (i + 1) * STEP;
      setLimit(limit);
      const before = written();
      hot.push({ id: (await engine.createBackup(db)).id, before, limit });
    }
    writer.child.stdin!.end();
    assert.equal(await writer.exited, 0, writer.stderr());
    assert.match(writer.stdout(), /closed\n$/);
    const final = await engine.createBackup(db);
    const { snapshotDb } = await import('../../src/backup/db-files.ts');
    const snap = await snapshotDb(db, { backupLogFiles: false });
    await snap.release();
    const checked = snap.files.filter((f) => f.type === 'table' || f.type === 'blob');
    assert.ok(checked.length > 0 && checked.every((f) => f.dbCrc32c !== undefined), 'the writer\'s files carry checksums that the backups checked');
    let previous = 0;
    let midWrite = 0;
    for (const { id, before, limit } of hot) {
      const out = path.join(work, `hot-restored-${id}`);
      await engine.restore({ backupId: id, dbDir: out });
      const m = prefixHeld(await rocks.dump(out), ['default', 'cf1'], `hot backup ${id}`);
      assert.ok(m >= before && m <= limit, `hot backup ${id} holds ${m} writes; ${before} were done before it began, at most ${limit} by its end`);
      assert.ok(m >= previous, `hot backup ${id} holds fewer writes (${m}) than an earlier one (${previous})`);
      previous = m;
      if (m > before) midWrite++;
      await fsp.rm(out, { recursive: true });
    }
    console.log(`# ${hot.length} hot backups, ${midWrite} of them hold writes made after they began`);
    const last = hot[hot.length - 1];
    const byRocks = path.join(work, 'hot-restored-by-rocksdb');
    await rocks.run(['restore', bk, byRocks, String(last.id)]);
    const m = prefixHeld(await rocks.dump(byRocks), ['default', 'cf1'], `hot backup ${last.id} restored by RocksDB`);
    assert.ok(m >= last.before && m <= last.limit, `${m} writes`);
    const out = path.join(work, 'hot-restored-final');
    await engine.restore({ backupId: final.id, dbDir: out });
    assert.equal(prefixHeld(await rocks.dump(out), ['default', 'cf1'], 'the backup of the closed DB'), TOTAL);
    assert.deepEqual((await fsp.readdir(db)).filter((n) => n.startsWith('.cairn')), []);
    await engine.close();
  });

  it('schema-2 manifests (size and temperature fields) of a RocksDB 10 backup: read by cairn and by RocksDB 10', async () => {
    const db = path.join(work, 's-db');
    const bk = path.join(work, 's-backups');
    await rocks.run(['fill', db, '0', '800', ...fillArgs]);
    await rocks.run(['backup', db, bk, 'v2']);
    // Rewritten as RocksDB's StoreToFile writes schema_version 2 (the Java binding cannot set
    // BackupEngineOptions::schema_version): sizes on every file, a temperature on the tables.
    const [ts, seq, meta, count, ...entries] = (await fsp.readFile(path.join(bk, 'meta/1'), 'utf8')).trimEnd().split('\n');
    const sized = await Promise.all(entries.map(async (l) => {
      const name = l.split(' ')[0];
      return `${l} size ${(await fsp.stat(path.join(bk, name))).size}${name.endsWith('.sst') ? ' temp 4' : ''}`;
    }));
    await fsp.writeFile(path.join(bk, 'meta/1'), ['schema_version 2', ts, seq, meta, count, ...sized, ''].join('\n'));
    const theirs = await rocks.info(bk);
    assert.deepEqual(theirs.corrupted, [], 'RocksDB 10 reads the rewrite');
    const engine = await open(bk, true);
    assert.deepEqual(engine.listCorruptedBackups(), []);
    assert.deepEqual(engine.listBackups().map((b) => [b.id, String(b.appMetadata), b.numFiles, b.size]), theirs.backups.map((b) => [b.id, b.appMetadata, b.numFiles, b.size]));
    assert.deepEqual((await engine.verifyBackup(1, { checksum: true })).problems, []);
    const out = path.join(work, 's-restored');
    await engine.restore({ dbDir: out });
    await engine.close();
    assertHolds(await rocks.dump(out), CFS, 800, 'schema-2 backup restored by cairn');
    const byRocks = path.join(work, 's-restored-by-rocksdb');
    await rocks.run(['restore', bk, byRocks]);
    assertHolds(await rocks.dump(byRocks), CFS, 800, 'schema-2 backup restored by RocksDB');
  });

  it('cairn backup --schema-version 2 writes RocksDB\'s schema 2.1 (sizes, temperatures) that RocksDB 10 opens (checking every size) and restores; cairn reads its own', async () => {
    const db = path.join(work, 'w-db');
    const bk = path.join(work, 'w-backups');
    await rocks.run(['fill', db, '0', '800', ...fillArgs, '--temperature', 'kWarm']);
    const r = await cairnCli(['backup', '--db', db, '--backup-dir', bk, '--schema-version', '2', '--metadata', 'v2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const made = JSON.parse(r.stdout);
    const meta = (await fsp.readFile(path.join(bk, `meta/${made.id}`), 'utf8')).split('\n');
    assert.equal(meta[0], 'schema_version 2.1');
    const entries = meta.filter((l) => / crc32 \d+ size \d+/.test(l));
    assert.equal(entries.length, made.numFiles, meta.join('\n'));
    for (const l of entries) {
      const [name, , , , size] = l.split(' ');
      assert.equal(Number(size), (await fsp.stat(path.join(bk, name))).size, name);
    }
    assert.ok(entries.filter((l) => l.endsWith(' temp kWarm')).length > 0 && entries.filter((l) => l.endsWith(' temp kWarm')).every((l) => l.split(' ')[0].endsWith('.sst')), entries.join('\n'));
    const theirs = await rocks.info(bk);
    // (RocksDB's open checks every size field against the stored file.)
    assert.deepEqual(theirs.corrupted, [], 'RocksDB 10 reads the schema-2 manifest');
    assert.deepEqual(theirs.backups.map((b) => [b.id, b.appMetadata, b.numFiles, b.size]), [[made.id, 'v2', made.numFiles, made.size]]);
    const out = path.join(work, 'w-restored-by-rocksdb');
    await rocks.run(['restore', bk, out]);
    assertHolds(await rocks.dump(out), CFS, 800, 'cairn schema-2 backup restored by RocksDB');
    const engine = await open(bk, true);
    try {
      assert.deepEqual(engine.listCorruptedBackups(), []);
      assert.deepEqual((await engine.verifyBackup(made.id, { checksum: true })).problems, []);
      const mine = path.join(work, 'w-restored-by-cairn');
      await engine.restore({ dbDir: mine });
      assertHolds(await rocks.dump(mine), CFS, 800, 'cairn schema-2 backup restored by cairn');
    } finally {
      await engine.close();
    }
  });

  it('the DB\'s own file checksums (FileChecksumGenCrc32cFactory): matching ones pass; a table damaged on disk after RocksDB wrote it fails the backup naming it, nothing published', async () => {
    const db = path.join(work, 'c-db');
    const bk = path.join(work, 'c-backups');
    await rocks.run(['fill', db, '0', '500', ...fillArgs, '--file-checksums']);
    const { snapshotDb } = await import('../../src/backup/db-files.ts');
    const snap = await snapshotDb(db, { backupLogFiles: false });
    try {
      const recorded = snap.files.filter((f) => f.type === 'table' || f.type === 'blob');
      assert.ok(recorded.length > 3 && recorded.every((f) => f.dbCrc32c !== undefined), 'RocksDB 10 recorded a crc32c for every table and blob file');
      for (const f of recorded) assert.equal(f.dbCrc32c, crc32c(await fsp.readFile(path.join(f.dir, f.name))), `${f.name}: the MANIFEST's checksum is the file's crc32c`);
    } finally {
      await snap.release();
    }
    const engine = await open(bk);
    let sst = '';
    try {
      const good = await engine.createBackup(db);
      assert.deepEqual((await engine.verifyBackup(good.id, { checksum: true })).problems, []);
      // Flip one byte inside a table's data (not its footer: RocksDB still opens it), size kept.
      // The table is one this backup has not stored yet, so the copy has to catch it.
      await rocks.run(['fill', db, '500', '300', ...fillArgs, '--file-checksums']);
      const stored = new Set(engine.getBackupInfo(good.id, { includeFileDetails: true }).files!.map((f) => f.name.split('/').pop()!.split('_')[0]));
      sst = (await kinds(db)).sst.find((n) => !stored.has(n.replace('.sst', ''))) ?? '';
      assert.ok(sst, 'a table written after the first backup');
      const bytes = await fsp.readFile(path.join(db, sst));
      bytes[10] ^= 1;
      await fsp.writeFile(path.join(db, sst), bytes);
      const before = await fsp.readdir(path.join(bk, 'shared_checksum'));
      await assert.rejects(engine.createBackup(db), (e) => {
        assert.ok(isCairnError(e, 'Corruption'), String(e));
        assert.match((e as Error).message, new RegExp(`^${sst.replace('.', '\\.')}: .* MANIFEST records`));
        return true;
      });
      assert.deepEqual(engine.listBackups().map((b) => b.id), [good.id], 'nothing published');
      assert.deepEqual((await fsp.readdir(path.join(bk, 'meta'))).filter((n) => n !== '.cairn-list-index'), [String(good.id)]);
      assert.deepEqual((await fsp.readdir(path.join(bk, 'shared_checksum'))).sort(), before.sort(), 'no stored file left by the failed backup');
    } finally {
      await engine.close();
    }
    const r = await cairnCli(['backup', '--db', db, '--backup-dir', bk, '--json']);
    assert.equal(r.code, 3, 'the CLI exits 3 (corruption)');
    assert.match(r.stderr, new RegExp(sst.replace('.', '\\.')));
  });
});
