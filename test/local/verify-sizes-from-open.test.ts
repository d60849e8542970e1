// verifyBackups({ sizesFromOpen }): the CLI's verify checks sizes against the listing the engine
// was just loaded from, listing only meta/ again (to report backups deleted meanwhile); checksum
// verification still reads every file. Without the option the file directories are listed afresh.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LocalEnv } from '../../providers/local/index.ts';
import { BackupEngine } from '../../src/backup/engine.ts';
import type { BackupEnv } from '../../src/env.ts';
import { writeFakeDb } from '../support/fake-db.ts';

/** `env`, recording the prefix of every listing. */
function listing(env: BackupEnv, listed: string[]): BackupEnv {
  return new Proxy(env, {
    get(t, p) {
      if (p === 'list') return (prefix: string, opts?: { signal?: AbortSignal }) => { listed.push(prefix); return t.list(prefix, opts); };
      const v = Reflect.get(t, p, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

describe('verify with sizes from the open', () => {
  let work: string;
  let bk: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-verify-open-'));
    bk = path.join(work, 'bk');
    const db = path.join(work, 'db');
    const e = await BackupEngine.open({ env: new LocalEnv(bk) });
    for (const n of [1, 2, 3]) {
      // Table 10 in every backup, one more table each time.
      await writeFakeDb(db, { tables: [{ number: 10, data: Buffer.alloc(3000, 7) }, { number: 10 + n, data: randomBytes(5000) }], manifestNumber: 20 + n, logNumber: 30 + n, lastSequence: 40 + n });
      await e.createBackup(db);
    }
    await e.close();
  });
  after(() => fsp.rm(work, { recursive: true, force: true }));

  const shared = async (number: number) => (await fsp.readdir(path.join(bk, 'shared_checksum'))).find((n) => n.startsWith(`0000${number}_`))!;

  it('lists only meta/ after the open, and finds what the open found', async () => {
    const listed: string[] = [];
    const e = await BackupEngine.open({ env: listing(new LocalEnv(bk), listed), readOnly: true });
    const atOpen = listed.length;
    assert.ok(listed.includes('shared_checksum/'), `the open lists the file directories: ${listed.join()}`);
    const r = await e.verifyBackups('all', { sizesFromOpen: true });
    assert.deepEqual(r.map((x) => [x.id, x.problems.length, x.error?.message]), [[1, 0, undefined], [2, 0, undefined], [3, 0, undefined]]);
    assert.deepEqual(listed.slice(atOpen).filter((p) => !p.startsWith('locks/')), ['meta/']);
    listed.length = 0;
    await e.verifyBackups('all');
    assert.ok(listed.includes('shared_checksum/'), `without the option the file directories are listed again: ${listed.join()}`);
    await e.close();
  });

  it('a backup whose manifest is deleted after the open is reported deleted; without the option a deleted file is found', async () => {
    const copy = path.join(work, 'bk-copy');
    await fsp.cp(bk, copy, { recursive: true });
    const e = await BackupEngine.open({ env: new LocalEnv(copy), readOnly: true });
    await fsp.rm(path.join(copy, 'meta', '2'));
    const gone = await e.verifyBackups('all', { sizesFromOpen: true });
    assert.deepEqual(gone.map((x) => [x.id, x.error?.code]), [[1, undefined], [2, 'NotFound'], [3, undefined]]);
    assert.match(gone[1].error!.message, /backup 2 was deleted while it was being verified/);
    // A table every backup uses, deleted: the fresh listing sees it, the open's listing cannot.
    await fsp.rm(path.join(copy, 'shared_checksum', await shared(10)));
    const fresh = await e.verifyBackups([1, 3]);
    assert.deepEqual(fresh.map((x) => [x.id, x.problems.map((p) => p.code)]), [[1, ['NotFound']], [3, ['NotFound']]]);
    const fromOpen = await e.verifyBackups([1, 3], { sizesFromOpen: true });
    assert.deepEqual(fromOpen.map((x) => [x.id, x.problems.length]), [[1, 0], [3, 0]], 'documented: the open\'s listing does not see it');
    await e.close();
  });

  it('with checksums, every file is still read: a damaged table of the same size is found', async () => {
    const copy = path.join(work, 'bk-damaged');
    await fsp.cp(bk, copy, { recursive: true });
    const e = await BackupEngine.open({ env: new LocalEnv(copy), readOnly: true });
    await fsp.writeFile(path.join(copy, 'shared_checksum', await shared(12)), randomBytes(5000));
    const r = await e.verifyBackups('all', { sizesFromOpen: true, checksum: true });
    assert.deepEqual(r.map((x) => [x.id, x.problems.map((p) => p.code)]), [[1, []], [2, ['Corruption']], [3, []]]);
    await e.close();
  });
});
