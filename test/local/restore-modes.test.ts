// Restore modes on local disk (the shared suite), and the CLI: a restore killed once some files
// are in place, run again, downloads only what is missing and ends byte-identical.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { BackupEngine } from '../../src/backup/engine.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import { writeFakeDb, table, fakeWal } from '../support/fake-db.ts';
import { waitFor } from '../support/children.ts';
import { runRestoreModesSuite, snapshot } from '../support/restore-modes-suite.ts';
import { cairn, root } from '../cli/run-cli.ts';

const work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-modes-cli-'));
after(() => fsp.rm(work, { recursive: true, force: true }));
let n = 0;
runRestoreModesSuite('local', async () => new LocalEnv(path.join(work, `suite-backups-${++n}`)));

describe('restore modes: CLI', () => {
  it('a CLI restore killed once some files are in place, run again, downloads only what is missing and ends byte-identical', async (t) => {
    const src = path.join(work, 'kill-db');
    const kb = path.join(work, 'kill-backups');
    const tables = [1, 2, 3, 4, 5, 6].map((i) => table(10 + i, 200_000));
    await writeFakeDb(src, { tables, wals: [{ number: 4, data: fakeWal(3) }], manifestNumber: 5, optionsNumber: 6, logNumber: 4, lastSequence: 3 });
    const e = await BackupEngine.open({ env: new LocalEnv(kb), lock: false });
    await e.createBackup(src);
    await e.close();

    const target = path.join(work, 'kill-target');
    // bin/cairn as a user runs it (it execs node, so the pid is the restore's own).
    const child = spawn(path.join(root, 'bin/cairn'), ['restore', '--backup-dir', kb, '--db', target, '--threads', '1', '--rate-limit', '200K'], { stdio: 'ignore', env: { ...process.env, CAIRN_HEARTBEAT_URL: '' } });
    const exited = new Promise((r) => child.once('exit', r));
    t.after(() => child.kill('SIGKILL'));
    const placed = () => fsp.readdir(target).then((ns) => ns.filter((n) => /^\d+\.sst$/.test(n)), () => [] as string[]);
    await waitFor(async () => ((await placed()).length >= 2 ? true : undefined), 'two table files in place', exited);
    child.kill('SIGKILL');
    await exited;
    const inPlace = await placed();
    assert.ok(!(await fsp.readdir(target)).includes('CURRENT'), 'a killed restore leaves no CURRENT');
    assert.ok(inPlace.length >= 2 && inPlace.length < tables.length, `${inPlace.length} tables in place`);

    const again = await cairn(['restore', '--backup-dir', kb, '--db', target, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const out = JSON.parse(again.stdout);
    assert.equal(out.filesKept, inPlace.length);
    assert.equal(out.bytesReused, inPlace.length * 200_000);
    const purge = await cairn(['restore', '--backup-dir', kb, '--db', path.join(work, 'kill-fresh'), '--mode', 'purge-all', '--json']);
    assert.equal(purge.code, 0, purge.stderr);
    assert.equal(JSON.parse(purge.stdout).filesKept, 0);
    assert.deepEqual(await snapshot(target), await snapshot(path.join(work, 'kill-fresh')));
    for (const tb of tables) assert.ok((await fsp.readFile(path.join(target, `0000${tb.number}.sst`))).equals(tb.data));
  });
});
