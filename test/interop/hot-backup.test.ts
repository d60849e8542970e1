// Hot backups: db_bench writes sequential keys (fillseq) with small memtables and files, so
// flushes and compactions run all the time, while cairn takes backup after backup. Every backup
// must restore to a DB that RocksDB opens, that passes checkconsistency, and that holds exactly
// keys 0..M-1 for some M: a point-in-time prefix of the writes, never a DB with holes.
//
// Nothing here depends on how fast the machine is: the tests follow db_bench's own progress
// lines (--stats_interval: "(n,total) ops"), not the clock. db_bench's fillseq destroys and
// recreates the DB after its first open, so backups start only once writes are reported; and the
// writer is paced by the backups (SIGSTOP once it is a step ahead, SIGCONT when the next backup
// starts), so a slow backup on a busy machine cannot let db_bench finish before 20 backups ran.
import { describe, it, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { spawnChild, type Child } from '../support/children.ts';

const run = promisify(execFile);
const tools = await Promise.all([run('ldb', ['--version']), run('db_bench', ['--version'])]).then(() => true, () => false);
const skip = requireOrSkip(tools, 'ldb and db_bench (Debian package rocksdb-tools)');

const KEYS = 400_000;
/** db_bench reports its progress every this many writes. */
const REPORT_EVERY = 2_000;

interface Writer extends Child {
  /** Writes db_bench has reported done (each one returned, so it is in the WAL file). */
  ops(): number;
  /** Resolves once `n` writes are reported; rejects if db_bench exits first. */
  reached(n: number): Promise<void>;
}

function dbBench(t: TestContext, db: string, benchmarks: string, extra: string[] = []): Writer {
  const c = spawnChild(t, 'db_bench', [
    `--benchmarks=${benchmarks}`, `--db=${db}`, `--num=${KEYS}`, '--value_size=100', '--key_size=16',
    '--compression_type=none', '--write_buffer_size=262144', '--target_file_size_base=262144',
    '--max_bytes_for_level_base=1048576', '--level0_file_num_compaction_trigger=2', '--max_background_jobs=2',
    '--sync=0', '--disable_wal=0', '--stats_interval_seconds=0', `--stats_interval=${REPORT_EVERY}`, ...extra,
  ]);
  // "... thread 0: (2000,4000) ops and ...": the second number counts every write so far
  const ops = () => {
    const all = [...c.stderr().matchAll(/thread \d+: \(\d+,(\d+)\) ops/g)];
    return all.length > 0 ? Number(all[all.length - 1][1]) : 0;
  };
  return { ...c, ops, reached: (n) => c.until(() => ops() >= n, `db_bench reported ${n} writes`) };
}

/** db_bench ended by itself with status 0. */
async function finished(w: Writer): Promise<void> {
  const code = await w.exited;
  assert.equal(code, 0, `db_bench exited ${code ?? w.child.signalCode}: ${w.stderr().slice(-2000)}`);
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

  it('20+ backups under continuous writes, flushes and compactions each restore to a consistent prefix', async (t) => {
    const db = path.join(work, 'db-fillseq');
    const env = new LocalEnv(path.join(work, 'backups'));
    const engine = await BackupEngine.open({ env, maxBackgroundOperations: 2, sync: false });
    const writer = dbBench(t, db, 'fillseq', ['--benchmark_write_rate_limit=2500000']);
    let exited = false;
    void writer.exited.then(() => { exited = true; });
    // One backup per STEP writes: about 30 of them over the run. The writer may run at most one
    // STEP ahead of the backup that is running; past that it is stopped until the next one starts.
    const STEP = KEYS / 32;
    let allowed = STEP;
    let stopped = false;
    writer.child.stderr!.on('data', () => {
      if (!stopped && !exited && writer.ops() >= allowed && allowed < KEYS) {
        stopped = true;
        writer.child.kill('SIGSTOP');
      }
    });
    const hot: { id: number; writesBefore: number }[] = [];
    for (let i = 1; !exited; i++) {
      // wait for the writes this backup is to see, or for the end of the run
      await Promise.race([writer.reached(Math.min(i * STEP, KEYS)).catch(() => {}), writer.exited]);
      if (exited) break;
      const writesBefore = writer.ops();
      allowed = (i + 1) * STEP;
      if (stopped) {
        stopped = false;
        writer.child.kill('SIGCONT');
      }
      const b = await engine.createBackup(db);
      if (!exited) hot.push({ id: b.id, writesBefore });
    }
    await finished(writer);
    const final = await engine.createBackup(db);
    assert.ok(hot.length >= 20, `only ${hot.length} backups completed while db_bench was writing`);
    console.log(`# ${hot.length} backups taken while db_bench was writing`);
    let previous = 0;
    const held: number[] = [];
    for (const { id, writesBefore } of hot) {
      const m = await restoreAndCount(engine, id, path.join(work, `r${id}`));
      assert.ok(m >= previous, `backup ${id} holds ${m} keys, fewer than an earlier backup (${previous})`);
      assert.ok(m >= writesBefore, `backup ${id} holds ${m} keys, but db_bench had reported ${writesBefore} writes before it began`);
      previous = m;
      held.push(m);
    }
    assert.ok(held[0] > 0 && held[0] < KEYS, `the first hot backup saw writes in progress (it held ${held[0]})`);
    assert.equal(await restoreAndCount(engine, final.id, path.join(work, 'final')), KEYS);
    // no staging directory is left in the DB
    assert.deepEqual((await fsp.readdir(db)).filter((n) => n.startsWith('.cairn')), []);
    await engine.close();
  });

  it('backups during random overwrites with compactions restore with every key', async (t) => {
    const db = path.join(work, 'db-overwrite');
    const load = dbBench(t, db, 'fillseq');
    await finished(load);
    const env = new LocalEnv(path.join(work, 'backups-overwrite'));
    const engine = await BackupEngine.open({ env, maxBackgroundOperations: 2, sync: false });
    // --duration outlasts the test: db_bench overwrites until it is stopped below.
    const writer = dbBench(t, db, 'overwrite', ['--use_existing_db=1', '--benchmark_write_rate_limit=4000000', '--duration=3600']);
    const ids: number[] = [];
    for (let i = 1; ids.length < 6; i++) {
      await writer.reached(i * 4 * REPORT_EVERY); // new overwrites since the previous backup
      ids.push((await engine.createBackup(db)).id);
    }
    // A restore over the running DB is refused before anything is touched (RocksDB holds LOCK).
    assert.equal(writer.child.exitCode, null, 'db_bench still runs');
    await assert.rejects(engine.restore({ backupId: ids[0], dbDir: db }), (e) =>
      isCairnError(e, 'Locked') && new RegExp(`open in a running RocksDB process \\(pid ${writer.child.pid}\\)`).test((e as Error).message));
    const left = await fsp.readdir(db);
    assert.ok(left.includes('CURRENT') && left.includes('LOCK') && left.some((n) => n.startsWith('MANIFEST-')), left.join(' '));
    await writer.kill();
    for (const id of ids) assert.equal(await restoreAndCount(engine, id, path.join(work, `o${id}`)), KEYS);
    await engine.close();
  });
});
