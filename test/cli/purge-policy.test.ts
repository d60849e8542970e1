// cairn purge with a retention policy, on a local backup dir whose backups carry chosen
// timestamps (meta/<id>'s first line rewritten), in TZ=UTC so that days and months are UTC's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn as run } from './run-cli.ts';

const cairn = (args: string[]) => run(args, { env: { TZ: 'UTC' } });
const at = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** Every file under dir, relative, sorted. */
async function files(dir: string): Promise<string[]> {
  const out = (await fsp.readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
  return out.sort();
}

async function setTimestamp(bk: string, id: number, ts: number): Promise<void> {
  const p = path.join(bk, 'meta', String(id));
  const lines = (await fsp.readFile(p, 'utf8')).split('\n');
  assert.match(lines[0]!, /^[0-9]+$/, 'the first line of a meta file is the timestamp');
  lines[0] = String(ts);
  await fsp.writeFile(p, lines.join('\n'));
}

const ids = async (bk: string) => (JSON.parse((await cairn(['list', '--backup-dir', bk, '--json'])).stdout) as { id: number; corrupt: boolean }[]).map((b) => (b.corrupt ? `${b.id}!` : b.id));

describe('cairn purge with a retention policy', () => {
  let work: string;
  let db: string;
  let bk: string;
  const stamps: Record<number, number> = {
    1: at('2026-11-01T10:00:00Z'),
    2: at('2026-11-15T10:00:00Z'),
    3: at('2026-11-28T09:00:00Z'),
    4: at('2026-11-28T18:00:00Z'),
    5: at('2026-11-29T12:00:00Z'),
    6: at('2026-11-30T08:00:00Z'),
  };

  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-purge-policy-'));
    db = path.join(work, 'db');
    bk = path.join(work, 'bk');
    await writeFakeDb(db, { tables: [table(7, 20_000)], wals: [{ number: 9, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
    const engine = await BackupEngine.open({ env: new LocalEnv(bk) });
    try {
      for (let i = 0; i < 6; i++) await engine.createBackup(db);
    } finally {
      await engine.close();
    }
    for (const [id, ts] of Object.entries(stamps)) await setTimestamp(bk, Number(id), ts);
    // Backup 3 loses a file: corrupt, so reported and kept, never counted by a rule.
    await fsp.rm(path.join(bk, 'private', '3', 'CURRENT'));
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  it('bad values are usage errors (exit 2) that delete nothing', async () => {
    const before = await files(bk);
    const cases: [string[], RegExp][] = [
      [['--keep-daily', 'x'], /--keep-daily takes a whole number >= 0 or unlimited, got "x"/],
      [['--keep-monthly', '-2'], /--keep-monthly takes a whole number >= 0 or unlimited/],
      [['--keep-within', '3x'], /--keep-within: invalid duration "3x"/],
      [['--keep-within', '1d1y'], /--keep-within: invalid duration "1d1y": unit y repeated or out of order/],
      [['--keep-within-daily', '0d'], /--keep-within-daily: invalid duration "0d": it is zero/],
      [['--keep', '0'], /a retention rule is required/],
      [['--keep-daily', '0', '--keep-last', '0'], /a retention rule is required/],
      [[], /a retention rule is required/],
      [['--keep', '1', '--keep-last', '2'], /--keep and --keep-last say the same thing/],
      [['--older-than', '30d', '--keep-within', '1d'], /--older-than and --keep-within say the same thing/],
      [['--dry-run', 'yes', '--keep-last', '1'], /--dry-run takes no value|unexpected argument/],
    ];
    for (const [args, msg] of cases) {
      const r = await cairn(['purge', '--backup-dir', bk, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.match(r.stderr, /usage: cairn purge/);
    }
    assert.deepEqual(await files(bk), before);
  });

  it('--dry-run lists what would go and why the others stay, deleting nothing; the real run removes exactly those', async () => {
    const before = await files(bk);
    const policy = ['--keep-daily', '2', '--keep-monthly', '2'];
    let r = await cairn(['purge', '--backup-dir', bk, ...policy, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [
      'policy: keep 2 daily, 2 monthly',
      'keep 3 backups:',
      '   6  2026-11-30 08:00:00 +00:00  daily 2026-11-30, monthly 2026-11',
      '   5  2026-11-29 12:00:00 +00:00  daily 2026-11-29',
      '   1  2026-11-01 10:00:00 +00:00  oldest monthly 2026-11',
      'would remove 2 backups:',
      '   4  2026-11-28 18:00:00 +00:00',
      '   2  2026-11-15 10:00:00 +00:00',
      'corrupt, not counted and not removed (cairn delete --id N removes one), 1 backup:',
      '   3  2026-11-28 09:00:00 +00:00',
      '',
    ].join('\n'));
    assert.deepEqual(await files(bk), before, 'a dry run changes nothing');

    r = await cairn(['purge', '--backup-dir', bk, ...policy, '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout);
    assert.deepEqual(plan, {
      dryRun: true,
      deleted: [],
      kept: [
        { id: 6, timestamp: stamps[6], reasons: ['daily 2026-11-30', 'monthly 2026-11'] },
        { id: 5, timestamp: stamps[5], reasons: ['daily 2026-11-29'] },
        { id: 1, timestamp: stamps[1], reasons: ['oldest monthly 2026-11'] },
      ],
      removed: [{ id: 4, timestamp: stamps[4] }, { id: 2, timestamp: stamps[2] }],
      corrupt: [{ id: 3, timestamp: stamps[3], error: plan.corrupt[0].error }],
      keptForReaders: [],
      keptRetained: [],
    });
    assert.match(plan.corrupt[0].error, /CURRENT/);
    assert.deepEqual(await files(bk), before);

    r = await cairn(['purge', '--backup-dir', bk, ...policy, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const done = JSON.parse(r.stdout);
    assert.equal(done.dryRun, false);
    assert.deepEqual(done.deleted, [2, 4]);
    assert.deepEqual(done.removed.map((b: { id: number }) => b.id), [4, 2]);
    assert.deepEqual(await ids(bk), [1, '3!', 5, 6]);
    const after = await files(bk);
    // GC removed the purged backups' own files; the corrupt one's stay.
    for (const id of [2, 4]) {
      assert.ok(!after.some((f) => f === `meta/${id}` || f.startsWith(`private/${id}/`)), `backup ${id} is gone with its files: ${after.join(' ')}`);
      assert.ok(before.some((f) => f.startsWith(`private/${id}/`)), 'it had private files');
    }
    for (const id of [1, 3, 5, 6]) assert.ok(after.includes(`meta/${id}`));
    assert.ok(after.includes('private/3/MANIFEST-000005'), 'files a corrupt backup names are kept');
    assert.ok(after.some((f) => f.startsWith('shared_checksum/')), 'the table file the kept backups share stays');
    r = await cairn(['verify', '--backup-dir', bk, '--id', '6', '--checksum']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('the newest backup survives a policy that would drop it (the clock went back)', async () => {
    // Backup 6, the highest id, now carries the oldest timestamp: --keep-last 1 picks 5.
    await setTimestamp(bk, 6, at('2026-10-01T00:00:00Z'));
    const r = await cairn(['purge', '--backup-dir', bk, '--keep-last', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {3}5 {2}2026-11-29 12:00:00 \+00:00 {2}last #1$/m);
    assert.match(r.stdout, /^ {3}6 {2}2026-10-01 00:00:00 \+00:00 {2}newest backup$/m);
    assert.match(r.stdout, /^removed 1 backup:\n {3}1 {2}2026-11-01 10:00:00 \+00:00$/m);
    assert.deepEqual(await ids(bk), ['3!', 5, 6]);
  });

  it('--older-than still works, as keep-within plus keep-last 1; the library takes a now', async () => {
    const engine = await BackupEngine.open({ env: new LocalEnv(bk), readOnly: true });
    try {
      const r = await engine.purge({ within: { years: 0, months: 0, days: 1, hours: 0 } }, { dryRun: true, now: at('2026-12-01T00:00:00Z') });
      assert.deepEqual(r.kept.map((k) => [k.id, k.reasons.map((x) => x.rule)]), [[5, ['within']], [6, ['newest']]]);
      assert.deepEqual(r.removed, []);
      assert.deepEqual(r.corrupt.map((c) => c.id), [3]);
      await assert.rejects(engine.purge({ last: 1 }), /read-only/);
    } finally {
      await engine.close();
    }
    const r = await cairn(['purge', '--backup-dir', bk, '--older-than', '1d', '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).kept.map((k: { id: number; reasons: string[] }) => [k.id, k.reasons]), [[5, ['within 1d', 'last #1']], [6, ['newest backup']]]);
  });
});
