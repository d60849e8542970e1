// Interop with RocksDB's own tools (Debian rocksdb-tools), both directions: backups cairn makes
// restore with `ldb restore`, backups `ldb backup` makes list, verify, restore and extend with
// cairn, and both name shared table files identically.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);
const ldbAvailable = await run('ldb', ['--version']).then(() => true, () => false);
const skip = requireOrSkip(ldbAvailable, 'ldb (Debian package rocksdb-tools)');

async function ldb(...args: string[]): Promise<string> {
  const { stdout } = await run('ldb', args, { maxBuffer: 64 << 20 });
  return stdout;
}

async function load(db: string, from: number, to: number, tag: string): Promise<void> {
  const lines: string[] = [];
  for (let i = from; i < to; i++) lines.push(`key${String(i).padStart(6, '0')} ==> ${tag}-${i}-${'x'.repeat(100)}`);
  const file = `${db}.load-${from}.txt`;
  await fsp.writeFile(file, lines.join('\n') + '\n');
  // each load ends with a flush: one more table file per call
  await run('bash', ['-c', `ldb --db='${db}' --create_if_missing load < '${file}'`]);
}

const scan = (db: string) => ldb(`--db=${db}`, 'scan');

async function files(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const n of (await fsp.readdir(dir)).sort()) {
    if (/^(LOG|LOCK|IDENTITY)/.test(n)) continue;
    m.set(n, await fsp.readFile(path.join(dir, n)));
  }
  return m;
}

async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of new LocalEnv(dir).list('')) out.push(f.name);
  return out.sort();
}

describe('interop with RocksDB ldb', { skip }, () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-ldb-'));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('ldb restore restores a cairn backup; the DB scans identically', async () => {
    const db = path.join(work, 'a-db');
    const bk = path.join(work, 'a-backup');
    await load(db, 0, 2000, 'one');
    await load(db, 2000, 4000, 'two');
    await ldb(`--db=${db}`, 'put', 'only-in-wal', 'unflushed value');
    const expected = await scan(db);
    assert.match(expected, /^only-in-wal : unflushed value$/m);
    const e = await BackupEngine.open({ env: new LocalEnv(bk), maxBackgroundOperations: 2 });
    const b = await e.createBackup(db, { appMetadata: 'from cairn' });
    await e.close();
    const names = await listNames(bk);
    assert.ok(names.filter((n) => /^shared_checksum\/[0-9]{6}_s[0-9A-Z]{20}_[0-9]+\.sst$/.test(n)).length >= 2, names.join(' '));
    assert.ok(names.includes(`meta/${b.id}`));
    const restored = path.join(work, 'a-restored');
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${bk}`);
    assert.equal(await scan(restored), expected);
    await ldb(`--db=${restored}`, 'checkconsistency');
  });

  it('cairn lists, verifies and restores byte-identical what ldb backup wrote, incrementally', async () => {
    const db = path.join(work, 'b-db');
    const bk = path.join(work, 'b-backup');
    await load(db, 0, 3000, 'first');
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    const scan1 = await scan(db);
    await load(db, 3000, 4000, 'second');
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    const scan2 = await scan(db);

    const e = await BackupEngine.open({ env: new LocalEnv(bk), readOnly: true });
    const list = e.listBackups({ includeFileDetails: true });
    assert.deepEqual(list.map((b) => b.id), [1, 2]);
    assert.deepEqual(e.listCorruptedBackups(), []);
    const shared1 = list[0].files!.filter((f) => f.name.startsWith('shared_checksum/')).map((f) => f.name);
    const shared2 = list[1].files!.filter((f) => f.name.startsWith('shared_checksum/')).map((f) => f.name);
    assert.ok(shared1.every((n) => shared2.includes(n)), 'backup 2 shares backup 1 table files');
    for (const b of list) assert.deepEqual((await e.verifyBackup(b.id, { checksum: true })).problems, []);

    const viaLdb = path.join(work, 'b-ldb-restored');
    await ldb(`--db=${viaLdb}`, 'restore', `--backup_dir=${bk}`);
    const viaCairn = path.join(work, 'b-cairn-restored');
    await e.restore({ dbDir: viaCairn });
    assert.deepEqual(await files(viaCairn), await files(viaLdb), 'byte-identical to ldb restore');
    assert.equal(await scan(viaCairn), scan2);
    const old = path.join(work, 'b-cairn-restored-1');
    await e.restore({ backupId: 1, dbDir: old });
    assert.equal(await scan(old), scan1);
  });

  it('cairn extends a RocksDB backup directory, sharing its files, and ldb reads the result', async () => {
    const db = path.join(work, 'c-db');
    const bk = path.join(work, 'c-backup');
    await load(db, 0, 3000, 'base');
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    const before = (await listNames(bk)).filter((n) => n.startsWith('shared_checksum/'));
    await load(db, 3000, 3500, 'more');
    const e = await BackupEngine.open({ env: new LocalEnv(bk) });
    const b = await e.createBackup(db);
    assert.equal(b.id, 2);
    assert.ok(b.sharedBytesReused > 0, 'table files of the ldb backup were shared');
    const after = (await listNames(bk)).filter((n) => n.startsWith('shared_checksum/'));
    assert.ok(before.every((n) => after.includes(n)));
    const info = (await BackupEngine.open({ env: new LocalEnv(bk), readOnly: true })).getBackupInfo(2, { includeFileDetails: true });
    const sharedByBoth = info.files!.filter((f) => before.includes(f.name));
    assert.ok(sharedByBoth.length > 0);
    assert.equal(b.sharedBytesReused, sharedByBoth.reduce((a, f) => a + f.size, 0), 'every file already stored was shared, not copied');
    await e.close();
    const restored = path.join(work, 'c-restored');
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${bk}`);
    assert.equal(await scan(restored), await scan(db));
    // and RocksDB continues after cairn: its next backup is id 3, and cairn reads it
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    const e2 = await BackupEngine.open({ env: new LocalEnv(bk), readOnly: true });
    assert.deepEqual(e2.listBackups().map((x) => x.id), [1, 2, 3]);
    assert.deepEqual((await e2.verifyBackup(3, { checksum: true })).problems, []);
  });

  it('names shared table files exactly as RocksDB does, in both naming schemes', async () => {
    const db = path.join(work, 'd-db');
    await load(db, 0, 1500, 'n');
    await load(db, 1500, 3000, 'n');
    const viaLdb = path.join(work, 'd-ldb');
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${viaLdb}`);
    const viaCairn = path.join(work, 'd-cairn');
    const e = await BackupEngine.open({ env: new LocalEnv(viaCairn) });
    await e.createBackup(db);
    const shared = async (d: string) => (await listNames(d)).filter((n) => n.startsWith('shared_checksum/'));
    assert.deepEqual(await shared(viaCairn), await shared(viaLdb));
    // legacy crc32c+size naming, for tables without a session id
    const legacy = path.join(work, 'd-legacy');
    const l = await BackupEngine.open({ env: new LocalEnv(legacy), naming: 'legacy-crc32c-size' });
    await l.createBackup(db);
    const names = await shared(legacy);
    assert.ok(names.length >= 2 && names.every((n) => /^shared_checksum\/[0-9]{6}_[0-9]+_[0-9]+\.sst$/.test(n)), names.join(' '));
    const restored = path.join(work, 'd-legacy-restored');
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${legacy}`);
    assert.equal(await scan(restored), await scan(db));
  });
});
