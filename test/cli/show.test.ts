// `cairn show --id N [--files] [--json]` on real backups: every figure checked against the
// backup directory's own files; unknown, corrupt and malformed ids give clear errors and exit codes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { crc32c } from '../../src/crc32c.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { cairn } from './run-cli.ts';

interface Shown {
  id: number; timestamp: number; size: number; numFiles: number; sequence: string; appMetadata: string;
  files?: { name: string; size: number; crc32c: number; shared: boolean; backups: number }[];
}

describe('cairn show', () => {
  let work: string;
  let db: string;
  let bk: string;
  const spec: FakeDbSpec = { tables: [table(7, 30_000)], blobs: [table(10, 4_000)], wals: [{ number: 11, data: fakeWal(20) }], manifestNumber: 5, optionsNumber: 6, logNumber: 11, lastSequence: 10 };
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-show-'));
    db = path.join(work, 'db');
    bk = path.join(work, 'backups');
    await writeFakeDb(db, spec);
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', bk, '--metadata', 'first', '-q'])).code, 0);
    // the second backup shares table 7 and the blob file, and adds table 8
    await writeFakeDb(db, { ...spec, tables: [...spec.tables, table(8, 12_000)], manifestNumber: 12 });
    assert.equal((await cairn(['backup', '--db', db, '--backup-dir', bk, '-q'])).code, 0);
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  const showJson = async (args: string[]): Promise<Shown> => {
    const r = await cairn(['show', '--backup-dir', bk, '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Shown;
  };

  it('--json: the backup\'s figures, the same as list\'s; --files: every stored file with its size, crc32c, sharing and users', async () => {
    const listed = JSON.parse((await cairn(['list', '--backup-dir', bk, '--json'])).stdout) as Shown[];
    const one = await showJson(['--id', '1']);
    assert.deepEqual(Object.keys(one).sort(), ['appMetadata', 'id', 'numFiles', 'sequence', 'size', 'timestamp'], 'no files without --files');
    const { corrupt: _, ...fromList } = listed[0] as Shown & { corrupt: boolean };
    assert.deepEqual({ ...one, sequence: undefined }, { ...fromList, sequence: undefined });
    assert.equal(one.appMetadata, 'first');
    assert.equal(one.sequence, '20', 'the WAL\'s last sequence number');

    const two = await showJson(['--id', '2', '--files']);
    assert.equal(two.id, 2);
    assert.equal(two.appMetadata, '');
    assert.equal(two.files!.length, two.numFiles);
    assert.equal(two.files!.reduce((a, f) => a + f.size, 0), two.size);
    for (const f of two.files!) {
      const bytes = await fsp.readFile(path.join(bk, f.name));
      assert.equal(f.size, bytes.length, f.name);
      assert.equal(f.crc32c, crc32c(bytes), f.name);
      assert.equal(f.shared, f.name.startsWith('shared_checksum/'), f.name);
    }
    const users = Object.fromEntries(two.files!.map((f) => [path.basename(f.name).replace(/_.*\./, '.'), f.backups]));
    assert.deepEqual(users, {
      '000007.sst': 2, '000010.blob': 2, '000008.sst': 1,
      'MANIFEST-000012': 1, CURRENT: 1, 'OPTIONS-000006': 1, '000011.log': 1,
    });
  });

  it('text: a summary, and with --files one line per file', async () => {
    const r = await cairn(['show', '--backup-dir', bk, '--id', '2', '--files']);
    assert.equal(r.code, 0, r.stderr);
    const two = await showJson(['--id', '2', '--files']);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'backup 2');
    assert.match(r.stdout, new RegExp(`^  created   ${new Date(two.timestamp * 1000).toISOString()} \\(${two.timestamp}\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^  size      ${two.size} bytes \\(`, 'm'));
    assert.match(r.stdout, new RegExp(`^  files     ${two.numFiles}$`, 'm'));
    assert.match(r.stdout, /^ {2}metadata {2}\(none\)$/m);
    for (const f of two.files!) {
      const row = lines.find((l) => l.endsWith(`  ${f.name}`));
      assert.ok(row, f.name);
      assert.deepEqual(row.trim().split(/\s+/), [String(f.size), String(f.crc32c), f.shared ? 'yes' : 'no', String(f.backups), f.name]);
    }
    const first = await cairn(['show', '--backup-dir', bk, '--id', '1']);
    assert.match(first.stdout, /^ {2}metadata {2}"first"$/m);
    assert.doesNotMatch(first.stdout, /crc32c/, 'no file table without --files');
  });

  it('after backup 1 is deleted, its shared files are used by one backup', async () => {
    const copy = path.join(work, 'copy');
    await fsp.cp(bk, copy, { recursive: true });
    assert.equal((await cairn(['delete', '--backup-dir', copy, '--id', '1', '-q'])).code, 0);
    const r = await cairn(['show', '--backup-dir', copy, '--id', '2', '--files', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as Shown).files!.every((f) => f.backups === 1));
  });

  it('an unknown backup exits 4, a corrupt one 3, a missing or malformed --id 2: each with a clear message', async () => {
    const unknown = await cairn(['show', '--backup-dir', bk, '--id', '77']);
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /backup 77 not found in /);
    assert.equal(unknown.stdout, '');
    const asJson = await cairn(['show', '--backup-dir', bk, '--id', '77', '--json']);
    assert.equal(asJson.code, 4);
    assert.equal(JSON.parse(asJson.stdout).error.code, 'NotFound');

    const broken = path.join(work, 'broken');
    await fsp.cp(bk, broken, { recursive: true });
    await fsp.writeFile(path.join(broken, 'meta', '2'), 'not a manifest\n');
    const corrupt = await cairn(['show', '--backup-dir', broken, '--id', '2']);
    assert.equal(corrupt.code, 3, corrupt.stderr);
    assert.match(corrupt.stderr, /meta\/2/);
    assert.equal((await cairn(['show', '--backup-dir', broken, '--id', '1'])).code, 0, 'the other backup still shows');

    for (const args of [[], ['--id', 'two'], ['--id', '0'], ['--id', '-1'], ['--id', '1', '--bogus']]) {
      const r = await cairn(['show', '--backup-dir', bk, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^cairn show: .*\nusage: cairn show/);
    }
  });

  it('is listed in the help', async () => {
    const r = await cairn(['help']);
    assert.match(r.stdout, /cairn show +--backup-dir URL --id N \[--files\]/);
    const h = await cairn(['show', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--files/);
  });
});
