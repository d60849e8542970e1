// Interop with RocksDB over every kind of file it writes, both directions: blob files, several
// column families, WAL files, schema-2 backup manifests, SST format versions 2-5 (what 7.8.3
// writes), and legacy and session-id names mixed in one backup directory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);
const tools = await Promise.all([run('ldb', ['--version']), run('db_bench', ['--version'])]).then(() => true, () => false);
const skip = requireOrSkip(tools, 'ldb and db_bench (Debian package rocksdb-tools)');

const ldb = async (...args: string[]) => (await run('ldb', args, { maxBuffer: 256 << 20 })).stdout;
const sh = (cmd: string) => run('bash', ['-c', cmd], { maxBuffer: 64 << 20 });

async function dbBench(db: string, ...flags: string[]) {
  await run('db_bench', [`--db=${db}`, '--compression_type=none', '--stats_interval_seconds=0', ...flags]);
}

async function listNames(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const f of new LocalEnv(dir).list(prefix)) out.push(f.name);
  return out.sort();
}

async function dbFiles(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) if (!/^(LOG|LOCK|IDENTITY)/.test(n)) m.set(n, await fsp.readFile(path.join(dir, n)));
  return m;
}

/** Both directions for one DB: cairn → ldb restore, ldb backup → cairn restore (byte-identical). */
async function bothWays(work: string, db: string, scanArgs: string[][] = [[]]): Promise<{ cairnDir: string; ldbDir: string }> {
  const scans = async (d: string) => Promise.all(scanArgs.map((a) => ldb(`--db=${d}`, 'scan', '--hex', ...a)));
  const expected = await scans(db);
  assert.ok(expected.every((s) => s.length > 0), 'the DB has data');
  const cairnDir = `${db}-cairn-backup`;
  const e = await BackupEngine.open({ env: new LocalEnv(cairnDir), maxBackgroundOperations: 2 });
  await e.createBackup(db);
  await e.close();
  const viaLdb = `${db}-ldb-restored`;
  await ldb(`--db=${viaLdb}`, 'restore', `--backup_dir=${cairnDir}`);
  assert.deepEqual(await scans(viaLdb), expected, 'ldb restores what cairn backed up');

  const ldbDir = `${db}-ldb-backup`;
  await ldb(`--db=${db}`, 'backup', `--backup_dir=${ldbDir}`);
  const r = await BackupEngine.open({ env: new LocalEnv(ldbDir), readOnly: true });
  assert.deepEqual(r.listCorruptedBackups(), []);
  assert.deepEqual((await r.verifyBackup(1, { checksum: true })).problems, []);
  const viaCairn = `${db}-cairn-restored`;
  await r.restore({ dbDir: viaCairn });
  const ldbRestored = `${db}-ldb-restored-2`;
  await ldb(`--db=${ldbRestored}`, 'restore', `--backup_dir=${ldbDir}`);
  assert.deepEqual(await dbFiles(viaCairn), await dbFiles(ldbRestored), 'cairn restores an ldb backup byte for byte');
  assert.deepEqual(await scans(viaCairn), expected);
  void work;
  return { cairnDir, ldbDir };
}

describe('interop with RocksDB over every file kind', { skip, timeout: 180_000 }, () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-kinds-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('blob files', async () => {
    const db = path.join(work, 'blob');
    await dbBench(db, '--benchmarks=fillrandom,flush', '--num=5000', '--value_size=400', '--enable_blob_files=true', '--min_blob_size=100', '--blob_file_size=262144');
    assert.ok((await fsp.readdir(db)).some((n) => n.endsWith('.blob')), 'db_bench wrote blob files');
    const { cairnDir, ldbDir } = await bothWays(work, db);
    const blobs = async (d: string) => (await listNames(d, 'shared_checksum/')).filter((n) => n.endsWith('.blob'));
    assert.ok((await blobs(cairnDir)).length > 0);
    assert.ok((await blobs(cairnDir)).every((n) => /^shared_checksum\/[0-9]{6}_[0-9]+_[0-9]+\.blob$/.test(n)));
    assert.deepEqual(await blobs(cairnDir), await blobs(ldbDir), 'blob files named identically');
  });

  it('several column families, with data in table files and in the WAL', async () => {
    const db = path.join(work, 'cf');
    await ldb(`--db=${db}`, '--create_if_missing', 'put', 'default-key', 'default-value');
    for (const cf of ['cf1', 'cf2']) {
      await ldb(`--db=${db}`, 'create_column_family', cf);
      const lines = Array.from({ length: 500 }, (_, i) => `${cf}-key${i} ==> ${cf}-value${i}`).join('\n');
      await fsp.writeFile(`${db}-${cf}.txt`, lines + '\n');
      await sh(`ldb --db='${db}' --column_family=${cf} load < '${db}-${cf}.txt'`);
      await ldb(`--db=${db}`, `--column_family=${cf}`, 'put', `${cf}-wal-only`, 'unflushed');
    }
    await bothWays(work, db, [[], ['--column_family=cf1'], ['--column_family=cf2']]);
  });

  it('SST format versions 2 to 5 are named by session id exactly as RocksDB names them', async () => {
    for (const fv of [2, 3, 4, 5]) {
      const db = path.join(work, `fv${fv}`);
      await dbBench(db, '--benchmarks=fillseq,flush', '--num=3000', `--format_version=${fv}`);
      const { cairnDir, ldbDir } = await bothWays(work, db);
      const ssts = async (d: string) => (await listNames(d, 'shared_checksum/')).filter((n) => n.endsWith('.sst'));
      assert.ok((await ssts(cairnDir)).every((n) => /_s[0-9A-Z]{20}_[0-9]+\.sst$/.test(n)), `fv${fv}: session-id names`);
      assert.deepEqual(await ssts(cairnDir), await ssts(ldbDir), `fv${fv}: same names`);
    }
  });

  it('schema-2 backup manifests: cairn reads them, and RocksDB reads the same rewrite', async () => {
    const db = path.join(work, 'v2');
    await dbBench(db, '--benchmarks=fillseq,flush', '--num=3000');
    const dir = `${db}-backup`;
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${dir}`);
    // Rewrite meta/1 as RocksDB's schema 2.1 (StoreToFile with schema_version 2): version line,
    // per-file size fields, an ignorable meta field and an ignorable footer.
    const v1 = await fsp.readFile(path.join(dir, 'meta/1'), 'utf8');
    const lines = v1.trimEnd().split('\n');
    const [ts, seq, count, ...entries] = lines;
    const sized = await Promise.all(entries.map(async (l) => `${l} size ${(await fsp.stat(path.join(dir, l.split(' ')[0]))).size}`));
    await fsp.writeFile(path.join(dir, 'meta/1'), ['schema_version 2.1', ts, seq, 'future_field some value', count, ...sized, '// FOOTER', 'checksum_of_meta 0', ''].join('\n'));
    const e = await BackupEngine.open({ env: new LocalEnv(dir), readOnly: true });
    assert.deepEqual(e.listCorruptedBackups(), []);
    assert.equal(e.listBackups()[0].numFiles, Number(count));
    const viaCairn = `${db}-cairn-restored`;
    await e.restore({ dbDir: viaCairn });
    const viaLdb = `${db}-ldb-restored`;
    await ldb(`--db=${viaLdb}`, 'restore', `--backup_dir=${dir}`);
    assert.deepEqual(await dbFiles(viaCairn), await dbFiles(viaLdb));
    // a wrong size in a schema-2 entry makes the backup corrupt, for cairn as for RocksDB
    await fsp.writeFile(path.join(dir, 'meta/1'), (await fsp.readFile(path.join(dir, 'meta/1'), 'utf8')).replace(/ size ([0-9]+)/, (_m, n) => ` size ${Number(n) + 1}`));
    const e2 = await BackupEngine.open({ env: new LocalEnv(dir), readOnly: true });
    assert.deepEqual(e2.listCorruptedBackups().map((c) => c.id), [1]);
  });

  it('legacy and session-id names mixed in one backup directory', async () => {
    const db = path.join(work, 'mixed');
    await dbBench(db, '--benchmarks=fillseq,flush', '--num=3000');
    const dir = `${db}-backup`;
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${dir}`);
    const legacy = await BackupEngine.open({ env: new LocalEnv(dir), naming: 'legacy-crc32c-size' });
    await legacy.createBackup(db);
    await legacy.close();
    await fsp.writeFile(`${db}-more.txt`, Array.from({ length: 800 }, (_, i) => `more${i} ==> value${i}`).join('\n') + '\n');
    await sh(`ldb --db='${db}' load < '${db}-more.txt'`);
    const session = await BackupEngine.open({ env: new LocalEnv(dir) });
    const b3 = await session.createBackup(db);
    await session.close();
    const names = await listNames(dir, 'shared_checksum/');
    assert.ok(names.some((n) => /_s[0-9A-Z]{20}_/.test(n)) && names.some((n) => /^shared_checksum\/[0-9]{6}_[0-9]+_[0-9]+\.sst$/.test(n)), names.join(' '));
    const e = await BackupEngine.open({ env: new LocalEnv(dir), readOnly: true });
    assert.deepEqual(e.listBackups().map((b) => b.id), [1, 2, 3]);
    for (const id of [1, 2, 3]) assert.deepEqual((await e.verifyBackup(id, { checksum: true })).problems, []);
    const first = `${db}-r1`;
    await e.restore({ backupId: 2, dbDir: first });
    const latest = `${db}-r3`;
    await ldb(`--db=${latest}`, 'restore', `--backup_dir=${dir}`);
    assert.equal(await ldb(`--db=${latest}`, 'scan', '--hex'), await ldb(`--db=${db}`, 'scan', '--hex'));
    assert.equal(b3.id, 3);
    // RocksDB extends the mixed directory too
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${dir}`);
    assert.deepEqual((await BackupEngine.open({ env: new LocalEnv(dir), readOnly: true })).listBackups().map((b) => b.id), [1, 2, 3, 4]);
  });

  it('--checkpoint-cmd with ldb checkpoint', async () => {
    const db = path.join(work, 'cp');
    await dbBench(db, '--benchmarks=fillseq', '--num=3000');
    const dir = `${db}-backup`;
    const cli = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
    await run(process.execPath, ['--disable-warning=ExperimentalWarning', cli, 'backup', '--db', db, '--backup-dir', dir,
      '--checkpoint-cmd', 'ldb --db="$CAIRN_DB_DIR" checkpoint --checkpoint_dir="$CAIRN_CHECKPOINT_DIR"']);
    const restored = `${db}-restored`;
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${dir}`);
    assert.equal(await ldb(`--db=${restored}`, 'scan', '--hex'), await ldb(`--db=${db}`, 'scan', '--hex'));
  });
});
