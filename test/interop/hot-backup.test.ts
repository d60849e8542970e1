// Hot backups: db_bench writes sequential keys (fillseq) with small memtables and files, so
// flushes and compactions run all the time, while cairn takes backup after backup. Every backup
// must restore to a DB that RocksDB opens, that passes checkconsistency, and that holds exactly
// keys 0..M-1 for some M: a point-in-time prefix of the writes, never a DB with holes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);
const tools = await Promise.all([run('ldb', ['--version']), run('db_bench', ['--version'])]).then(() => true, () => false);
const skip = requireOrSkip(tools, 'ldb and db_bench (Debian package rocksdb-tools)');

const KEYS = 400_000;

function dbBench(db: string, benchmarks: string, extra: string[] = []) {
  const child = spawn('db_bench', [
    `--benchmarks=${benchmarks}`, `--db=${db}`, `--num=${KEYS}`, '--value_size=100', '--key_size=16',
    '--compression_type=none', '--write_buffer_size=262144', '--target_file_size_base=262144',
    '--max_bytes_for_level_base=1048576', '--level0_file_num_compaction_trigger=2', '--max_background_jobs=2',
    '--sync=0', '--disable_wal=0', '--stats_interval_seconds=0', ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`db_bench exited ${code}: ${stderr}`)))));
  return { child, done };
}

/** Restores backup `id` and returns M such that the DB holds exactly keys 0..M-1. */
async function restoreAndCount(engine: BackupEngine, id: number, dir: string): Promise<number> {
  await engine.restore({ backupId: id, dbDir: dir });
  await run('ldb', [`--db=${dir}`, 'checkconsistency']);
  const { stdout } = await run('ldb', [`--db=${dir}`, 'scan', '--hex', '--no_value'], { maxBuffer: 256 << 20 });
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  for (let i = 0; i < lines.length; i++) {
    // fillseq keys: the index as 8 big-endian bytes, padded with '0' (0x30) to 16 bytes
    const key = lines[i].trim().split(' ')[0];
    const index = Number.parseInt(key.slice(2, 18), 16);
    if (index !== i) assert.fail(`backup ${id}: key #${i} is index ${index}: not a prefix of the writes (${key})`);
  }
  await fsp.rm(dir, { recursive: true, force: true });
  return lines.length;
}

describe('hot backups of a DB being written', { skip, timeout: 240_000 }, () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-hot-'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('20+ backups under continuous writes, flushes and compactions each restore to a consistent prefix', async () => {
    const db = path.join(work, 'db');
    const env = new LocalEnv(path.join(work, 'backups'));
    const engine = await BackupEngine.open({ env, maxBackgroundOperations: 2, sync: false });
    const writer = dbBench(db, 'fillseq', ['--benchmark_write_rate_limit=2500000']);
    let running = true;
    writer.done.finally(() => { running = false; }).catch(() => {});
    while ((await fsp.stat(path.join(db, 'CURRENT')).catch(() => undefined)) === undefined) await new Promise((r) => setTimeout(r, 50));
    const hot: number[] = [];
    // About one backup every 450 ms over db_bench's ~18 s run: 20-40 hot backups, even on a busy machine.
    while (running) {
      const t = performance.now();
      const b = await engine.createBackup(db);
      if (running) hot.push(b.id);
      await new Promise((r) => setTimeout(r, Math.max(0, 450 - (performance.now() - t))));
    }
    await writer.done;
    const final = await engine.createBackup(db);
    assert.ok(hot.length >= 20, `only ${hot.length} backups completed while db_bench was writing`);
    console.log(`# ${hot.length} backups taken while db_bench was writing`);
    let previous = 0;
    for (const id of hot) {
      const m = await restoreAndCount(engine, id, path.join(work, `r${id}`));
      assert.ok(m >= previous, `backup ${id} holds ${m} keys, fewer than an earlier backup (${previous})`);
      previous = m;
    }
    assert.ok(previous > 0 && previous < KEYS, `hot backups saw writes in progress (last held ${previous})`);
    assert.equal(await restoreAndCount(engine, final.id, path.join(work, 'final')), KEYS);
    // no staging directory is left in the DB
    assert.deepEqual((await fsp.readdir(db)).filter((n) => n.startsWith('.cairn')), []);
  });

  it('backups during random overwrites with compactions restore with every key', async () => {
    const db = path.join(work, 'db');
    const env = new LocalEnv(path.join(work, 'backups-overwrite'));
    const engine = await BackupEngine.open({ env, maxBackgroundOperations: 2, sync: false });
    // --duration keeps db_bench overwriting for 10 s however fast or slow the machine is.
    const writer = dbBench(db, 'overwrite', ['--use_existing_db=1', '--benchmark_write_rate_limit=4000000', '--duration=10']);
    let running = true;
    writer.done.finally(() => { running = false; }).catch(() => {});
    const ids: number[] = [];
    while (running && ids.length < 6) ids.push((await engine.createBackup(db)).id);
    // A restore over the running DB is refused before anything is touched (RocksDB holds LOCK).
    assert.ok(running, 'db_bench was still writing after the backups');
    {
      await assert.rejects(engine.restore({ backupId: ids[0], dbDir: db }), (e) =>
        isCairnError(e, 'Locked') && new RegExp(`open in a running RocksDB process \\(pid ${writer.child.pid}\\)`).test((e as Error).message));
      const left = await fsp.readdir(db);
      assert.ok(left.includes('CURRENT') && left.includes('LOCK') && left.some((n) => n.startsWith('MANIFEST-')), left.join(' '));
      assert.equal(writer.child.exitCode, null, 'db_bench still runs');
    }
    writer.child.kill('SIGTERM');
    await writer.done.catch(() => {});
    assert.ok(ids.length >= 3, `only ${ids.length} backups during the overwrites`);
    for (const id of ids) assert.equal(await restoreAndCount(engine, id, path.join(work, `o${id}`)), KEYS);
  });
});
