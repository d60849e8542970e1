// Option parsing and help: every mistake is cairn's own usage error (exit 2) naming the flag.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { parseOptions, UsageError, bytesOption, durationOption } from '../../src/cli/args.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn, root } from './run-cli.ts';

describe('parseOptions', () => {
  it('reads --name value, --name=value, booleans and short flags', () => {
    assert.deepEqual(parseOptions('backup', ['--db', 'd', '--threads=8', '--json', '-q', '--metadata', '-x-']),
      { db: 'd', threads: '8', json: true, quiet: true, metadata: '-x-' });
    assert.deepEqual(parseOptions('verify', ['-h']), { help: true });
  });
  it('a string flag takes a negative number as its value, to be refused by its own check', () => {
    assert.deepEqual(parseOptions('backup', ['--threads', '-3']), { threads: '-3' });
    assert.deepEqual(parseOptions('purge', ['--keep', '-1']), { keep: '-1' });
  });
  it('refuses unknown flags, missing values, values for booleans and stray arguments', () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown option --bogus/],
      [['-z'], /unknown option -z/],
      [['--db'], /--db needs a value/],
      [['--db', '--json'], /--db needs a value/],
      [['--json=yes'], /--json takes no value/],
      [['stray'], /unexpected argument "stray"/],
    ];
    for (const [args, msg] of cases) assert.throws(() => parseOptions('backup', args), (e: Error) => e instanceof UsageError && msg.test(e.message), args.join(' '));
  });
  it('sizes and durations name the flag when refused', () => {
    assert.equal(bytesOption('50MiB/s', '--rate-limit', { rate: true }), 50 * 1024 ** 2);
    assert.throws(() => bytesOption('fast', '--rate-limit', { rate: true }), /--rate-limit takes a size/);
    assert.equal(durationOption('30d', '--older-than'), 30 * 86_400_000);
    assert.throws(() => durationOption('a month', '--older-than'), /--older-than takes a duration/);
  });
});

describe('cairn CLI usage, help and version', () => {
  let work: string;
  let db: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-args-'));
    db = path.join(work, 'db');
    await writeFakeDb(db, { tables: [table(7, 50_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('--threads -3, --keep -1 and bad units: cairn\'s own usage error, exit 2, nothing created', async () => {
    const bk = path.join(work, 'never');
    const cases: [string[], RegExp][] = [
      [['backup', '--db', db, '--backup-dir', bk, '--threads', '-3'], /--threads takes a whole number >= 1, got "-3"/],
      [['purge', '--backup-dir', bk, '--keep', '-1'], /--keep takes a whole number >= 0, got "-1"/],
      [['restore', '--db', db, '--backup-dir', bk, '--rate-limit', '10 parsecs'], /--rate-limit takes a size/],
      [['purge', '--backup-dir', bk, '--older-than', '1mo'], /--older-than takes a duration/],
      [['purge', '--backup-dir', bk], /--keep or --older-than is required/],
      [['unlock', '--backup-dir', bk, '--stale-after', 'x'], /--stale-after takes a duration/],
      [['list', '--backup-dir', bk, '--progress', 'loud'], /--progress is auto, bar, json, none/],
    ];
    for (const [args, msg] of cases) {
      const r = await cairn(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /ambiguous/);
      assert.match(r.stderr, new RegExp(`usage: cairn ${args[0]}`), 'the command\'s own usage follows');
    }
    await assert.rejects(fsp.stat(bk), { code: 'ENOENT' });
  });

  it('--version prints package.json\'s version', async () => {
    const pkg = JSON.parse(await fsp.readFile(path.join(root, 'package.json'), 'utf8'));
    const r = await cairn(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `cairn ${pkg.version}\n`);
  });

  it('help CMD and CMD --help print that command\'s usage on stdout, exit 0; help of an unknown command exits 2', async () => {
    const a = await cairn(['help', 'purge']);
    const b = await cairn(['purge', '--help']);
    assert.equal(a.code, 0);
    assert.equal(b.code, 0);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stdout, /^usage: cairn purge .*--older-than DURATION/);
    assert.doesNotMatch(a.stdout, /cairn backup/);
    const all = await cairn(['help']);
    for (const c of ['backup', 'restore', 'list', 'verify', 'delete', 'purge', 'gc', 'unlock']) assert.match(all.stdout, new RegExp(`cairn ${c} `));
    const bad = await cairn(['help', 'frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command "frobnicate"/);
  });

  it('--rate-limit takes units; purge --older-than deletes old backups only, keeping --keep newest', async () => {
    const bk = path.join(work, 'bk');
    for (let i = 0; i < 3; i++) {
      const r = await cairn(['backup', '--db', db, '--backup-dir', bk, '--rate-limit', '50MiB', '--json']);
      assert.equal(r.code, 0, r.stderr);
    }
    // Backups 1 and 2 made to look 40 and 20 days old: the timestamp is meta/<id>'s first line.
    for (const [id, days] of [[1, 40], [2, 20]] as const) {
      const p = path.join(bk, 'meta', String(id));
      const lines = (await fsp.readFile(p, 'utf8')).split('\n');
      lines[0] = String(Math.floor(Date.now() / 1000) - days * 86_400);
      await fsp.writeFile(p, lines.join('\n'));
    }
    const ids = async () => (JSON.parse((await cairn(['list', '--backup-dir', bk, '--json'])).stdout) as { id: number }[]).map((b) => b.id);
    let r = await cairn(['purge', '--backup-dir', bk, '--older-than', '30d', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { deleted: [1], keptForReaders: [] });
    assert.deepEqual(await ids(), [2, 3]);
    r = await cairn(['purge', '--backup-dir', bk, '--older-than', '1w', '--keep', '2', '--json']);
    assert.deepEqual(JSON.parse(r.stdout), { deleted: [], keptForReaders: [] }, 'the newest two are kept whatever their age');
    r = await cairn(['purge', '--backup-dir', bk, '--older-than', '1w', '--json']);
    assert.deepEqual(JSON.parse(r.stdout), { deleted: [2], keptForReaders: [] });
    assert.deepEqual(await ids(), [3]);
    r = await cairn(['verify', '--backup-dir', bk, '--checksum']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('unlock --stale-after 5m removes a lock last refreshed 10 minutes ago, which plain unlock keeps', async () => {
    const dir = path.join(work, 'stale-after');
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', dir])).code, 0);
    const then = new Date(Date.now() - 10 * 60_000);
    const lock = path.join(dir, 'locks', `${then.getTime()}-0123456789abcdef`);
    await fsp.writeFile(lock, JSON.stringify({ host: 'db-host-9', pid: 4242, created: then.toISOString(), refreshed: then.toISOString() }));
    await fsp.utimes(lock, then, then);
    const kept = await cairn(['unlock', '--backup-dir', dir, '--json']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal(JSON.parse(kept.stdout).kept.length, 1, 'younger than the default 30 minutes');
    const r = await cairn(['unlock', '--backup-dir', dir, '--stale-after', '5m', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).removed.map((l: { host: string }) => l.host), ['db-host-9']);
    assert.deepEqual(await fsp.readdir(path.join(dir, 'locks')), []);
  });
});
