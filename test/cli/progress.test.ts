// Progress: the smoothed rate and ETA, the NDJSON events of --progress json, and --quiet.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { RateEstimator, progressReporter } from '../../src/cli/progress.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn } from './run-cli.ts';

describe('RateEstimator', () => {
  it('settles on a steady rate and gives the ETA from it', () => {
    const est = new RateEstimator(5000, 500);
    assert.equal(est.update(0, 0), undefined);
    assert.equal(est.eta(1000), undefined, 'no rate yet: no ETA');
    let rate: number | undefined;
    for (let t = 1; t <= 60; t++) rate = est.update(t * 1_000_000, t * 1000);
    assert.equal(Math.round(rate!), 1_000_000);
    assert.equal(est.eta(30_000_000), 30);
    assert.equal(est.eta(0), 0);
  });
  it('moves gently after a change of pace, and ignores bursts closer than the minimum interval', () => {
    const est = new RateEstimator(5000, 500);
    est.update(0, 0);
    for (let t = 1; t <= 30; t++) est.update(t * 1_000_000, t * 1000);
    const before = est.update(30_000_000, 30_000)!;
    const after1s = est.update(30_000_000 + 10_000_000, 31_000)!; // one second at 10 MB/s
    assert.ok(after1s > before && after1s < 10_000_000 / 2, `${after1s}`);
    assert.equal(est.update(45_000_000, 31_100), after1s, 'a sample 100 ms later changes nothing');
  });
});

describe('progress reporters', () => {
  it('json: start, one event per progress call with rate and ETA, end', () => {
    const lines: string[] = [];
    let now = 1_000_000;
    const r = progressReporter({ mode: 'json', command: 'backup', backupDir: '/b', isTTY: true, write: (s) => lines.push(s), now: () => now });
    r.start();
    for (let i = 0; i <= 4; i++) {
      now += 1000;
      r.onProgress!({ operation: 'backup', backupId: 1, file: `f${i}`, bytesDone: i * 100, bytesTotal: 400, filesDone: i, filesTotal: 4 });
    }
    r.end({ exitCode: 0, durationSeconds: 5 });
    assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
    const ev = lines.map((l) => JSON.parse(l));
    assert.deepEqual(ev.map((e) => e.event), ['start', 'progress', 'progress', 'progress', 'progress', 'progress', 'end']);
    assert.deepEqual(Object.keys(ev[0]).sort(), ['backupDir', 'command', 'event', 'pid', 'time']);
    assert.deepEqual(Object.keys(ev[1]).sort(), ['backupId', 'bytesDone', 'bytesPerSecond', 'bytesTotal', 'command', 'elapsedSeconds', 'etaSeconds', 'event', 'file', 'filesDone', 'filesTotal', 'operation', 'time']);
    assert.equal(ev[1].bytesPerSecond, null);
    assert.equal(ev[3].bytesPerSecond, 100);
    assert.equal(ev[3].etaSeconds, 2);
    assert.equal(ev[5].etaSeconds, 0);
    assert.deepEqual({ ...ev[6], time: 0 }, { event: 'end', command: 'backup', time: 0, ok: true, exitCode: 0, durationSeconds: 5 });
  });
  it('what was not transferred (kept, reused) is in the json events and on the bar', () => {
    const lines: string[] = [];
    const j = progressReporter({ mode: 'json', command: 'backup', isTTY: false, write: (s) => lines.push(s), now: () => 0 });
    j.onProgress!({ operation: 'backup', backupId: 3, file: 'f', bytesDone: 300, bytesTotal: 400, filesDone: 3, filesTotal: 4, filesKept: 2, bytesReused: 250 });
    j.onProgress!({ operation: 'verify', backupId: 3, file: 'f', bytesDone: 300, bytesTotal: 400, filesDone: 3, filesTotal: 4 });
    const [kept, plain] = lines.map((l) => JSON.parse(l));
    assert.equal(kept.filesKept, 2);
    assert.equal(kept.bytesReused, 250);
    assert.ok(!('filesKept' in plain), 'verify reports nothing kept');
    let out = '';
    const b = progressReporter({ mode: 'bar', command: 'restore', isTTY: false, write: (s) => (out += s), now: () => 1000 });
    b.onProgress!({ operation: 'restore', backupId: 3, bytesDone: 3 * 1024 ** 2, bytesTotal: 4 * 1024 ** 2, filesDone: 3, filesTotal: 4, filesKept: 2, bytesReused: 2 * 1024 ** 2 });
    assert.match(out, / 3\/4 files, 2 kept \(2\.00 MiB\)/);
  });
  it('bar: drawn with rate and ETA; auto draws only on a terminal; none is silent', () => {
    let out = '';
    let now = 0;
    const r = progressReporter({ mode: 'auto', command: 'restore', isTTY: true, write: (s) => (out += s), now: () => now });
    for (let i = 0; i <= 4; i++) {
      now += 1000;
      r.onProgress!({ operation: 'restore', backupId: 2, bytesDone: i * 1024 ** 2, bytesTotal: 4 * 1024 ** 2, filesDone: i, filesTotal: 4 });
    }
    r.end({ exitCode: 0, durationSeconds: 4 });
    assert.match(out, /restore 2 \[#+\.*\]  50% 2\.00 MiB\/4\.00 MiB 2\/4 files  1\.00 MiB\/s  ETA 2s/);
    assert.match(out, /100% 4\.00 MiB\/4\.00 MiB 4\/4 files  1\.00 MiB\/s\x1b\[K\n$/);
    for (const o of [{ mode: 'auto' as const, isTTY: false }, { mode: 'none' as const, isTTY: true }]) {
      let s = '';
      const q = progressReporter({ ...o, command: 'backup', write: (x) => (s += x) });
      q.start();
      q.onProgress?.({ operation: 'backup', backupId: 1, bytesDone: 1, bytesTotal: 1, filesDone: 1, filesTotal: 1 });
      q.end({ exitCode: 0, durationSeconds: 1 });
      assert.equal(s, '');
    }
  });
});

describe('cairn --progress json and --quiet', () => {
  let work: string;
  let db: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-progress-'));
    db = path.join(work, 'db');
    await writeFakeDb(db, { tables: [table(7, 300_000), table(8, 200_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('backup, restore and verify emit NDJSON on stderr: start, progress up to the total, end', async () => {
    const bk = path.join(work, 'bk');
    const runs = [
      ['backup', '--db', db, '--backup-dir', bk, '--json'],
      ['restore', '--db', path.join(work, 'restored'), '--backup-dir', bk, '--json'],
      ['verify', '--backup-dir', bk, '--checksum', '--json'],
    ];
    for (const args of runs) {
      const r = await cairn([...args, '--progress', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const ev = r.stderr.trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.equal(ev[0].event, 'start');
      assert.equal(ev[0].command, args[0]);
      assert.equal(ev.at(-1).event, 'end');
      assert.equal(ev.at(-1).exitCode, 0);
      const progress = ev.filter((e) => e.event === 'progress');
      assert.ok(progress.length >= 2, `${args[0]}: ${progress.length} progress events`);
      const last = progress.at(-1);
      assert.equal(last.operation, args[0]);
      assert.equal(last.filesDone, last.filesTotal);
      assert.equal(last.bytesDone, last.bytesTotal);
      const doc = JSON.parse(r.stdout);
      if (args[0] === 'backup') assert.equal(last.bytesTotal, doc.size);
      if (args[0] === 'verify') assert.equal(last.bytesTotal, doc[0].bytesChecked);
    }
  });

  it('a failed command ends with its exit code and error in the end event', async () => {
    const r = await cairn(['restore', '--db', path.join(work, 'r2'), '--backup-dir', path.join(work, 'bk'), '--id', '9', '--progress', 'json']);
    assert.equal(r.code, 4);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const end = lines.at(-1);
    assert.equal(end.event, 'end');
    assert.equal(end.ok, false);
    assert.equal(end.exitCode, 4);
    assert.equal(end.error.code, 'NotFound');
  });

  it('--quiet prints nothing on success, and still the error on failure', async () => {
    const bk = path.join(work, 'quiet');
    const ok = await cairn(['backup', '--db', db, '--backup-dir', bk, '--quiet', '--progress', 'auto']);
    assert.deepEqual([ok.code, ok.stdout, ok.stderr], [0, '', '']);
    const listed = await cairn(['list', '--backup-dir', bk, '-q', '--json']);
    assert.equal(JSON.parse(listed.stdout).length, 1, '--json output stays');
    const bad = await cairn(['delete', '--backup-dir', bk, '--id', '5', '--quiet']);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /5/);
  });
});
