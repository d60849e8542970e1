// The engine's side of retention (src/backup/locked-objects.ts, create.ts, gc.ts) on a local
// directory whose env keeps a retention per file and refuses to delete what is retained, as an
// Object Lock bucket does: what is kept whole, what goes with whom, what is reported. The S3 and
// GCS implementations of the same env methods run against servers in test/s3/retain-backups.test.ts
// and test/gcs/retain-gcs.test.ts.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { LocalEnv } from '../../providers/local/index.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { RetainedFilesError, type FileRetention, type WriteOptions, type WriteResult, type WriteSource } from '../../src/env.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec, type FakeTable } from '../support/fake-db.ts';

/** A local directory with per-file retention: delete refuses what is retained until its date. */
class RetainingEnv extends LocalEnv {
  readonly held = new Map<string, Date>();
  /** Retained but not reported by retentionOf (a store whose clock runs behind ours). */
  readonly unreported = new Set<string>();
  requireCalls = 0;

  async requireRetention(): Promise<void> {
    this.requireCalls++;
  }

  async extendRetention(names: string[], until: Date): Promise<void> {
    for (const n of names) {
      const cur = this.held.get(n);
      if (!cur || cur < until) this.held.set(n, until);
    }
  }

  async retentionOf(names: string[], opts: { now?: Date } = {}): Promise<Map<string, FileRetention>> {
    const now = opts.now ?? new Date();
    const out = new Map<string, FileRetention>();
    for (const n of names) {
      const until = this.held.get(n);
      if (until && until > now && !this.unreported.has(n)) out.set(n, { until, mode: 'GOVERNANCE' });
    }
    return out;
  }

  override async write(name: string, source: WriteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const r = await super.write(name, source, opts);
    if (opts.retainUntil) this.held.set(name, opts.retainUntil);
    return r;
  }

  override async delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    const now = new Date();
    const refused = new Map<string, FileRetention>();
    for (const n of names) {
      const until = this.held.get(n);
      if (until && until > now) refused.set(n, { until, mode: 'GOVERNANCE' });
    }
    await super.delete(names.filter((n) => !refused.has(n)), opts);
    if (refused.size > 0) throw new RetainedFilesError(`delete in ${this.url}`, refused);
  }
}

const inHours = (h: number) => new Date(Math.ceil(Date.now() / 1000) * 1000 + h * 3_600_000);

describe('backups under retention (engine)', () => {
  let work: string;
  let db: string;
  let env: RetainingEnv;
  let engine: BackupEngine;
  const t7 = table(7, 3000);
  const spec = (tables: FakeTable[], manifestNumber: number): FakeDbSpec => ({ tables, wals: [{ number: 20, data: fakeWal(101) }], manifestNumber, optionsNumber: manifestNumber + 1, logNumber: 20, lastSequence: 100 });
  const backupOf = async (tables: FakeTable[], manifestNumber: number, retainUntil?: Date) => {
    await fsp.rm(db, { recursive: true, force: true });
    await writeFakeDb(db, spec(tables, manifestNumber));
    return engine.createBackup(db, retainUntil ? { retainUntil } : {});
  };
  const stored = async () => (await fsp.readdir(path.join(work, 'bk'), { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => path.relative(path.join(work, 'bk'), path.join(d.parentPath, d.name))).sort();
  const t7Name = () => engine.getBackupInfo(1, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!.name;

  beforeEach(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-locked-'));
    db = path.join(work, 'db');
    env = new RetainingEnv(path.join(work, 'bk'));
    engine = await BackupEngine.open({ env });
  });
  afterEach(async () => {
    await engine.close();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('retainUntil locks every file a backup writes; reused shared files get the later date, never an earlier one', async () => {
    assert.equal(env.capabilities.retention, true);
    const d1 = inHours(2);
    const b1 = await backupOf([t7, table(9, 1000)], 5, d1);
    assert.equal(b1.retainUntil, d1);
    assert.equal(env.requireCalls, 1, 'asked before writing');
    const files1 = [...engine.getBackupInfo(1, { includeFileDetails: true }).files!.map((f) => f.name), 'meta/1'];
    for (const f of files1) assert.equal(env.held.get(f), d1, f);
    const d2 = inHours(4);
    await backupOf([t7, table(10, 1000)], 12, d2);
    assert.equal(env.held.get(t7Name()), d2, 'shared file extended');
    assert.equal(env.held.get('meta/1'), d1, "backup 1's own files keep their date");
    await backupOf([t7], 14, inHours(1));
    assert.equal(env.held.get(t7Name()), d2, 'never shortened');
    await assert.rejects(backupOf([t7], 16, new Date(Date.now() - 1000)), (e) => isCairnError(e, 'InvalidArgument'));
  });

  it('delete refuses a backup whose own files are retained and deletes nothing; deleting several keeps only those', async () => {
    await backupOf([t7, table(9, 1000)], 5, inHours(1));
    await backupOf([t7, table(10, 1000)], 12);
    await backupOf([table(11, 1000)], 14);
    const before = await stored();
    await assert.rejects(engine.deleteBackup(1), (e) => isCairnError(e, 'Retained') && /backup 1 .* under retention until .* \(meta\/1 GOVERNANCE, and \d+ more files\); nothing was deleted/.test(e.message));
    assert.deepEqual(await stored(), before);
    const r = await engine.deleteBackups([1, 2]);
    assert.deepEqual(r.deleted, [2]);
    assert.deepEqual(r.retained.map((b) => b.id), [1]);
    assert.deepEqual(engine.listBackups().map((b) => b.id), [1, 3]);
    assert.ok((await stored()).includes(t7Name()), 'backup 1 still has its shared file');
  });

  it('a retained file shared by two purged backups keeps the newer one; the older goes', async () => {
    await backupOf([t7, table(9, 1000)], 5);
    await backupOf([t7, table(10, 1000)], 12);
    await backupOf([table(11, 1000)], 14);
    const until = inHours(3);
    env.held.set(t7Name(), until);
    const dry = await engine.purge({ last: 1 }, { dryRun: true });
    assert.deepEqual(dry.removed.map((b) => b.id), [1]);
    assert.deepEqual(dry.keptRetained.map((b) => [b.id, b.until, b.files.map((f) => f.file)]), [[2, until, [t7Name()]]]);
    const r = await engine.purge({ last: 1 });
    assert.deepEqual(r.removed.map((b) => b.id), [1]);
    assert.deepEqual(r.keptRetained.map((b) => b.id), [2]);
    assert.deepEqual(engine.listBackups().map((b) => b.id), [2, 3]);
    const out = path.join(work, 'restored');
    await engine.restore({ dbDir: out, backupId: 2 });
    assert.deepEqual(await fsp.readFile(path.join(out, '000007.sst')), t7.data);
  });

  it('gc leaves retained garbage and reports it with its backup, also when only the delete tells', async () => {
    await backupOf([t7], 5);
    const until = inHours(1);
    await env.write('private/9/000020.log', [Buffer.from('a')], { retainUntil: until });
    await env.write('private/8/000020.log', [Buffer.from('b')], { retainUntil: until });
    env.unreported.add('private/8/000020.log');
    await env.write('private/7/CURRENT', [Buffer.from('c')]);
    const gc = await engine.garbageCollect();
    assert.deepEqual(gc.retained, [
      { file: 'private/8/000020.log', mode: 'GOVERNANCE', until, backupId: 8 },
      { file: 'private/9/000020.log', mode: 'GOVERNANCE', until, backupId: 9 },
    ]);
    assert.ok(gc.deleted.includes('private/7/CURRENT'));
    assert.ok(!gc.deleted.some((n) => n.includes('000020.log')));
    const left = await stored();
    assert.ok(left.includes('private/9/000020.log') && left.includes('private/8/000020.log') && !left.includes('private/7/CURRENT'));
  });

  it('an env without retention refuses retainUntil before writing anything', async () => {
    const plain = new LocalEnv(path.join(work, 'plain'));
    const e = await BackupEngine.open({ env: plain, lock: false });
    try {
      await writeFakeDb(db, spec([t7], 5));
      await assert.rejects(e.createBackup(db, { retainUntil: inHours(1) }), (err) => isCairnError(err, 'NotSupported') && /cannot keep files under retention/.test(err.message));
      assert.deepEqual(await fsp.readdir(path.join(work, 'plain')).catch(() => []), []);
    } finally {
      await e.close();
    }
  });
});
