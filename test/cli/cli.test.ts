// The CLI contract: flags, JSON documents and exit codes that scripts depend on.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { hostname, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { spawnChild, waitFor } from '../support/children.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/cli/main.ts');

interface Run { code: number; stdout: string; stderr: string }
function cairn(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Resolves once `probe(names in dir)` returns a name: polls the directory until the state a signal must interrupt is there. */
function entryIn(dir: string, probe: (names: string[], dir: string) => Promise<string | undefined>, what: string, exited: Promise<unknown>): Promise<string> {
  return waitFor(async () => probe(await fsp.readdir(dir).catch(() => [] as string[]), dir), what, exited);
}

/** The backup has pinned the DB's table files (hard links in its staging directory): copying starts. */
const pinnedTables = (tables: string[]) => async (names: string[], dir: string) => {
  for (const n of names.filter((x) => x.startsWith('.cairn-pin-'))) {
    const linked = await fsp.readdir(path.join(dir, n)).catch(() => [] as string[]);
    if (tables.every((t) => linked.includes(t))) return n;
  }
  return undefined;
};

/** A restore has written bytes into a file it has not finished. */
const partlyRestored = async (names: string[], dir: string) => {
  for (const n of names.filter((x) => x.endsWith('.cairn-restore.tmp'))) {
    if (((await fsp.stat(path.join(dir, n)).catch(() => undefined))?.size ?? 0) > 0) return n;
  }
  return undefined;
};

describe('cairn CLI', () => {
  let work: string;
  let db: string;
  let bk: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-cli-'));
    db = path.join(work, 'db');
    bk = path.join(work, 'backups');
    await writeFakeDb(db, { tables: [table(7, 50_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('backup --json prints the contract document', async () => {
    const r = await cairn(['backup', '--db', db, '--backup-dir', bk, '--metadata', 'hello', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(doc).sort(), ['bytesResumed', 'bytesReused', 'copiedBytes', 'filesKept', 'filesResumed', 'id', 'numFiles', 'sharedBytesReused', 'size']);
    assert.equal(doc.id, 1);
    assert.equal(doc.numFiles, 5);
    assert.equal(doc.copiedBytes, doc.size);
    const again = JSON.parse((await cairn(['backup', '--db', db, '--backup-dir', `file://${bk}`, '--json'])).stdout);
    assert.equal(again.id, 2);
    assert.equal(again.sharedBytesReused, 50_000);
    assert.equal(again.bytesReused, 50_000);
    assert.equal(again.filesKept, 1);
    assert.equal(again.filesResumed, 0);
  });

  it('list --json, with CAIRN_BACKUP_DIR from a .env file, flags corrupt backups', async () => {
    await fsp.writeFile(path.join(work, '.env'), `CAIRN_BACKUP_DIR=${bk}\n`);
    await fsp.mkdir(path.join(bk, 'meta'), { recursive: true });
    await fsp.writeFile(path.join(bk, 'meta', '3'), 'not a manifest\n');
    const r = await cairn(['list', '--json'], { cwd: work });
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout);
    assert.deepEqual(rows.map((x: { id: number; corrupt: boolean }) => [x.id, x.corrupt]), [[1, false], [2, false], [3, true]]);
    assert.deepEqual(Object.keys(rows[0]).sort(), ['appMetadata', 'corrupt', 'id', 'numFiles', 'size', 'timestamp']);
    assert.equal(rows[0].appMetadata, 'hello');
    assert.equal(rows[0].numFiles, 5);
    await fsp.rm(path.join(bk, 'meta', '3'));
  });

  it('verify exits 3 on a checksum mismatch and 4 on an unknown backup', async () => {
    assert.equal((await cairn(['verify', '--backup-dir', bk, '--checksum'])).code, 0);
    const shared = (await fsp.readdir(path.join(bk, 'shared_checksum')))[0];
    const p = path.join(bk, 'shared_checksum', shared);
    const bytes = await fsp.readFile(p);
    bytes[100] ^= 1;
    await fsp.writeFile(p, bytes);
    assert.equal((await cairn(['verify', '--backup-dir', bk])).code, 0, 'sizes still match');
    const r = await cairn(['verify', '--backup-dir', bk, '--checksum', '--json']);
    assert.equal(r.code, 3);
    const res = JSON.parse(r.stdout);
    assert.equal(res.length, 2);
    assert.equal(res[0].problems[0].file, `shared_checksum/${shared}`);
    bytes[100] ^= 1;
    await fsp.writeFile(p, bytes);
    assert.equal((await cairn(['verify', '--backup-dir', bk, '--id', '77'])).code, 4);
    assert.equal((await cairn(['restore', '--backup-dir', bk, '--db', path.join(work, 'r'), '--id', '77'])).code, 4);
  });

  it('usage errors exit 2 with a message', async () => {
    for (const args of [['frobnicate'], ['backup', '--backup-dir', bk], ['purge', '--backup-dir', bk, '--keep', '-1'], ['backup', '--db', db, '--backup-dir', bk, '--threads', 'many'], ['list', '--backup-dir', bk, '--bogus'], []]) {
      const r = await cairn(args, { env: { CAIRN_BACKUP_DIR: '' } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
    }
  });

  it('restore, purge, delete and gc work end to end', async () => {
    const out = path.join(work, 'restored');
    const r = await cairn(['restore', '--backup-dir', bk, '--db', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).id, 2);
    assert.deepEqual((await fsp.readdir(out)).sort(), ['000007.sst', '000009.log', 'CURRENT', 'MANIFEST-000005', 'OPTIONS-000006']);
    assert.ok((await fsp.readFile(path.join(out, '000007.sst'))).equals(await fsp.readFile(path.join(db, '000007.sst'))));
    assert.equal((await cairn(['purge', '--backup-dir', bk, '--keep', '1'])).code, 0);
    assert.equal((await cairn(['delete', '--backup-dir', bk, '--id', '1'])).code, 4, 'already purged');
    await fsp.writeFile(path.join(bk, 'shared_checksum', '000999_1_1.sst'), 'x');
    const gc = await cairn(['gc', '--backup-dir', bk, '--json']);
    assert.deepEqual(JSON.parse(gc.stdout), { deletedFiles: 0, abortedUploads: 0, keptForResume: 1, retained: [] }, 'young: kept for a resumed backup');
    assert.equal((await cairn(['gc', '--backup-dir', bk, '--grace', 'soon'])).code, 2);
    const gc0 = await cairn(['gc', '--backup-dir', bk, '--grace', '0', '--json']);
    assert.deepEqual(JSON.parse(gc0.stdout), { deletedFiles: 1, abortedUploads: 0, keptForResume: 0, retained: [] });
    assert.equal((await cairn(['delete', '--backup-dir', bk, '--id', '2'])).code, 0);
    assert.deepEqual(JSON.parse((await cairn(['list', '--backup-dir', bk, '--json'])).stdout), []);
  });

  it('--checkpoint-cmd backs up the checkpoint the command makes, then removes it', async () => {
    const cp = path.join(work, 'cp-backups');
    const cmd = `cp -r "$CAIRN_DB_DIR" "$CAIRN_CHECKPOINT_DIR" && echo made > "$CAIRN_CHECKPOINT_DIR/../checkpoint-ran"`;
    const r = await cairn(['backup', '--db', db, '--backup-dir', cp, '--checkpoint-cmd', cmd, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).numFiles, 5);
    assert.equal((await fsp.readFile(path.join(work, 'checkpoint-ran'), 'utf8')).trim(), 'made');
    assert.deepEqual((await fsp.readdir(work)).filter((n) => n.startsWith('.cairn-checkpoint')), []);
    const bad = await cairn(['backup', '--db', db, '--backup-dir', cp, '--checkpoint-cmd', 'echo no space left >&2; exit 7']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /checkpoint .* failed: --checkpoint-cmd exited 7: no space left/);
  });

  it('--no-sync backs up and restores the same bytes (--no-space-check too)', async () => {
    const dir = path.join(work, 'nosync-backups');
    const out = path.join(work, 'nosync-restored');
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', dir, '--no-sync'])).code, 0);
    assert.equal((await cairn(['restore', '--backup-dir', dir, '--db', out, '--no-sync', '--no-space-check'])).code, 0);
    assert.ok((await fsp.readFile(path.join(out, '000007.sst'))).equals(await fsp.readFile(path.join(db, '000007.sst'))));
    assert.equal((await cairn(['list', '--backup-dir', dir, '--no-sync'])).code, 2, 'not a list flag');
  });

  it('a writer lock held elsewhere: writing commands exit 5 naming the holder, reads work, unlock removes it', async () => {
    const dir = path.join(work, 'locked');
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', dir])).code, 0);
    const now = new Date().toISOString();
    await fsp.mkdir(path.join(dir, 'locks'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'locks', `${Date.now()}-0123456789abcdef`), JSON.stringify({ host: 'db-host-7', pid: 4242, created: now, refreshed: now }));
    for (const args of [['backup', '--db', db], ['purge', '--keep', '1'], ['gc']]) {
      const r = await cairn([...args, '--backup-dir', dir]);
      assert.equal(r.code, 5, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /locked by another writer \(db-host-7 pid 4242/);
    }
    assert.equal((await cairn(['verify', '--backup-dir', dir, '--checksum'])).code, 0);
    assert.match((await cairn(['list', '--backup-dir', dir])).stdout, /a writer is at work: db-host-7 pid 4242, since /);
    // unlock removes stale locks only; a live one needs --all
    const hostPid = (l: { host: string; pid: number }) => [l.host, l.pid];
    const keep = await cairn(['unlock', '--backup-dir', dir, '--json']);
    assert.equal(keep.code, 0, keep.stderr);
    assert.deepEqual(JSON.parse(keep.stdout).removed, []);
    assert.deepEqual(JSON.parse(keep.stdout).kept.map(hostPid), [['db-host-7', 4242]]);
    const u = await cairn(['unlock', '--backup-dir', dir, '--all', '--json']);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(JSON.parse(u.stdout).removed.map(hostPid), [['db-host-7', 4242]]);
    assert.deepEqual(await fsp.readdir(path.join(dir, 'locks')), []);
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', dir])).code, 0);
    assert.equal(JSON.parse((await cairn(['list', '--backup-dir', dir, '--json'])).stdout).length, 2);
  });

  it('a lock left by a killed cairn on this host does not block the next run', async () => {
    const dir = path.join(work, 'crashed');
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', dir])).code, 0);
    // a process of this host that has exited: its pid is free
    const gone = await new Promise<number>((resolve) => {
      const c = execFile(process.execPath, ['-e', '0'], () => resolve(c.pid!));
    });
    const now = new Date().toISOString();
    await fsp.writeFile(path.join(dir, 'locks', `${Date.now()}-00000000deadbeef`), JSON.stringify({ host: hostname(), pid: gone, created: now, refreshed: now }));
    const r = await cairn(['backup', '--db', db, '--backup-dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).id, 2);
    assert.deepEqual(await fsp.readdir(path.join(dir, 'locks')), []);
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`${sig} stops a backup cleanly: exit ${sig === 'SIGINT' ? 130 : 143}, nothing published, no lock or staging left, the next backup works`, async (t) => {
      const big = path.join(work, `big-${sig}`);
      await writeFakeDb(big, { tables: [table(7, 3_000_000), table(8, 3_000_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
      const dir = path.join(work, `stopped-${sig}`);
      // 500 kB/s: reading 6 MB takes 12 s or more; the signal comes once the tables are pinned
      // (the CLI draws no progress line on a pipe, so the pin directory is the sign of progress)
      const c = spawnChild(t, process.execPath, ['--disable-warning=ExperimentalWarning', main, 'backup', '--db', big, '--backup-dir', dir, '--rate-limit', '500000']);
      await entryIn(big, pinnedTables(['000007.sst', '000008.sst']), 'the backup pinning the tables', c.exited);
      c.child.kill(sig);
      assert.equal(await c.exited, sig === 'SIGINT' ? 130 : 143, c.stderr());
      assert.match(c.stderr(), new RegExp(`${sig}: stopping cleanly`));
      assert.deepEqual(await fsp.readdir(path.join(dir, 'meta')).catch(() => []), []);
      assert.deepEqual(await fsp.readdir(path.join(dir, 'locks')).catch(() => []), []);
      assert.deepEqual((await fsp.readdir(big)).filter((n) => n.startsWith('.cairn-pin-')), []);
      const again = await cairn(['backup', '--db', big, '--backup-dir', dir, '--json']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).id, 1);
      const v = await cairn(['verify', '--backup-dir', dir, '--checksum']);
      assert.equal(v.code, 0, v.stderr);
    });
  }

  it('SIGINT stops a restore: exit 130, no CURRENT and no temporary files left, the next restore works', async (t) => {
    const big = path.join(work, 'big-restore-src');
    await writeFakeDb(big, { tables: [table(7, 3_000_000), table(8, 3_000_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
    const dir = path.join(work, 'big-restore-backups');
    assert.equal((await cairn(['backup', '--db', big, '--backup-dir', dir])).code, 0);
    const out = path.join(work, 'big-restored');
    const c = spawnChild(t, process.execPath, ['--disable-warning=ExperimentalWarning', main, 'restore', '--backup-dir', dir, '--db', out, '--rate-limit', '500000']);
    await entryIn(out, partlyRestored, 'a partly restored file', c.exited);
    c.child.kill('SIGINT');
    assert.equal(await c.exited, 130, c.stderr());
    assert.match(c.stderr(), /SIGINT: stopping cleanly/);
    const left = await fsp.readdir(out);
    assert.ok(!left.includes('CURRENT'), left.join(' '));
    assert.deepEqual(left.filter((n) => n.includes('.cairn')), [], 'no temporary files');
    const again = await cairn(['restore', '--backup-dir', dir, '--db', out]);
    assert.equal(again.code, 0, again.stderr);
    for (const n of ['000007.sst', '000008.sst']) assert.ok((await fsp.readFile(path.join(out, n))).equals(await fsp.readFile(path.join(big, n))), n);
  });

  it('a missing DB is a clear not-found error', async () => {
    const r = await cairn(['backup', '--db', path.join(work, 'nope'), '--backup-dir', bk]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /not a RocksDB database: no CURRENT/);
  });
});
