// backup --retain on GCS, as far as fake-gcs-server allows (its gaps: retention-gaps.test.ts). It
// stores object retention but enforces none and hides a bucket's objectRetention, so here:
//   - backup --retain is refused before anything is written (the bucket does not say it has
//     object retention): what real GCS answers for a bucket without it;
//   - what the env writes and extends is read back, and the engine keeps (delete, purge, gc) what
//     carries a retention in force, then lets it go once the retention is shortened (allowed for
//     Unlocked, as on GCS with overrideUnlockedRetention);
//   - a Locked retention cannot be extended on fake-gcs-server (GCS allows it): pinned.
// That GCS itself refuses the deletes cannot be tested on loopback.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { GcsEnv } from '../../providers/gcs/index.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import { isCairnError } from '../../src/errors.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { GCS_SERVER_BIN, startGcsServer, type GcsServer } from '../support/gcs-server.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { listAll, readAll } from '../support/env-conformance.ts';
import { cairn } from '../cli/run-cli.ts';
import { startGcsFaultProxy } from '../support/gcs-fault-proxy.ts';
import { RetainedFilesError } from '../../src/env.ts';

describe('backup --retain on fake-gcs-server', { skip: requireOrSkip(existsSync(GCS_SERVER_BIN), 'fake-gcs-server') }, () => {
  let srv: GcsServer;
  let bucket: string;
  let work: string;
  let n = 0;
  const inHours = (h: number) => new Date(Math.ceil(Date.now() / 1000) * 1000 + h * 3_600_000);

  before(async () => {
    srv = (await startGcsServer())!;
    bucket = `ret-${randomBytes(5).toString('hex')}`;
    const r = await fetch(`${srv.endpoint}/storage/v1/b?project=${srv.projectId}&enableObjectRetention=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: bucket }),
    });
    assert.equal(r.status, 200, await r.text());
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-retain-gcs-'));
  });
  after(async () => {
    await srv?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const open = (prefix: string, mode?: 'Unlocked' | 'Locked') =>
    new GcsEnv(`gs://${bucket}/${prefix}`, { apiEndpoint: srv.endpoint, projectId: srv.projectId, ...(mode ? { retentionMode: mode } : {}) });
  /** The object's retention as the JSON API reports it, its date normalised. */
  const retentionAt = async (key: string) => {
    const o = (await (await fetch(`${srv.endpoint}/storage/v1/b/${bucket}/o/${encodeURIComponent(key)}`)).json()) as { retention?: { mode: string; retainUntilTime: string } };
    return o.retention && { mode: o.retention.mode, retainUntilTime: new Date(o.retention.retainUntilTime).toISOString() };
  };
  const patchRetention = async (key: string, retention: unknown) => {
    const r = await fetch(`${srv.endpoint}/storage/v1/b/${bucket}/o/${encodeURIComponent(key)}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ retention }) });
    return r.status;
  };
  const spec = (): FakeDbSpec => ({ tables: [table(7, 20_000)], wals: [{ number: 11, data: fakeWal(101) }], manifestNumber: 5, optionsNumber: 6, logNumber: 11, lastSequence: 100 });

  it('refuses --retain before writing anything: the bucket does not report object retention', async () => {
    const db = path.join(work, 'db-cli');
    await writeFakeDb(db, spec());
    const r = await cairn(['backup', '--db', db, '--backup-dir', `gs://${bucket}/cli`, '--retain', '1h', '--json'], { env: { CAIRN_GCS_ENDPOINT: srv.endpoint } });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(JSON.parse(r.stdout).error.code, 'NotSupported');
    assert.match(r.stderr, new RegExp(`gs://${bucket}/cli has no object retention.*nothing was written`));
    const env = open('cli/');
    assert.equal((await listAll(env, '')).size, 0);
    const bad = await cairn(['backup', '--db', db, '--backup-dir', `gs://${bucket}/cli`, '--retain', '1h'], { env: { CAIRN_GCS_ENDPOINT: srv.endpoint, CAIRN_GCS_RETENTION_MODE: 'forever' } });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /CAIRN_GCS_RETENTION_MODE="forever": expected Unlocked or Locked/);
  });

  it('writes and extends object retention (never shortening); the engine keeps what is retained, then lets it go', async () => {
    n++;
    const prefix = `lib${n}/`;
    const env = open(prefix);
    assert.equal(env.capabilities.retention, true);
    const db = path.join(work, `db${n}`);
    const s = spec();
    await writeFakeDb(db, s);
    const e = await BackupEngine.open({ env });
    try {
      await e.createBackup(db);
      await writeFakeDb(db, { ...s, tables: [...s.tables, table(9, 5_000)], manifestNumber: 12 });
      await e.createBackup(db);
      const until = inHours(1);
      const own1 = [...(await listAll(env, '')).keys()].filter((k) => k === 'meta/1' || k.startsWith('private/1/'));
      await env.extendRetention(own1, until);
      for (const k of own1) assert.deepEqual(await retentionAt(prefix + k), { mode: 'Unlocked', retainUntilTime: until.toISOString() }, k);
      await env.extendRetention(['meta/1'], inHours(0.5));
      assert.equal((await retentionAt(`${prefix}meta/1`))?.retainUntilTime, until.toISOString(), 'never shortened');
      assert.deepEqual([...(await env.retentionOf(['meta/1', 'meta/2', 'nope']))], [['meta/1', { mode: 'Unlocked', until }]]);

      await assert.rejects(e.deleteBackup(1), (err) => isCairnError(err, 'Retained') && err.message.includes(`until ${until.toISOString()}`));
      const p = await e.purge({ last: 1 });
      assert.deepEqual(p.keptRetained.map((k) => [k.id, k.until?.toISOString()]), [[1, until.toISOString()]]);
      assert.deepEqual(e.listBackups().map((b) => b.id), [1, 2]);
      // A leftover under retention stays through GC.
      await env.write('private/7/000011.log', [Buffer.from('x')], { retainUntil: until });
      assert.deepEqual(await retentionAt(`${prefix}private/7/000011.log`), { mode: 'Unlocked', retainUntilTime: until.toISOString() });
      const gc = await e.garbageCollect();
      assert.deepEqual(gc.retained, [{ file: 'private/7/000011.log', mode: 'Unlocked', until, backupId: 7 }]);
      assert.deepEqual(await readAll(env, 'private/7/000011.log'), Buffer.from('x'));

      // Unlocked retention may be shortened (GCS: with overrideUnlockedRetention): then it all goes.
      const past = new Date(Date.now() - 60_000).toISOString();
      for (const k of [...own1, 'private/7/000011.log']) assert.equal(await patchRetention(prefix + k, { mode: 'Unlocked', retainUntilTime: past }), 200, k);
      await e.deleteBackup(1);
      assert.deepEqual(e.listBackups().map((b) => b.id), [2]);
      const left = [...(await listAll(env, '')).keys()];
      assert.ok(!left.some((k) => k === 'meta/1' || k.startsWith('private/1/') || k.startsWith('private/7/')), left.join(' '));
    } finally {
      await e.close();
    }
  });

  it('a Locked retention is written, but fake-gcs-server refuses to extend it (GCS allows extending)', async () => {
    const env = open(`locked${++n}/`, 'Locked');
    const until = inHours(1);
    await env.write('f', [Buffer.from('bytes')], { retainUntil: until });
    assert.deepEqual(await retentionAt(`locked${n}/f`), { mode: 'Locked', retainUntilTime: until.toISOString() });
    await assert.rejects(env.extendRetention(['f'], inHours(2)));
    assert.equal((await retentionAt(`locked${n}/f`))?.retainUntilTime, until.toISOString());
  });

  it("a delete GCS refuses (403, injected) under a retention is reported as retained; without one it is PermissionDenied", async () => {
    const proxy = await startGcsFaultProxy(srv.endpoint);
    try {
      const prefix = `refused${++n}/`;
      const env = new GcsEnv(`gs://${bucket}/${prefix}`, { apiEndpoint: proxy.endpoint, projectId: srv.projectId });
      const until = inHours(1);
      await env.write('held', [Buffer.from('a')], { retainUntil: until });
      await env.write('free', [Buffer.from('b')]);
      await env.write('other', [Buffer.from('c')]);
      const refuse = (name: string) => proxy.addRule({ match: (r) => r.method === 'DELETE' && r.url.includes(encodeURIComponent(`${prefix}${name}`)), action: { kind: 'status', status: 403, message: 'Object is under active retention' }, times: 10 });
      refuse('held');
      await assert.rejects(env.delete(['held', 'free']), (e) => e instanceof RetainedFilesError && e.code === 'Retained' && JSON.stringify([...e.files]) === JSON.stringify([['held', { until, mode: 'Unlocked' }]]));
      assert.deepEqual([...(await listAll(env, '')).keys()].sort(), ['held', 'other'], 'the free one was deleted, the held one stays');
      proxy.clearRules();
      refuse('other');
      await assert.rejects(env.delete(['other']), (e) => isCairnError(e, 'PermissionDenied'));
    } finally {
      await proxy.stop();
    }
  });
});
