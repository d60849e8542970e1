// Resumed work after SIGKILL, with real `cairn` processes against one target (local disk, an S3
// server, fake-gcs-server): a backup, and a restore, killed once 25%, 50% and 80% of their bytes
// are done (seen in their `--progress json` events on stderr, never timed), then run again. The
// second run must transfer only what was missing (the result's byte counts, checked against what
// the store or the target directory held after the kill; on object stores also the upload and
// download requests the metrics file reports, against an uninterrupted run's), and the result
// must restore byte for byte like an uninterrupted one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BackupEnv } from '../../src/env.ts';
import { requireOrSkip } from './servers-common.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/cli/main.ts');
const tools = await Promise.all([run('db_bench', ['--version'])]).then(() => true, () => false);
export const dbBenchSkip = requireOrSkip(tools, 'db_bench (Debian package rocksdb-tools)');

export interface KillTarget {
  label: string;
  /** The backup dir URL of a fresh sub-directory `sub`. */
  url(sub: string): string;
  /** Environment for the cairn processes (endpoints, credentials). */
  vars: NodeJS.ProcessEnv;
  /** An env on the same URL, to look at what the store holds. */
  openEnv(sub: string): Promise<BackupEnv>;
  /** The provider counts requests (object stores): the metrics file reports them. */
  countsRequests: boolean;
}

interface Progress { operation: string; file: string | null; bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number; filesKept?: number; bytesReused?: number }
interface Outcome { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; events: Progress[]; killedAt?: Progress }

/**
 * Runs cairn; with `killAt`, SIGKILLs it at the first progress event with at least that fraction
 * of the bytes done.
 */
function cairn(t: KillTarget, args: string[], killAt?: number): Promise<Outcome> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args, '--progress', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...t.vars },
  });
  let stdout = '';
  let stderr = '';
  const events: Progress[] = [];
  let killedAt: Progress | undefined;
  child.stdout.on('data', (d) => (stdout += d));
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr += line + '\n';
    if (!line.startsWith('{')) return;
    const ev = JSON.parse(line) as Progress & { event: string };
    if (ev.event !== 'progress') return;
    events.push(ev);
    if (killAt !== undefined && !killedAt && ev.bytesDone >= killAt * ev.bytesTotal) {
      killedAt = ev;
      child.kill('SIGKILL');
    }
  });
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, events, killedAt })));
}

/** Requests by verb of `command`'s last run, from a metrics file written by --metrics-file. */
async function requests(file: string, command: 'backup' | 'restore'): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await fsp.readFile(file, 'utf8')).matchAll(/^cairn_last_run_requests\{([^}]*)\} (\d+)$/gm)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.command === command) out[labels.verb] = Number(m[2]);
  }
  return out;
}
const uploads = (r: Record<string, number>) => (r.PUT ?? 0) + (r.POST ?? 0);

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) {
    const st = await fsp.lstat(path.join(dir, n));
    if (st.isFile()) out.set(n, await fsp.readFile(path.join(dir, n)));
  }
  return out;
}

function assertSame(got: Map<string, Buffer>, want: Map<string, Buffer>, what: string): void {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: the same files`);
  for (const [n, b] of want) assert.ok(got.get(n)!.equals(b), `${what}: ${n} byte for byte`);
}

const isTableOrBlob = (n: string) => /\.(sst|blob)$/.test(n);
/** The size a shared_checksum/ name carries (`<number>_<crc or session>_<size>.sst`). */
const sizeInName = (n: string) => Number(/_(\d+)\.(sst|blob)$/.exec(n)?.[1]);

export function runResumeKillSuite(label: string, makeTarget: () => Promise<{ target: KillTarget; stop(): Promise<void> }>): void {
  describe(`resumed after SIGKILL: ${label}`, { skip: dbBenchSkip ?? false }, () => {
    let t: KillTarget;
    let stop: (() => Promise<void>) | undefined;
    let work: string;
    let db: string;
    let dbBytes: number;
    let rate: string;
    let refRestored: Map<string, Buffer>;
    let full: { copiedBytes: number; size: number; uploads: number; restoreGets: number };
    const kills = [0.25, 0.5, 0.8];

    before(async () => {
      ({ target: t, stop } = await makeTarget());
      work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-resume-kill-'));
      db = path.join(work, 'db');
      // ~16 table files of ~1 MB: a kill lands between files, with a few in flight.
      await run('db_bench', [`--db=${db}`, '--benchmarks=fillseq', '--num=16000', '--value_size=1000', '--write_buffer_size=1048576',
        '--target_file_size_base=1048576', '--compression_type=none', '--stats_interval_seconds=0']);
      dbBytes = [...(await filesOf(db)).values()].reduce((a, b) => a + b.length, 0);
      // About 4 s per run: the kill window (the last 20% takes ~0.8 s) is set by the rate, not by
      // how fast the machine is.
      rate = String(Math.ceil(dbBytes / 4));
      // The uninterrupted runs to compare with.
      const m = path.join(work, 'full.prom');
      const b = await cairn(t, ['backup', '--db', db, '--backup-dir', t.url('full'), '--threads', '2', '--json', '--metrics-file', m]);
      assert.equal(b.code, 0, b.stderr);
      const doc = JSON.parse(b.stdout);
      const up = t.countsRequests ? uploads(await requests(m, 'backup')) : 0;
      const r = await cairn(t, ['restore', '--backup-dir', t.url('full'), '--db', path.join(work, 'ref'), '--threads', '2', '--json', '--metrics-file', m]);
      assert.equal(r.code, 0, r.stderr);
      refRestored = await filesOf(path.join(work, 'ref'));
      assert.ok([...refRestored.keys()].filter(isTableOrBlob).length >= 10, 'enough table files to stop between them');
      full = { copiedBytes: doc.copiedBytes, size: doc.size, uploads: up, restoreGets: t.countsRequests ? (await requests(m, 'restore')).GET ?? 0 : 0 };
      assert.equal(full.copiedBytes, full.size);
    });
    after(async () => {
      await stop?.();
      if (work) await fsp.rm(work, { recursive: true, force: true });
    });

    for (const p of kills) {
      it(`a backup killed at ${p * 100}% of its bytes, run again, uploads only what was missing`, async () => {
        const sub = `backup-${p * 100}`;
        const url = t.url(sub);
        const killed = await cairn(t, ['backup', '--db', db, '--backup-dir', url, '--threads', '2', '--rate-limit', rate], p);
        assert.ok(killed.killedAt, `killed before it ended: ${killed.stderr}`);
        assert.equal(killed.signal, 'SIGKILL', `exit ${killed.code}: ${killed.stderr}`);
        // What the killed run stored whole (an upload cut off is not visible), and on local disk the
        // temporaries it had written whole but not yet renamed, which the next run publishes.
        const env = await t.openEnv(sub);
        const stored = new Map<string, number>();
        try {
          for await (const f of env.list('shared_checksum/')) {
            const target = env.temporaryTarget?.(f.name);
            if (target === undefined ? isTableOrBlob(f.name) : isTableOrBlob(target) && f.size === sizeInName(target)) stored.set(target ?? f.name, f.size);
          }
          for await (const f of env.list('meta/')) assert.fail(`nothing is published, but ${f.name} is there`);
        } finally {
          await env.close();
        }
        // Every table the killed run reported finished is among them.
        const reported = new Set<string>();
        let last = 0;
        for (const ev of killed.events) {
          if (ev.filesDone > last && ev.file?.startsWith('shared_checksum/')) reported.add(ev.file);
          last = ev.filesDone;
        }
        for (const f of reported) assert.ok(stored.has(f), `${f} was reported done, so it is stored`);
        assert.ok(stored.size >= 1, 'the killed run had stored tables');

        const m = path.join(work, `${sub}.prom`);
        const again = await cairn(t, ['backup', '--db', db, '--backup-dir', url, '--threads', '2', '--json', '--metrics-file', m]);
        assert.equal(again.code, 0, again.stderr);
        const r = JSON.parse(again.stdout);
        const storedBytes = [...stored.values()].reduce((a, b) => a + b, 0);
        assert.equal(r.size, full.size);
        assert.equal(r.filesResumed, stored.size, 'every table the killed run stored is reused');
        assert.equal(r.bytesResumed, storedBytes);
        assert.equal(r.bytesReused, storedBytes);
        assert.equal(r.copiedBytes, full.size - storedBytes, 'and only the rest is uploaded');
        const lastEv = again.events.at(-1)!;
        assert.equal(lastEv.filesKept, stored.size, 'progress shows the files reused');
        assert.equal(lastEv.bytesReused, storedBytes);
        if (t.countsRequests) {
          assert.equal(uploads(await requests(m, 'backup')), full.uploads - stored.size, 'one upload fewer per reused file');
        }
        console.log(`# ${t.label}: backup killed at ${Math.round((killed.killedAt!.bytesDone / killed.killedAt!.bytesTotal) * 100)}%: the resumed run uploaded ${(r.copiedBytes / full.copiedBytes * 100).toFixed(1)}% of a full run's bytes`);

        const out = path.join(work, `${sub}-restored`);
        const rr = await cairn(t, ['restore', '--backup-dir', url, '--db', out]);
        assert.equal(rr.code, 0, rr.stderr);
        assertSame(await filesOf(out), refRestored, 'the resumed backup restores');
      });
    }

    for (const p of kills) {
      it(`a restore killed at ${p * 100}% of its bytes, run again, downloads only what was missing`, async () => {
        const out = path.join(work, `restore-${p * 100}`);
        const killed = await cairn(t, ['restore', '--backup-dir', t.url('full'), '--db', out, '--threads', '2', '--rate-limit', rate], p);
        assert.ok(killed.killedAt, `killed before it ended: ${killed.stderr}`);
        assert.equal(killed.signal, 'SIGKILL', `exit ${killed.code}: ${killed.stderr}`);
        // The table and blob files already in place (each renamed into place whole).
        const inPlace = [...(await filesOf(out))].filter(([n]) => isTableOrBlob(n));
        for (const [n, b] of inPlace) assert.ok(b.equals(refRestored.get(n)!), `${n} in place is whole`);
        assert.ok(inPlace.length >= 1);
        const placedBytes = inPlace.reduce((a, [, b]) => a + b.length, 0);

        const m = path.join(work, `restore-${p * 100}.prom`);
        const again = await cairn(t, ['restore', '--backup-dir', t.url('full'), '--db', out, '--threads', '2', '--json', '--metrics-file', m]);
        assert.equal(again.code, 0, again.stderr);
        const r = JSON.parse(again.stdout);
        assert.equal(r.filesKept, inPlace.length, 'every file in place is kept');
        assert.equal(r.bytesReused, placedBytes);
        assert.equal(again.events.at(-1)!.filesKept, inPlace.length, 'progress shows the files kept');
        if (t.countsRequests) {
          // The killed run's reader lock is read once by the next reader, which removes it as stale.
          const env = await t.openEnv('full');
          let staleLocks = 0;
          try {
            for await (const _ of env.list('locks/')) staleLocks++;
          } finally {
            await env.close();
          }
          const gets = (await requests(m, 'restore')).GET ?? 0;
          assert.equal(gets - staleLocks, full.restoreGets - inPlace.length, `one download fewer per kept file (${gets} GETs with ${staleLocks} stale locks read, ${full.restoreGets} for a full restore)`);
        }
        console.log(`# ${t.label}: restore killed at ${Math.round((killed.killedAt!.bytesDone / killed.killedAt!.bytesTotal) * 100)}%: the resumed run downloaded ${((full.size - r.bytesReused) / full.size * 100).toFixed(1)}% of a full restore's bytes`);
        assertSame(await filesOf(out), refRestored, 'the resumed restore');
      });
    }
  });
}
