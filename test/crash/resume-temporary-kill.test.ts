// A real `cairn backup` to local disk SIGKILLed at a controlled point: a large table file written
// whole into its temporary, not yet synced and renamed. That step is too short to catch from
// outside (watching the directory, the rename always won), so the process stops itself there
// (src/test-point.ts, CAIRN_TEST_STOP_AT) and is killed. The next backup must publish that
// temporary instead of copying the file again (and reuse the files the killed run had
// published), and restore byte for byte.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { crc32c } from '../../src/crc32c.ts';
import { TEST_STOP_VAR } from '../../src/test-point.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { spawnChild } from '../support/children.ts';
import { dirContents, expectedFiles, assertSameFiles } from '../support/engine-suite-helpers.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/cli/main.ts');
const MiB = 1024 * 1024;
const BIG = 48 * MiB;

const cairnArgs = (args: string[]) => ['--disable-warning=ExperimentalWarning', main, ...args];

describe('backup killed with a table file whole in its temporary (local disk)', () => {
  let work: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-tmpkill-'));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  const spec = (): FakeDbSpec => ({
    tables: [table(7, 2 * MiB), table(8, BIG), table(9, 3 * MiB)],
    wals: [{ number: 11, data: fakeWal(10) }],
    manifestNumber: 5,
    optionsNumber: 6,
    logNumber: 11,
    lastSequence: 10,
  });

  it('the next backup publishes the temporary and copies only what was missing', async (t) => {
    const cairn = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const c = spawnChild(t, process.execPath, cairnArgs(args), { env: { ...process.env, ...env } });
      return { code: await c.exited, stdout: c.stdout(), stderr: c.stderr() };
    };
    const db = path.join(work, 'db');
    await writeFakeDb(db, spec());
    const big = await fsp.readFile(path.join(db, '000008.sst'));
    const bigName = `000008_${crc32c(big)}_${BIG}.sst`;
    const dir = path.join(work, 'backup');
    const first = spawnChild(t, process.execPath, cairnArgs(['backup', '--db', db, '--backup-dir', dir, '--threads', '1', '--progress', 'none']), {
      env: { ...process.env, [TEST_STOP_VAR]: 'local-write-before-sync:000008_' },
    });
    await first.until(() => first.stderr().includes('stopped at test point local-write-before-sync'), 'the test point');
    await first.kill();
    const tmp = fs.readdirSync(path.join(dir, 'shared_checksum')).find((n) => n.startsWith(`${bigName}.`) && n.endsWith('.tmp'));
    assert.ok(tmp !== undefined, 'the temporary is there');
    const shared = path.join(dir, 'shared_checksum');
    assert.equal(fs.statSync(path.join(shared, tmp)).size, BIG);
    assert.ok(!fs.existsSync(path.join(shared, bigName)), 'not published');
    const metas = fs.existsSync(path.join(dir, 'meta')) ? fs.readdirSync(path.join(dir, 'meta')) : [];
    assert.deepEqual(metas.filter((n) => /^\d+$/.test(n)), [], 'no backup published');
    const published = fs.readdirSync(shared).filter((n) => n.endsWith('.sst'));
    const publishedBytes = published.reduce((a, n) => a + fs.statSync(path.join(shared, n)).size, 0);

    const second = await cairn(['backup', '--db', db, '--backup-dir', dir, '--json', '--progress', 'none']);
    assert.equal(second.code, 0, second.stderr);
    const r = JSON.parse(second.stdout) as { size: number; copiedBytes: number; filesResumed: number; bytesResumed: number };
    assert.equal(r.filesResumed, published.length + 1, 'the published files and the temporary');
    assert.equal(r.bytesResumed, publishedBytes + BIG);
    assert.equal(r.copiedBytes, r.size - r.bytesResumed, 'only the rest copied');
    assert.ok((await fsp.readFile(path.join(shared, bigName))).equals(big));
    assert.ok(!fs.existsSync(path.join(shared, tmp)), 'the temporary became the file');

    const out = path.join(work, 'restored');
    const restore = await cairn(['restore', '--backup-dir', dir, '--db', out, '--progress', 'none']);
    assert.equal(restore.code, 0, restore.stderr);
    assertSameFiles(await dirContents(out), await expectedFiles(db, spec()), 'restored');
  });
});
