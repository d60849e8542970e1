// --metrics-file and CAIRN_HEARTBEAT_URL: the CLI run against a local backup dir, the metrics
// file parsed back, the heartbeat caught by a local HTTP server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { formatMetrics, mergeRun, parseMetrics } from '../../src/cli/metrics.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn } from './run-cli.ts';

type Samples = ReturnType<typeof parseMetrics>;
function value(samples: Samples, name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

describe('metrics text format', () => {
  it('round-trips labels with quotes, backslashes and newlines; HELP and TYPE once per metric', () => {
    const run = { command: 'backup', backupDir: 's3://b/we"ird\\dir\n', endedAt: 1000, durationSeconds: 1.5, exitCode: 0, stats: { bytesCopied: 10, files: 2 }, requests: { PUT: 3, GET: 1 } };
    const text = formatMetrics(mergeRun([], run));
    assert.equal(text.match(/# TYPE cairn_last_run_requests gauge/g)?.length, 1);
    const back = parseMetrics(text);
    const l = { command: 'backup', backup_dir: run.backupDir };
    assert.equal(value(back, 'cairn_last_success_timestamp_seconds', l), 1000);
    assert.equal(value(back, 'cairn_last_run_requests', { ...l, verb: 'PUT' }), 3);
    assert.equal(value(back, 'cairn_last_run_requests', { ...l, verb: 'GET' }), 1);
    assert.equal(value(back, 'cairn_last_run_bytes_copied', l), 10);
    assert.equal(value(back, 'cairn_errors_total', l), undefined, 'no error series before the first error');
  });
  it('a failure keeps the last success time, counts the error by code and keeps other series', () => {
    const ok = { command: 'backup', backupDir: '/b', endedAt: 1000, durationSeconds: 1, exitCode: 0, stats: {} };
    const other = { ...ok, command: 'purge', endedAt: 1500 };
    let s = mergeRun(mergeRun([], ok), other);
    s = mergeRun(s, { ...ok, endedAt: 2000, exitCode: 5, errorCode: 'Locked' });
    s = mergeRun(parseMetrics(formatMetrics(s)), { ...ok, endedAt: 3000, exitCode: 5, errorCode: 'Locked' });
    s = mergeRun(s, { ...ok, endedAt: 4000, exitCode: 1, errorCode: 'IOError' });
    const l = { command: 'backup', backup_dir: '/b' };
    assert.equal(value(s, 'cairn_last_success_timestamp_seconds', l), 1000);
    assert.equal(value(s, 'cairn_last_run_timestamp_seconds', l), 4000);
    assert.equal(value(s, 'cairn_last_run_success', l), 0);
    assert.equal(value(s, 'cairn_errors_total', { ...l, code: 'Locked' }), 2);
    assert.equal(value(s, 'cairn_errors_total', { ...l, code: 'IOError' }), 1);
    assert.equal(value(s, 'cairn_runs_total', l), 4);
    assert.equal(value(s, 'cairn_last_success_timestamp_seconds', { command: 'purge', backup_dir: '/b' }), 1500);
  });
});

describe('cairn --metrics-file and CAIRN_HEARTBEAT_URL', () => {
  let work: string;
  let db: string;
  let bk: string;
  let server: http.Server;
  let hits: string[] = [];
  let url: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-metrics-'));
    db = path.join(work, 'db');
    bk = path.join(work, 'bk');
    await writeFakeDb(db, { tables: [table(7, 120_000), table(8, 30_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
    server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.end('OK');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/abc`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('a backup writes its figures, a second one its reuse; the file is replaced, no tmp left', async () => {
    const prom = path.join(work, 'textfile', 'cairn.prom');
    await fsp.mkdir(path.dirname(prom));
    const t0 = Math.floor(Date.now() / 1000);
    const r1 = await cairn(['backup', '--db', db, '--backup-dir', bk, '--json', '--metrics-file', prom]);
    assert.equal(r1.code, 0, r1.stderr);
    const doc = JSON.parse(r1.stdout);
    let m = parseMetrics(await fsp.readFile(prom, 'utf8'));
    const l = { command: 'backup', backup_dir: bk };
    const success = value(m, 'cairn_last_success_timestamp_seconds', l)!;
    assert.ok(success >= t0 && success <= Math.ceil(Date.now() / 1000), `${success}`);
    assert.equal(value(m, 'cairn_last_run_success', l), 1);
    assert.equal(value(m, 'cairn_last_run_exit_code', l), 0);
    assert.equal(value(m, 'cairn_last_run_bytes_copied', l), doc.copiedBytes);
    assert.equal(value(m, 'cairn_last_run_bytes_reused', l), 0);
    assert.equal(value(m, 'cairn_last_run_files', l), doc.numFiles);
    assert.ok(value(m, 'cairn_last_run_duration_seconds', l)! > 0);
    assert.equal(value(m, 'cairn_runs_total', l), 1);
    const r2 = await cairn(['backup', '--db', db, '--backup-dir', bk, '--json', '--metrics-file', prom]);
    assert.equal(r2.code, 0, r2.stderr);
    m = parseMetrics(await fsp.readFile(prom, 'utf8'));
    assert.equal(value(m, 'cairn_last_run_bytes_reused', l), 150_000);
    assert.equal(value(m, 'cairn_last_run_bytes_copied', l), JSON.parse(r2.stdout).copiedBytes);
    assert.equal(value(m, 'cairn_runs_total', l), 2);
    assert.deepEqual(await fsp.readdir(path.dirname(prom)), ['cairn.prom']);
  });

  it('a failed run keeps the last success time and counts the error by code; other commands\' series stay', async () => {
    const prom = path.join(work, 'fail.prom');
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', bk, '--metrics-file', prom])).code, 0);
    assert.equal((await cairn(['verify', '--backup-dir', bk, '--metrics-file', prom])).code, 0);
    const before = parseMetrics(await fsp.readFile(prom, 'utf8'));
    const l = { command: 'backup', backup_dir: bk };
    const success = value(before, 'cairn_last_success_timestamp_seconds', l)!;
    for (let i = 1; i <= 2; i++) {
      const r = await cairn(['backup', '--db', path.join(work, 'no-such-db'), '--backup-dir', bk, '--metrics-file', prom]);
      assert.equal(r.code, 4, r.stderr);
    }
    const m = parseMetrics(await fsp.readFile(prom, 'utf8'));
    assert.equal(value(m, 'cairn_last_success_timestamp_seconds', l), success);
    assert.equal(value(m, 'cairn_last_run_success', l), 0);
    assert.equal(value(m, 'cairn_last_run_exit_code', l), 4);
    assert.equal(value(m, 'cairn_errors_total', { ...l, code: 'NotFound' }), 2);
    assert.equal(value(m, 'cairn_runs_total', l), 3);
    const v = { command: 'verify', backup_dir: bk };
    assert.equal(value(m, 'cairn_last_run_success', v), 1);
    assert.ok(value(m, 'cairn_last_run_files', v)! >= 5);
  });

  it('a verify that finds corruption is a failure with code Corruption', async () => {
    const prom = path.join(work, 'verify.prom');
    const shared = path.join(bk, 'shared_checksum', (await fsp.readdir(path.join(bk, 'shared_checksum')))[0]!);
    const bytes = await fsp.readFile(shared);
    bytes[10] ^= 0xff;
    await fsp.writeFile(shared, bytes);
    try {
      const r = await cairn(['verify', '--backup-dir', bk, '--checksum', '--metrics-file', prom]);
      assert.equal(r.code, 3);
      const m = parseMetrics(await fsp.readFile(prom, 'utf8'));
      const l = { command: 'verify', backup_dir: bk };
      assert.equal(value(m, 'cairn_errors_total', { ...l, code: 'Corruption' }), 1);
      assert.equal(value(m, 'cairn_last_success_timestamp_seconds', l), 0, 'never succeeded in this file');
    } finally {
      bytes[10] ^= 0xff;
      await fsp.writeFile(shared, bytes);
    }
  });

  it('the heartbeat URL is hit once on success, never on failure; an unreachable one is a warning only', async () => {
    hits = [];
    const ok = await cairn(['list', '--backup-dir', bk], { env: { CAIRN_HEARTBEAT_URL: url } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(hits, ['GET /ping/abc']);
    const bad = await cairn(['delete', '--backup-dir', bk, '--id', '99'], { env: { CAIRN_HEARTBEAT_URL: url } });
    assert.equal(bad.code, 4);
    assert.deepEqual(hits, ['GET /ping/abc']);
    // A port nothing listens on: the one this server had, once closed.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/ping`;
    await new Promise((r) => closed.close(r));
    const warned = await cairn(['list', '--backup-dir', bk, '--json'], { env: { CAIRN_HEARTBEAT_URL: deadUrl } });
    assert.equal(warned.code, 0);
    assert.ok(Array.isArray(JSON.parse(warned.stdout)));
    assert.match(warned.stderr, /warning: heartbeat http:\/\/127\.0\.0\.1:\d+\/ping not reached: ECONNREFUSED/);
  });
});
