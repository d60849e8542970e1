// What the local provider says when the backup directory cannot be one: a read-only file system,
// a regular file where the directory should be.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { LocalEnv } from '../../providers/local/index.ts';
import { isCairnError } from '../../src/errors.ts';
import { requireOrSkip } from '../support/servers-common.ts';

const run = promisify(execFile);

describe('local provider errors', () => {
  let work: string;
  let ro: string | undefined;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-local-err-'));
    const mnt = path.join(work, 'ro');
    await fsp.mkdir(mnt);
    // A read-only tmpfs: the real EROFS (chmod does not stop root, which the tests may run as).
    if (await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mnt]).then(() => true, () => false)) ro = mnt;
  });
  after(async () => {
    if (ro) await run('umount', [ro]).catch(() => {});
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('a new backup directory on a read-only file system: the error says read-only, not "does not exist"', { skip: requireOrSkip(process.getuid?.() === 0, 'root (to mount a read-only tmpfs)') }, async () => {
    assert.ok(ro, 'mounted a read-only tmpfs');
    const env = new LocalEnv(path.join(ro, 'new', 'backups'));
    await assert.rejects(env.write('locks/1-00', [Buffer.from('x')], { createOnly: true }), (e) =>
      isCairnError(e, 'PermissionDenied') && /locks\/1-00: the file system is read-only/.test((e as Error).message));
  });

  it('a backup directory that is a regular file is an error for list(), not an empty directory', async () => {
    const file = path.join(work, 'not-a-dir');
    await fsp.writeFile(file, 'x');
    const env = new LocalEnv(file);
    for (const prefix of ['', 'meta/', 'shared_checksum/']) {
      await assert.rejects(async () => {
        for await (const f of env.list(prefix)) void f;
      }, (e) => isCairnError(e, 'InvalidArgument') && /is a file, not a backup directory/.test((e as Error).message), prefix);
    }
    // A directory that does not exist yet is still an empty one.
    const none = new LocalEnv(path.join(work, 'missing'));
    for await (const f of none.list('meta/')) assert.fail(`listed ${f.name}`);
  });

  it('list() carries the modification time', async () => {
    const env = new LocalEnv(path.join(work, 'mtime'));
    const before = Date.now() - 2000;
    await env.write('locks/a', [Buffer.from('x')]);
    const listed = [];
    for await (const f of env.list('locks/')) listed.push(f);
    assert.equal(listed.length, 1);
    assert.ok(listed[0].modified! >= before && listed[0].modified! <= Date.now() + 2000, String(listed[0].modified));
  });
});
