// A restore stopped by SIGKILL at each of its phases (clearing the old DB, downloading, just
// before CURRENT is renamed into place) leaves either no CURRENT or a complete DB, and the next
// restore gives byte-identical files. The kill points are observed from outside, in the target
// directory, with no hook in the restore code: the process is stopped (SIGSTOP) the moment the
// awaited state appears, the state is recorded, then it is killed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/cli/main.ts');
const tools = await Promise.all([run('ldb', ['--version']), run('db_bench', ['--version'])]).then(() => true, () => false);
const skip = requireOrSkip(tools, 'ldb and db_bench (Debian package rocksdb-tools)');

function cairn(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}
function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, stderr })));
}

/** Stops `child` with SIGSTOP the first time `cond(dir)` holds after a change in dir; then returns. */
async function stopWhen(child: ChildProcess, dir: string, cond: () => boolean, exited: Promise<unknown>): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    let done = false;
    const check = () => {
      if (done) return;
      let hit = false;
      try {
        hit = cond();
      } catch {
        hit = false;
      }
      if (!hit) return;
      done = true;
      child.kill('SIGSTOP');
      watcher.close();
      resolve(true);
    };
    const watcher = fs.watch(dir, check);
    check();
    void exited.then(() => {
      if (done) return;
      done = true;
      watcher.close();
      resolve(false);
    });
  });
}

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) {
    const st = await fsp.lstat(path.join(dir, n));
    if (st.isFile()) out.set(n, await fsp.readFile(path.join(dir, n)));
  }
  return out;
}

/** No CURRENT, or a DB that ldb opens and reads through (checked on a copy: ldb may write). */
async function assertNoHalfDb(dir: string, scratch: string): Promise<'no CURRENT' | 'complete'> {
  if (!fs.existsSync(path.join(dir, 'CURRENT'))) return 'no CURRENT';
  await fsp.rm(scratch, { recursive: true, force: true });
  await fsp.cp(dir, scratch, { recursive: true });
  await run('ldb', [`--db=${scratch}`, 'checkconsistency']);
  await run('ldb', [`--db=${scratch}`, 'scan', '--no_value'], { maxBuffer: 64 << 20 });
  return 'complete';
}

describe('restore killed at every phase', { skip }, () => {
  let work: string;
  let bk: string;
  let ref: Map<string, Buffer>;
  let n = 0;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-restore-kill-'));
    const db = path.join(work, 'db');
    bk = path.join(work, 'bk');
    // ~30 table files of 1 MB and a WAL: long enough to be slowed down by --rate-limit.
    await run('db_bench', [`--db=${db}`, '--benchmarks=fillseq', '--num=30000', '--value_size=1000', '--write_buffer_size=1048576',
      '--target_file_size_base=1048576', '--compression_type=none', '--stats_interval_seconds=0']);
    const b = await exitOf(cairn(['backup', '--db', db, '--backup-dir', bk]));
    assert.equal(b.code, 0, b.stderr);
    const r = await exitOf(cairn(['restore', '--backup-dir', bk, '--db', path.join(work, 'ref')]));
    assert.equal(r.code, 0, r.stderr);
    ref = await filesOf(path.join(work, 'ref'));
    assert.ok(ref.size > 20);
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  /** A target holding a complete restored DB, plus `extra` files (empty, RocksDB table names). */
  async function oldDb(extra: number): Promise<string> {
    const dir = path.join(work, `t${++n}`);
    await fsp.cp(path.join(work, 'ref'), dir, { recursive: true });
    for (let i = 0; i < extra; i++) await fsp.writeFile(path.join(dir, `${String(100000 + i).padStart(6, '0')}.sst`), '');
    return dir;
  }

  async function killAt(target: string, args: string[], cond: () => boolean): Promise<string> {
    const child = cairn(['restore', '--backup-dir', bk, '--db', target, '--no-space-check', ...args]);
    const exited = exitOf(child);
    const stopped = await stopWhen(child, target, cond, exited);
    if (!stopped) assert.fail(`restore ended before the awaited state: ${(await exited).stderr}`);
    const state = await assertNoHalfDb(target, path.join(work, 'scratch'));
    child.kill('SIGKILL');
    assert.equal((await exited).signal, 'SIGKILL');
    // Killed: the state on disk is what it was when stopped, and the checks hold again after.
    assert.equal(await assertNoHalfDb(target, path.join(work, 'scratch')), state);
    const again = await exitOf(cairn(['restore', '--backup-dir', bk, '--db', target]));
    assert.equal(again.code, 0, again.stderr);
    const got = await filesOf(target);
    assert.deepEqual([...got.keys()], [...ref.keys()], 'the second restore leaves exactly the backup\'s files');
    for (const [name, bytes] of ref) assert.ok(got.get(name)!.equals(bytes), `${name} restored byte for byte`);
    await assertNoHalfDb(target, path.join(work, 'scratch'));
    return state;
  }

  it('while clearing the old DB: CURRENT is gone before any other file', async () => {
    // 20000 stale table names make the clearing long enough to be caught in the middle.
    const target = await oldDb(20000);
    let leftAtStop = 0;
    const state = await killAt(target, [], () => {
      if (fs.existsSync(path.join(target, 'CURRENT'))) return false;
      leftAtStop = fs.readdirSync(target).filter((x) => /^1\d{5}\.sst$/.test(x)).length;
      return true;
    });
    assert.equal(state, 'no CURRENT');
    assert.ok(leftAtStop > 0, 'stopped while old files were still being deleted');
    assert.ok(ref.has('CURRENT'));
  });

  it('while downloading: files in place, no CURRENT', async () => {
    const target = await oldDb(0);
    const tables = [...ref.keys()].filter((x) => x.endsWith('.sst'));
    const state = await killAt(target, ['--threads', '1', '--rate-limit', '4000000'], () => {
      const names = fs.readdirSync(target);
      return names.filter((x) => tables.includes(x)).length >= 3 && names.some((x) => x.endsWith('.cairn-restore.tmp'));
    });
    assert.equal(state, 'no CURRENT');
  });

  it('with every other file in place (flushing, or renaming CURRENT): no CURRENT, or a complete DB', async () => {
    const target = await oldDb(0);
    const others = [...ref.entries()].filter(([x]) => x !== 'CURRENT');
    const state = await killAt(target, ['--threads', '2'], () => others.every(([x, b]) => fs.statSync(path.join(target, x), { throwIfNoEntry: false })?.size === b.length));
    console.log(`# stopped with every other file in place: ${state}`);
  });

  it('a directory with a RocksDB name in the target is left alone; a directory named CURRENT is refused before anything changes', async () => {
    const target = await oldDb(0);
    await fsp.mkdir(path.join(target, '999999.log'));
    const r = await exitOf(cairn(['restore', '--backup-dir', bk, '--db', target]));
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await fsp.stat(path.join(target, '999999.log'))).isDirectory());
    assert.equal(await assertNoHalfDb(target, path.join(work, 'scratch')), 'complete');

    const t2 = path.join(work, `t${++n}`);
    await fsp.mkdir(path.join(t2, 'CURRENT'), { recursive: true });
    await fsp.writeFile(path.join(t2, '000001.sst'), 'old');
    const r2 = await exitOf(cairn(['restore', '--backup-dir', bk, '--db', t2]));
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /CURRENT is a directory/);
    assert.deepEqual((await fsp.readdir(t2)).sort(), ['000001.sst', 'CURRENT'], 'nothing was changed');
  });
});
