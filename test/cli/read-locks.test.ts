// Read locks as processes meet them: a restore of backup 1 is held still (SIGSTOP) in the middle
// of downloading while `cairn purge` and `cairn delete` run against the same directory; a reader
// killed with SIGKILL leaves a lock that does not block anyone; gc removes empty private dirs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { cairn, mainTs, root } from './run-cli.ts';
import { writeFakeDb, type FakeDbSpec } from '../support/fake-db.ts';

function spawnCairn(args: string[]): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', mainTs, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CAIRN_HEARTBEAT_URL: '' } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return { child, exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, stderr }))) };
}

/** Resolves once cond() holds after a change in dir (or at once); rejects if `exited` settles first. */
function waitFor(dir: string, cond: () => boolean, exited: Promise<{ stderr: string }>): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done || !cond()) return;
      done = true;
      watcher.close();
      resolve();
    };
    const watcher = fs.watch(dir, check);
    check();
    void exited.then((r) => {
      if (done) return;
      done = true;
      watcher.close();
      reject(new Error(`process ended before the awaited state: ${r.stderr}`));
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

describe('read locks across processes', () => {
  let work: string;
  let bk: string;
  let ref1: Map<string, Buffer>;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-readlocks-'));
    bk = path.join(work, 'bk');
    const db = path.join(work, 'db');
    // Backup 1: eight 1 MB tables, enough for a rate-limited restore to be caught mid-way.
    const spec: FakeDbSpec = {
      tables: Array.from({ length: 8 }, (_, i) => ({ number: 10 + i, data: randomBytes(1 << 20) })),
      manifestNumber: 5, logNumber: 30, lastSequence: 100,
    };
    await writeFakeDb(db, spec);
    const b1 = await cairn(['backup', '--db', db, '--backup-dir', bk]);
    assert.equal(b1.code, 0, b1.stderr);
    const r = await cairn(['restore', '--backup-dir', bk, '--db', path.join(work, 'ref1'), '--id', '1']);
    assert.equal(r.code, 0, r.stderr);
    ref1 = await filesOf(path.join(work, 'ref1'));
    // Backups 2 and 3 with other tables, so that backup 1's tables become garbage once it goes.
    for (const n of [2, 3]) {
      await fsp.rm(db, { recursive: true });
      await writeFakeDb(db, { tables: [{ number: 40 + n, data: randomBytes(1000) }], manifestNumber: 50 + n, logNumber: 60 + n, lastSequence: 200 + n });
      const b = await cairn(['backup', '--db', db, '--backup-dir', bk]);
      assert.equal(b.code, 0, b.stderr);
    }
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('purge keeps and delete refuses (exit 5) a backup a running restore reads; the restore completes byte-identical; then purge removes it', async () => {
    const target = path.join(work, 'target');
    await fsp.mkdir(target);
    const tables = [...ref1.keys()].filter((x) => x.endsWith('.sst'));
    const restore = spawnCairn(['restore', '--backup-dir', bk, '--db', target, '--id', '1', '--threads', '1', '--rate-limit', '2000000', '--no-space-check']);
    // Held still once downloading has begun: what follows cannot race the restore's end.
    await waitFor(target, () => fs.readdirSync(target).some((x) => tables.includes(x) || x.endsWith('.cairn-restore.tmp')), restore.exited);
    restore.child.kill('SIGSTOP');
    try {
      const purge = await cairn(['purge', '--backup-dir', bk, '--keep', '1']);
      assert.equal(purge.code, 0, purge.stderr);
      assert.match(purge.stdout, /removed 1 backup:\n +2 /);
      assert.match(purge.stdout, new RegExp(`kept backup 1: being read by reader \\(.+ pid ${restore.child.pid}, reading backup 1,`));
      const purgeJson = await cairn(['purge', '--backup-dir', bk, '--keep', '1', '--json']);
      assert.equal(purgeJson.code, 0, purgeJson.stderr);
      const pj = JSON.parse(purgeJson.stdout);
      assert.deepEqual([pj.deleted, pj.keptForReaders], [[], [1]]);
      const listed = await cairn(['list', '--backup-dir', bk, '--locks', '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const lj = JSON.parse(listed.stdout);
      assert.deepEqual(lj.backups.map((b: { id: number }) => b.id), [1, 3]);
      assert.deepEqual(lj.locks.map((l: { kind: string; pid: number; backupIds: number[]; stale: boolean }) => [l.kind, l.pid, l.backupIds, l.stale]), [['read', restore.child.pid, [1], false]]);
      const plain = await cairn(['list', '--backup-dir', bk]);
      assert.match(plain.stdout, new RegExp(`a reader of backup 1 is at work: .+ pid ${restore.child.pid}`));
      assert.ok(Array.isArray(JSON.parse((await cairn(['list', '--backup-dir', bk, '--json'])).stdout)), 'without --locks the JSON stays an array');

      const del = await cairn(['delete', '--backup-dir', bk, '--id', '1']);
      assert.equal(del.code, 5, del.stderr);
      assert.match(del.stderr, new RegExp(`backup 1 .* is being read by reader \\(.+ pid ${restore.child.pid}, reading backup 1`));
      assert.ok(fs.existsSync(path.join(bk, 'meta', '1')), 'the refused delete left backup 1 in place');
    } finally {
      restore.child.kill('SIGCONT');
    }
    const done = await restore.exited;
    assert.equal(done.code, 0, done.stderr);
    const got = await filesOf(target);
    assert.deepEqual([...got.keys()], [...ref1.keys()]);
    for (const [name, bytes] of ref1) assert.ok(got.get(name)!.equals(bytes), `${name} restored byte for byte`);
    assert.deepEqual(await fsp.readdir(path.join(bk, 'locks')), [], 'the restore released its read lock');

    const purge = await cairn(['purge', '--backup-dir', bk, '--keep', '1']);
    assert.equal(purge.code, 0, purge.stderr);
    assert.match(purge.stdout, /removed 1 backup:\n +1 /);
    assert.deepEqual((await fsp.readdir(path.join(bk, 'meta'))).filter(isManifest).sort(), ['3']);
    assert.ok(!fs.existsSync(path.join(bk, 'private', '1')), 'backup 1\'s private files are gone');
  });

  it('a read lock left by a killed reader of this host does not block delete', async () => {
    const script = `import { LocalEnv } from './providers/local/index.ts';
import { ReaderLock } from './src/backup/reader-lock.ts';
await ReaderLock.acquire(new LocalEnv(${JSON.stringify(bk)}), { backupIds: [3] });
process.stdout.write('locked\\n');
setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => { out += d; if (out.includes('locked')) resolve(); });
      child.once('exit', (code) => reject(new Error(`reader exited ${code} before locking`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal((await fsp.readdir(path.join(bk, 'locks'))).length, 1, 'the killed reader left its lock');
    const listed = JSON.parse((await cairn(['list', '--backup-dir', bk, '--locks', '--json'])).stdout);
    assert.deepEqual(listed.locks.map((l: { kind: string; pid: number; stale: boolean }) => [l.kind, l.pid, l.stale]), [['read', child.pid, true]]);
    const del = await cairn(['delete', '--backup-dir', bk, '--id', '3']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await fsp.readdir(path.join(bk, 'meta')), []);
    assert.deepEqual(await fsp.readdir(path.join(bk, 'locks')), [], 'the stale read lock was removed');
  });

/** A backup's manifest (meta/ also holds the list index, meta/.cairn-list-index). */
const isManifest = (name: string) => /^[0-9]+$/.test(name);

  it('gc removes empty private dirs without a manifest, and keeps a live backup\'s', async () => {
    const db = path.join(work, 'db');
    const b = await cairn(['backup', '--db', db, '--backup-dir', bk]);
    assert.equal(b.code, 0, b.stderr);
    const live = (await fsp.readdir(path.join(bk, 'meta'))).filter(isManifest)[0];
    await fsp.mkdir(path.join(bk, 'private', '77'));
    await fsp.mkdir(path.join(bk, 'private', '78.tmp', 'sub'), { recursive: true });
    const gc = await cairn(['gc', '--backup-dir', bk, '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(await fsp.readdir(path.join(bk, 'private')), [live]);
    assert.ok((await fsp.readdir(path.join(bk, 'private', live))).length > 0);
  });
});
