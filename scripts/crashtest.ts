// npm run crashtest: random SIGKILLs of every writing command (backup, delete, purge, gc) and of
// restore, on a local directory and on MinIO, with real `cairn` processes. After each kill:
//   - lock: the next writer (`cairn gc`) proceeds (exit 0, not 5); its wall time is printed
//     (a dead same-host process's lock is stale at once, so it waits for nothing);
//   - lost: every backup listed before the kill that the killed command was not deleting is
//     still listed and passes `verify --checksum`;
//   - orphan: after that gc (--grace 0: shared files a killed backup stored are otherwise kept
//     for a resumed run), no file under shared*/ or private/ that no manifest names, and no
//     temporary file;
//   - halfdb: a killed restore left either no CURRENT or a DB that `ldb checkconsistency` opens,
//     and the next restore gives it back whole.
// Usage: scripts/crashtest [kills per target, default 30]  (CRASHTEST_TARGETS=local,minio)
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startS3Server, s3ServerInstalled, type S3Server } from '../test/support/s3-servers.ts';
import { S3Env } from '../providers/s3/index.ts';
import { LocalEnv } from '../providers/local/index.ts';
import type { BackupEnv } from '../src/env.ts';
import { decodeBackupMeta } from '../src/backup/meta-codec.ts';
import { META_DIR, PRIVATE_DIR, isSharedName, parseBackupId } from '../src/backup/layout.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const main = path.join(root, 'src/cli/main.ts');
const COMMANDS = ['backup', 'delete', 'purge', 'gc', 'restore'] as const;
type Command = (typeof COMMANDS)[number];

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }
interface Target { label: string; url: string; vars: NodeJS.ProcessEnv; env: BackupEnv }

function cairn(t: Target, args: string[], killAfterMs?: number): Promise<Run & { killedWhileRunning: boolean }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...t.vars } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let killedWhileRunning = false;
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) {
      killedWhileRunning = true;
      child.kill('SIGKILL');
    }
  }, killAfterMs);
  return new Promise((resolve) => child.once('exit', (code, signal) => {
    clearTimeout(timer);
    resolve({ code, signal, stdout, stderr, ms: Date.now() - started, killedWhileRunning });
  }));
}

const rnd = (n: number) => Math.floor(Math.random() * n);

async function listIds(t: Target): Promise<number[]> {
  const r = await cairn(t, ['list', '--backup-dir', t.url, '--json']);
  if (r.code !== 0) throw new Error(`list failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { id: number; corrupt: boolean }[]).filter((b) => !b.corrupt).map((b) => b.id);
}

/** Files no manifest names (and temporaries), after a gc. */
async function orphans(env: BackupEnv): Promise<string[]> {
  const referenced = new Set<string>();
  const ids = new Set<number>();
  for await (const f of env.list(META_DIR)) {
    const id = parseBackupId(f.name.slice(META_DIR.length));
    if (id === undefined) continue;
    ids.add(id);
    const chunks: Buffer[] = [];
    for await (const c of await env.openRead(f.name)) chunks.push(Buffer.from(c));
    for (const e of decodeBackupMeta(Buffer.concat(chunks), f.name).files) referenced.add(e.name);
  }
  const out: string[] = [];
  for await (const f of env.list('')) {
    if (f.name.endsWith('.tmp')) out.push(f.name);
    else if ((isSharedName(f.name) || f.name.startsWith(PRIVATE_DIR)) && !referenced.has(f.name)) out.push(f.name);
  }
  return out;
}

async function makeDb(dir: string, extraKeys: number): Promise<void> {
  await run('db_bench', [`--db=${dir}`, `--benchmarks=${fs.existsSync(path.join(dir, 'CURRENT')) ? 'overwrite' : 'fillrandom'}`, `--num=${extraKeys}`, '--value_size=1000', '--write_buffer_size=1048576',
    '--target_file_size_base=1048576', '--compression_type=none', '--stats_interval_seconds=0', '--use_existing_db=' + (fs.existsSync(path.join(dir, 'CURRENT')) ? '1' : '0')]);
}

async function ldbOk(dir: string): Promise<boolean> {
  if (!fs.existsSync(path.join(dir, 'CURRENT'))) return true;
  const copy = `${dir}.check`;
  await fsp.rm(copy, { recursive: true, force: true });
  await fsp.cp(dir, copy, { recursive: true });
  try {
    await run('ldb', [`--db=${copy}`, 'checkconsistency']);
    await run('ldb', [`--db=${copy}`, 'scan', '--no_value'], { maxBuffer: 256 << 20 });
    return true;
  } catch {
    return false;
  } finally {
    await fsp.rm(copy, { recursive: true, force: true });
  }
}

interface Tally { runs: number; kills: number; failures: string[] }

async function torture(t: Target, kills: number, work: string): Promise<Map<Command, Tally>> {
  const tally = new Map<Command, Tally>(COMMANDS.map((c) => [c, { runs: 0, kills: 0, failures: [] }]));
  const db = path.join(work, `db-${t.label}`);
  const target = path.join(work, `restored-${t.label}`);
  await makeDb(db, 20000);
  const rate = ['--rate-limit', '8000000'];
  let nextWriterMs: number[] = [];
  const typicalMs = new Map<Command, number>(COMMANDS.map((c) => [c, c === 'backup' || c === 'restore' ? 4000 : 800]));
  const totalKills = () => [...tally.values()].reduce((a, x) => a + x.kills, 0);
  // A kill that lands after the command finished counts as a run, not a kill; stop at `kills` kills.
  for (let i = 0; totalKills() < kills && i < kills * 4; i++) {
    // Keep a few backups of a changing DB around.
    while ((await listIds(t)).length < 3) {
      await makeDb(db, 3000);
      const b = await cairn(t, ['backup', '--db', db, '--backup-dir', t.url]);
      if (b.code !== 0) throw new Error(`setup backup failed: ${b.stderr}`);
    }
    const before = await listIds(t);
    const cmd = COMMANDS[rnd(COMMANDS.length)];
    const tl = tally.get(cmd)!;
    let args: string[];
    let deleting: number[] = [];
    switch (cmd) {
      case 'backup':
        await makeDb(db, 2000);
        args = ['backup', '--db', db, '--backup-dir', t.url, ...rate];
        break;
      case 'delete': {
        const id = before[rnd(before.length)];
        deleting = [id];
        args = ['delete', '--backup-dir', t.url, '--id', String(id)];
        break;
      }
      case 'purge': {
        const keep = 1 + rnd(2);
        deleting = before.slice(0, Math.max(0, before.length - keep));
        args = ['purge', '--backup-dir', t.url, '--keep', String(keep)];
        break;
      }
      case 'gc':
        args = ['gc', '--backup-dir', t.url];
        break;
      case 'restore':
        args = ['restore', '--backup-dir', t.url, '--db', target, ...rate];
        break;
    }
    // Somewhere in the command's run, judged by its last finished run: from the end of Node's
    // start-up (~40% of a short command) to a little after its end (such a run counts as finished).
    const typical = typicalMs.get(cmd)!;
    const killAt = Math.round(typical * 0.4 + rnd(typical * 0.7));
    const r = await cairn(t, args, killAt);
    tl.runs++;
    if (r.killedWhileRunning) tl.kills++;
    else {
      typicalMs.set(cmd, r.ms);
      if (r.code !== 0) tl.failures.push(`${cmd} (not killed) exited ${r.code}: ${r.stderr.trim()}`);
    }
    const fail = (what: string) => tl.failures.push(`${t.label} ${args.join(' ')} killed at ${killAt} ms: ${what}`);

    // The next writer.
    const g = await cairn(t, ['gc', '--backup-dir', t.url, '--grace', '0']);
    nextWriterMs.push(g.ms);
    if (g.code !== 0) fail(`next writer (gc) exited ${g.code}: ${g.stderr.trim()}`);
    const left = await orphans(t.env);
    if (left.length > 0) fail(`orphans after gc: ${left.slice(0, 5).join(', ')}${left.length > 5 ? ` and ${left.length - 5} more` : ''}`);
    // No completed backup lost.
    const after = await listIds(t);
    const lost = before.filter((id) => !deleting.includes(id) && !after.includes(id));
    if (lost.length > 0) fail(`backups lost: ${lost.join(', ')}`);
    const v = await cairn(t, ['verify', '--backup-dir', t.url, '--checksum', '--json']);
    if (v.code !== 0) fail(`verify --checksum exited ${v.code}: ${v.stdout.slice(0, 400)} ${v.stderr.trim()}`);
    if (cmd === 'restore') {
      if (!(await ldbOk(target))) fail('the killed restore left a CURRENT that ldb cannot open');
      const again = await cairn(t, ['restore', '--backup-dir', t.url, '--db', target]);
      if (again.code !== 0) fail(`restore after the kill exited ${again.code}: ${again.stderr.trim()}`);
      else if (!(await ldbOk(target))) fail('restore after the kill: ldb cannot open the DB');
    }
    process.stdout.write(`${t.label} ${String(i + 1).padStart(3)} ${cmd.padEnd(7)} ${r.killedWhileRunning ? `killed at ${killAt} ms` : `finished (${r.code})`}; next writer ${g.code} in ${g.ms} ms\n`);
  }
  const sorted = nextWriterMs.sort((a, b) => a - b);
  console.log(`${t.label}: next writer (cairn gc, a whole process) median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms`);
  nextWriterMs = [];
  return tally;
}

const kills = Number(process.argv[2] ?? 30);
const targets = (process.env.CRASHTEST_TARGETS ?? 'local,minio').split(',');
const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-crashtest-'));
let minio: S3Server | undefined;
let failures = 0;
try {
  const results: [string, Map<Command, Tally>][] = [];
  for (const label of targets) {
    let t: Target;
    if (label === 'local') {
      const dir = path.join(work, 'backups');
      t = { label, url: dir, vars: {}, env: new LocalEnv(dir) };
    } else if (label === 'minio') {
      if (!s3ServerInstalled('minio')) throw new Error('MinIO is not installed (bash scripts/install-s3-servers.sh)');
      minio = (await startS3Server('minio'))!;
      const s = minio;
      const url = `s3://${s.bucket}/crashtest`;
      t = {
        label, url,
        vars: { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: s.region },
        env: new S3Env(url, { endpoint: s.endpoint, region: s.region, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } }),
      };
    } else {
      throw new Error(`unknown target ${label} (local, minio)`);
    }
    results.push([label, await torture(t, kills, work)]);
    await t.env.close();
  }
  console.log('\n| target | command | runs | killed while running | failures |\n|---|---|---:|---:|---:|');
  for (const [label, tally] of results) {
    for (const [cmd, x] of tally) {
      console.log(`| ${label} | ${cmd} | ${x.runs} | ${x.kills} | ${x.failures.length} |`);
      failures += x.failures.length;
    }
  }
  for (const [, tally] of results) for (const x of tally.values()) for (const f of x.failures) console.log(`FAIL ${f}`);
} finally {
  await minio?.stop();
  await fsp.rm(work, { recursive: true, force: true });
}
process.exit(failures > 0 ? 1 : 0);
