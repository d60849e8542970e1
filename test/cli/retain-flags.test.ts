// backup --retain on the command line: bad durations are usage errors, a store that cannot lock
// (a local directory) is refused before anything is written. The S3 / GCS runs are in
// test/s3/retain-backups.test.ts and test/gcs/retain-gcs.test.ts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { cairn } from './run-cli.ts';

describe('cairn backup --retain (flags)', () => {
  let work: string;
  let db: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-retain-cli-'));
    db = path.join(work, 'db');
    await writeFakeDb(db, { tables: [table(7, 1000)], wals: [{ number: 9, data: fakeWal(11) }], manifestNumber: 5, optionsNumber: 6, logNumber: 9, lastSequence: 10 });
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('a duration under 1s or not a duration is a usage error naming --retain', async () => {
    for (const [value, message] of [['500ms', /--retain takes a duration of at least 1s, got "500ms"/], ['soon', /--retain takes a duration such as 90s/], ['0', /at least 1s/]] as const) {
      const r = await cairn(['backup', '--db', db, '--backup-dir', path.join(work, 'bk-usage'), '--retain', value]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
    await assert.rejects(fsp.stat(path.join(work, 'bk-usage')));
  });

  it('a local directory cannot keep files under retention: NotSupported, exit 1, nothing written', async () => {
    const bk = path.join(work, 'bk');
    const r = await cairn(['backup', '--db', db, '--backup-dir', bk, '--retain', '30d', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).error.code, 'NotSupported');
    assert.match(r.stderr, /cannot keep files under retention: --retain needs an S3 bucket with Object Lock \(nothing was written\)/);
    assert.deepEqual(await fsp.readdir(bk).catch(() => []), []);
  });

  it('help names the flag and the mode variable', async () => {
    const r = await cairn(['backup', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--retain DURATION/);
    assert.match(r.stdout, /CAIRN_S3_OBJECT_LOCK_MODE=GOVERNANCE \(default\)/);
  });
});
