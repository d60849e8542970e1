// Writer locks with real processes: a `cairn backup` killed while it writes its lock does not
// block the next writer, an empty lock of unknown origin is reported and removable, and of two
// `cairn backup` processes started together exactly one publishes and the other exits 5 naming
// the holder. On a local directory and on MinIO.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3Server } from '../support/s3-servers.ts';
import { openBackupEnv } from '../../src/index.ts'; // the package entry wires the built-in providers
import { S3Env } from '../../providers/s3/index.ts';
import { HOST_TAG } from '../../src/backup/lock-files.ts';
import type { BackupEnv } from '../../src/env.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/cli/main.ts');

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
function start(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return { child, done: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, stdout, stderr }))) };
}

function suite(label: string, target: () => Promise<{ url: (name: string) => string; env: NodeJS.ProcessEnv; open: (url: string) => Promise<BackupEnv>; localDir?: (url: string) => string }>, skip?: string, local = false) {
  describe(`writer locks with real processes: ${label}`, { skip }, () => {
    let work: string;
    let db: string;
    let t: Awaited<ReturnType<typeof target>>;
    before(async () => {
      if (skip) return;
      work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-lock-kill-'));
      db = path.join(work, 'db');
      await writeFakeDb(db, { tables: [table(7, 3 << 20)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
      t = await target();
    });
    after(async () => {
      if (work) await fsp.rm(work, { recursive: true, force: true });
    });
    const cairn = (args: string[]) => start(args, t.env).done;

    it('an empty lock nobody can account for: backup exits 5 naming it, unlock --all removes it; one of a dead process of this host is no obstacle', async () => {
      const url = t.url('empty-lock');
      const env = await t.open(url);
      try {
        await env.write(`locks/${Date.now()}-feedfacefeedface`, [Buffer.alloc(0)]);
        const r = await cairn(['backup', '--db', db, '--backup-dir', url]);
        assert.equal(r.code, 5, r.stderr);
        assert.match(r.stderr, /locked by another writer \(an unreadable lock locks\/\d+-feedfacefeedface/);
        const u = await cairn(['unlock', '--backup-dir', url, '--all']);
        assert.equal(u.code, 0, u.stderr);
        const gone = await new Promise<number>((resolve) => {
          const c = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
          c.once('exit', () => resolve(c.pid!));
        });
        await env.write(`locks/${Date.now()}-0badc0de-w-${gone}-${HOST_TAG}`, [Buffer.alloc(0)]);
        const b = await cairn(['backup', '--db', db, '--backup-dir', url]);
        assert.equal(b.code, 0, b.stderr);
        const left = [];
        for await (const f of env.list('locks/')) left.push(f.name);
        assert.deepEqual(left, [], 'the dead writer\'s lock was removed');
      } finally {
        await env.close();
      }
    });

    // (Watching the lock file appear needs a local directory; on a store a PUT is atomic, and an
    // empty lock there is the crafted case above.)
    if (local) it('a backup killed (SIGKILL) while writing its lock file does not hold up the next one', async () => {
      assert.ok(t.localDir);
      const url = t.url('killed-writer');
      const locks = path.join(t.localDir(url), 'locks');
      await fsp.mkdir(locks, { recursive: true });
      const { child, done } = start(['backup', '--db', db, '--backup-dir', url], t.env);
      let seen: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const w = fs.watch(locks, () => {
          const names = fs.readdirSync(locks);
          if (!names.some((x) => x.endsWith('.tmp'))) return;
          child.kill('SIGSTOP');
          seen = names;
          w.close();
          resolve();
        });
        void done.then((r) => reject(new Error(`backup ended before writing its lock: ${r.stderr}`)));
      });
      child.kill('SIGKILL');
      assert.equal((await done).signal, 'SIGKILL');
      assert.ok(seen.some((x) => x.endsWith('.tmp')), String(seen));
      const next = await cairn(['backup', '--db', db, '--backup-dir', url, '--json']);
      assert.equal(next.code, 0, next.stderr);
      assert.equal(JSON.parse(next.stdout).id, 1);
      assert.deepEqual(await fsp.readdir(locks), [], 'the killed writer\'s leftovers were removed');
    });

    it('two backups started together: exactly one publishes each round, the other exits 5 naming the holder', async () => {
      const url = t.url('together');
      const rounds = label === 'local' ? 8 : 5;
      for (let round = 1; round <= rounds; round++) {
        // Rate-limited, so that each runs for seconds and the two overlap however they are scheduled.
        const args = ['backup', '--db', db, '--backup-dir', url, '--rate-limit', '2000000', '--no-share-table-files'];
        const [a, b] = await Promise.all([cairn(args), cairn(args)]);
        const codes = [a.code, b.code].sort();
        assert.deepEqual(codes, [0, 5], `round ${round}: ${a.stderr} | ${b.stderr}`);
        const loser = a.code === 5 ? a : b;
        assert.match(loser.stderr, /locked by another writer \(.+ pid \d+/);
        const list = await cairn(['list', '--backup-dir', url, '--json']);
        assert.deepEqual(JSON.parse(list.stdout).map((x: { id: number }) => x.id), Array.from({ length: round }, (_, i) => i + 1));
      }
    });
  });
}

suite('local', async () => {
  const base = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-lock-kill-bk-'));
  return { url: (n) => path.join(base, n), env: {}, open: openBackupEnv, localDir: (u) => u };
}, undefined, true);

let minio: S3Server | undefined;
const minioSkip = requireOrSkip(s3ServerInstalled('minio'), 'MinIO (scripts/install-s3-servers.sh)');
suite('MinIO', async () => {
  minio = await startS3Server('minio');
  const s = minio!;
  const env = { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: s.region };
  return {
    url: (n) => `s3://${s.bucket}/${n}`,
    env,
    open: async (url) => new S3Env(url, { endpoint: s.endpoint, region: s.region, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } }),
  };
}, minioSkip);
after(() => minio?.stop());
