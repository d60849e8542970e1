// The list index (meta/.cairn-list-index): written by cairn's writing commands, read by `list`
// while it matches the directory, rebuilt when RocksDB's engine or a person changed the
// directory; list output is the same with and without it, and GC never trusts it. Real RocksDB
// (ldb) on one side; on MinIO, the request counts `--json` reports.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { LocalEnv } from '../../providers/local/index.ts';
import { LIST_INDEX_NAME, listBackupsIndexed } from '../../src/backup/list-index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3Server } from '../support/s3-servers.ts';
import { table, writeFakeDb } from '../support/fake-db.ts';
import { cairn, type Run } from './run-cli.ts';

const exec = promisify(execFile);
const ldbAvailable = await exec('ldb', ['--version']).then(() => true, () => false);

async function ldb(...args: string[]): Promise<string> {
  return (await exec('ldb', args, { maxBuffer: 64 << 20 })).stdout;
}

async function load(db: string, from: number, to: number): Promise<void> {
  const lines: string[] = [];
  for (let i = from; i < to; i++) lines.push(`key${String(i).padStart(6, '0')} ==> v${i}-${'x'.repeat(80)}`);
  const file = `${db}.load-${from}.txt`;
  await fsp.writeFile(file, lines.join('\n') + '\n');
  await exec('bash', ['-c', `ldb --db='${db}' --create_if_missing load < '${file}'`]);
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return r;
}

interface Row { id: number; corrupt: boolean; size: number | null; numFiles: number | null; error?: string }
const listJson = async (bk: string): Promise<Row[]> => JSON.parse(ok(await cairn(['list', '--backup-dir', bk, '--json']), 'list').stdout) as Row[];

/** What list shows when every manifest is parsed (the index is not read, nor written). */
async function fullParse(bk: string) {
  const r = await listBackupsIndexed(new LocalEnv(bk), { write: false, ignoreIndex: true });
  return { backups: r.backups, corrupt: r.corrupt.map((c) => ({ id: c.id, message: c.error.message })) };
}
async function viaIndex(bk: string) {
  const r = await listBackupsIndexed(new LocalEnv(bk), { write: false });
  return { fromIndex: r.fromIndex, backups: r.backups, corrupt: r.corrupt.map((c) => ({ id: c.id, message: c.error.message })) };
}
const indexPath = (bk: string) => path.join(bk, LIST_INDEX_NAME);
const exists = (p: string) => fsp.stat(p).then(() => true, () => false);

describe('list index, with RocksDB ldb', { skip: requireOrSkip(ldbAvailable, 'ldb (Debian package rocksdb-tools)') }, () => {
  let work: string;
  let db: string;
  let bk: string;
  before(async () => {
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-list-index-'));
    db = path.join(work, 'db');
    bk = path.join(work, 'backup');
    await load(db, 0, 2000);
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('cairn backup writes the index; list reads it and shows what parsing every manifest shows', async () => {
    ok(await cairn(['backup', '--db', db, '--backup-dir', bk, '--metadata', 'first']), 'backup 1');
    await load(db, 2000, 2500);
    ok(await cairn(['backup', '--db', db, '--backup-dir', bk, '--metadata', 'second']), 'backup 2');
    assert.ok(await exists(indexPath(bk)), 'index written by backup');
    const indexed = await viaIndex(bk);
    assert.equal(indexed.fromIndex, true);
    const { fromIndex: _, ...shown } = indexed;
    assert.deepEqual(shown, await fullParse(bk));
    assert.deepEqual(shown.backups.map((b) => [b.id, b.appMetadata.toString()]), [[1, 'first'], [2, 'second']]);
    const before = await fsp.readFile(indexPath(bk));
    const rows = await listJson(bk);
    assert.deepEqual(rows.map((r) => r.id), [1, 2]);
    assert.deepEqual(await fsp.readFile(indexPath(bk)), before, 'a list that could use the index leaves it as it was');
  });

  it('RocksDB reads and extends a directory holding the index; list then sees its backup and rebuilds the index', async () => {
    const restored = path.join(work, 'restored-by-ldb');
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${bk}`);
    assert.equal(await ldb(`--db=${restored}`, 'scan'), await ldb(`--db=${db}`, 'scan'), 'ldb restores the latest backup with the index present');
    await load(db, 2500, 2600);
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    const stale = await viaIndex(bk);
    assert.equal(stale.fromIndex, false, 'the index no longer matches: a manifest was added');
    assert.deepEqual(stale.backups.map((b) => b.id), [1, 2, 3]);
    assert.deepEqual((await listJson(bk)).map((r) => [r.id, r.corrupt]), [[1, false], [2, false], [3, false]]);
    const fresh = await viaIndex(bk);
    assert.equal(fresh.fromIndex, true, 'list rebuilt the index');
    const { fromIndex: _, ...shown } = fresh;
    assert.deepEqual(shown, await fullParse(bk));
    // RocksDB extends the directory again with the rebuilt index in meta/.
    await load(db, 2600, 2700);
    await ldb(`--db=${db}`, 'backup', `--backup_dir=${bk}`);
    assert.deepEqual((await listJson(bk)).map((r) => r.id), [1, 2, 3, 4]);
  });

  it('a manifest deleted by hand: list shows the backups that are left', async () => {
    await fsp.rm(path.join(bk, 'meta', '1'));
    assert.equal((await viaIndex(bk)).fromIndex, false);
    assert.deepEqual((await listJson(bk)).map((r) => r.id), [2, 3, 4]);
    assert.equal((await viaIndex(bk)).fromIndex, true);
  });

  it('a damaged index is ignored and rebuilt', async () => {
    const good = await fsp.readFile(indexPath(bk), 'utf8');
    const expected = await listJson(bk);
    const doc = JSON.parse(good) as { backups: { numFiles: number }[]; version: number };
    const damaged = [
      'not json at all',
      good.slice(0, good.length >> 1),
      JSON.stringify({ ...doc, version: 99 }),
      JSON.stringify({ ...doc, backups: doc.backups.slice(1) }),
      JSON.stringify({ ...doc, backups: [{ ...doc.backups[0], numFiles: 'many' }, ...doc.backups.slice(1)] }),
      '',
    ];
    for (const text of damaged) {
      await fsp.writeFile(indexPath(bk), text);
      assert.equal((await viaIndex(bk)).fromIndex, false, `ignored: ${text.slice(0, 40)}`);
      assert.deepEqual(await listJson(bk), expected);
      assert.equal((await viaIndex(bk)).fromIndex, true, 'rebuilt');
    }
  });

  it('a table file deleted by hand: list shows the backups using it as corrupt, as parsing every manifest does', async () => {
    const copy = path.join(work, 'backup-missing-file');
    await exec('cp', ['-a', bk, copy]);
    const { backups } = await listBackupsIndexed(new LocalEnv(copy), { write: false, ignoreIndex: true, details: true });
    const first = backups[0].files!.find((f) => f.name.startsWith('shared_checksum/'))!.name;
    await fsp.rm(path.join(copy, first));
    assert.equal((await viaIndex(copy)).fromIndex, false, 'the stored files changed');
    const rows = await listJson(copy);
    assert.ok(rows.some((r) => r.corrupt && r.error?.includes(first)), JSON.stringify(rows));
    const rebuilt = await viaIndex(copy);
    assert.equal(rebuilt.fromIndex, true, 'an index holding corrupt backups is written by list');
    const { fromIndex: _, ...shown } = rebuilt;
    assert.deepEqual(shown, await fullParse(copy));
    assert.deepEqual(await listJson(copy), rows);
  });

  it('GC and purge go by the manifests, never by the index', async () => {
    const copy = path.join(work, 'backup-forged-index');
    await exec('cp', ['-a', bk, copy]);
    ok(await cairn(['list', '--backup-dir', copy]), 'list');
    // An index that matches the directory but calls every backup but the newest corrupt (a bug
    // or a hand edit): GC must still keep every file those backups use.
    const doc = JSON.parse(await fsp.readFile(indexPath(copy), 'utf8')) as { backups: { id: number }[]; corrupt: unknown[] };
    const latest = doc.backups.at(-1)!;
    doc.corrupt = doc.backups.slice(0, -1).map((b) => ({ id: b.id, code: 'Corruption', message: 'forged' }));
    doc.backups = [latest];
    await fsp.writeFile(indexPath(copy), JSON.stringify(doc));
    assert.equal((await viaIndex(copy)).fromIndex, true, 'the forged index is what list shows');
    ok(await cairn(['gc', '--backup-dir', copy]), 'gc');
    const verified = JSON.parse(ok(await cairn(['verify', '--backup-dir', copy, '--checksum', '--json']), 'verify').stdout) as { id: number; ok: boolean }[];
    assert.deepEqual(verified.map((v) => [v.id, v.ok]), [[2, true], [3, true], [4, true]]);
    ok(await cairn(['purge', '--backup-dir', copy, '--keep', '2']), 'purge');
    const left = await fullParse(copy);
    assert.deepEqual(left.backups.map((b) => b.id), [3, 4]);
    assert.deepEqual(left.corrupt, []);
    const restored = path.join(work, 'restored-3');
    await ldb(`--db=${restored}`, 'restore', `--backup_dir=${copy}`, '--backup_id=3').catch(async () => {
      ok(await cairn(['restore', '--backup-dir', copy, '--id', '3', '--db', restored]), 'restore 3');
    });
    assert.match(await ldb(`--db=${restored}`, 'scan'), /^key002599 : /m);
    assert.deepEqual((await listJson(copy)).map((r) => r.id), [3, 4], 'purge rewrote the index');
  });

  it('listing a directory that does not exist creates nothing', async () => {
    const missing = path.join(work, 'no-such-dir');
    const r = ok(await cairn(['list', '--backup-dir', missing, '--json']), 'list');
    assert.deepEqual(JSON.parse(r.stdout), []);
    assert.equal(await exists(missing), false);
  });
});

describe('list index and request counts on MinIO', { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (scripts/install-s3-servers.sh)') }, () => {
  let server: S3Server;
  let work: string;
  let env: Record<string, string>;
  let url: string;
  before(async () => {
    const s = await startS3Server('minio');
    if (!s) throw new Error('minio is not installed');
    server = s;
    work = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-list-index-s3-'));
    // CAIRN_S3_CHECKSUM=crc32c: without it each writing run first probes the store (a fixed ~16
    // small requests, docs/s3.md "Write paths"), which would hide the counts these tests pin.
    env = {
      AWS_ENDPOINT_URL_S3: server.endpoint, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_REGION: server.region,
      CAIRN_S3_CHECKSUM: 'crc32c',
    };
    url = `s3://${server.bucket}/list-index`;
  });
  after(async () => {
    await server?.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  /**
   * LISTs of a writing run on a small directory: locks/ twice (the lock protocol); meta/,
   * shared/, shared_checksum/ and private/ once each, under the lock, for the catalog, GC,
   * resume leftovers and the list index's key alike (src/backup/dir-listing.ts); the open
   * clean-up's ListMultipartUploads; meta/ once more for the index's manifest times.
   */
  const WRITING_RUN_LISTS = 2 + 4 + 1 + 1;

  /** The counts a --json run reported: in the document, or (array documents) on stderr. */
  function requestsOf(r: Run): Record<string, number> {
    const doc = JSON.parse(r.stdout) as unknown;
    if (!Array.isArray(doc)) return (doc as { requests: Record<string, number> }).requests;
    const line = r.stderr.trim().split('\n').reverse().find((l) => l.startsWith('{"requests"'));
    assert.ok(line, `no request counts on stderr: ${r.stderr}`);
    return (JSON.parse(line) as { requests: Record<string, number> }).requests;
  }

  it('--json carries request counts; a backup sends none per unchanged file; list of 3 backups reads the index and no manifest', async () => {
    const db = path.join(work, 'db');
    const tables = Array.from({ length: 20 }, (_, k) => table(100 + k, 500 + k));
    for (let k = 0; k < 3; k++) {
      tables.push(table(200 + k, 1000 + k));
      await writeFakeDb(db, { tables, manifestNumber: 5 + 2 * k, optionsNumber: 6 + 2 * k, logNumber: 30 + k, lastSequence: 100 + k });
      const r = ok(await cairn(['backup', '--db', db, '--backup-dir', url, '--json', '--no-backup-log-files'], { env }), `backup ${k + 1}`);
      const req = requestsOf(r);
      if (k === 0) continue;
      // 1 new table, 3 private files, the manifest, the index and the lock are written (each
      // write checked with a HEAD); the 20 unchanged tables cost nothing but their listing.
      assert.equal(req.PUT, 8, JSON.stringify(req));
      assert.ok(req.HEAD <= 6 + 4, `backup ${k + 1}: ${JSON.stringify(req)}`);
      // The manifests, and the bucket's Object Lock configuration (one GET, asked before the
      // first delete: on a lock bucket deletes go by version).
      assert.ok((req.GET ?? 0) <= k + 1, `backup ${k + 1} reads the manifests only: ${JSON.stringify(req)}`);
      assert.equal(req.LIST, WRITING_RUN_LISTS, JSON.stringify(req));
    }
    const listed = ok(await cairn(['list', '--backup-dir', url, '--json'], { env }), 'list');
    assert.deepEqual((JSON.parse(listed.stdout) as Row[]).map((r) => r.id), [1, 2, 3], 'the array on stdout is unchanged');
    // meta/, shared/, shared_checksum/, private/: one page each; the index: one GET.
    assert.deepEqual(requestsOf(listed), { GET: 1, LIST: 4 });
  });

  it('list after the index is removed reads every manifest once and writes the index again', async () => {
    const { S3Client, DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
    await client.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: `list-index/${LIST_INDEX_NAME}` }));
    client.destroy();
    const r = ok(await cairn(['list', '--backup-dir', url, '--json'], { env }), 'list');
    // The index (absent) and 3 manifests; the index written with one PUT (checked by a HEAD).
    assert.deepEqual(requestsOf(r), { GET: 4, HEAD: 1, LIST: 4, PUT: 1 });
    const again = ok(await cairn(['list', '--backup-dir', url, '--json'], { env }), 'list');
    assert.deepEqual(requestsOf(again), { GET: 1, LIST: 4 });
    assert.equal(again.stdout, r.stdout, 'same list with and without the index');
  });

  it('verify --server-checksum of every backup: one HEAD per distinct file, one LIST per directory page', async () => {
    const r = ok(await cairn(['verify', '--backup-dir', url, '--server-checksum', '--json'], { env }), 'verify');
    const results = JSON.parse(r.stdout) as { id: number; ok: boolean }[];
    assert.deepEqual(results.map((x) => [x.id, x.ok]), [[1, true], [2, true], [3, true]]);
    const req = requestsOf(r);
    // One HEAD per distinct file (an S3 listing carries no checksum): 23 tables, 3 x 3 private
    // files; and the read lock's own.
    assert.ok(req.HEAD >= 32 && req.HEAD <= 32 + 4, JSON.stringify(req));
    assert.ok(req.LIST <= 6, JSON.stringify(req));
    // Each manifest once, and the bucket's Object Lock configuration before the read lock's delete.
    assert.equal(req.GET, 3 + 1, 'each manifest read once');
  });

  it('verify (sizes) of every backup: the open\'s listing, and meta/ once more', async () => {
    const sizes = ok(await cairn(['verify', '--backup-dir', url, '--json'], { env }), 'verify');
    assert.deepEqual((JSON.parse(sizes.stdout) as { id: number; ok: boolean }[]).map((x) => [x.id, x.ok]), [[1, true], [2, true], [3, true]]);
    // verify --server-checksum lists only at the open (S3: a HEAD per file instead).
    const server = requestsOf(ok(await cairn(['verify', '--backup-dir', url, '--server-checksum', '--json'], { env }), 'verify'));
    const req = requestsOf(sizes);
    assert.equal(req.LIST, server.LIST + 1, `${JSON.stringify(req)} vs ${JSON.stringify(server)}`);
    assert.equal(req.GET, 3 + 1, 'each manifest read once');
  });

  it('verify --id, restore and show of one backup read only its manifest', async () => {
    const v = ok(await cairn(['verify', '--backup-dir', url, '--id', '2', '--json'], { env }), 'verify --id');
    assert.deepEqual((JSON.parse(v.stdout) as { id: number; ok: boolean }[]).map((x) => [x.id, x.ok]), [[2, true]]);
    // Manifest 2, and the bucket's Object Lock configuration before the read lock's delete.
    assert.equal(requestsOf(v).GET, 1 + 1, JSON.stringify(requestsOf(v)));
    const out = path.join(work, 'one-restore');
    const r = ok(await cairn(['restore', '--backup-dir', url, '--db', out, '--json'], { env }), 'restore');
    assert.equal((JSON.parse(r.stdout) as { id: number }).id, 3, 'the latest');
    const manifestsAndLock = 1 + 1;
    const files = (JSON.parse(r.stdout) as { numFiles: number }).numFiles;
    assert.ok(requestsOf(r).GET <= manifestsAndLock + files * 2, JSON.stringify(requestsOf(r)));
    const all = ok(await cairn(['restore', '--backup-dir', url, '--db', path.join(work, 'one-restore-2'), '--id', '1', '--json'], { env }), 'restore --id');
    assert.equal((JSON.parse(all.stdout) as { id: number }).id, 1);
    const show = ok(await cairn(['show', '--backup-dir', url, '--id', '1', '--json'], { env }), 'show');
    assert.equal((JSON.parse(show.stdout) as { id: number }).id, 1);
    assert.equal(requestsOf(show).GET, 1, JSON.stringify(requestsOf(show)));
  });

  it('a writing run lists each directory once: a backup with no change, gc, delete and purge', async () => {
    const db = path.join(work, 'db-once');
    const bk = `s3://${server.bucket}/one-listing`;
    const tables = Array.from({ length: 10 }, (_, k) => table(100 + k, 400 + k));
    await writeFakeDb(db, { tables, manifestNumber: 5, optionsNumber: 6, logNumber: 30, lastSequence: 100 });
    const run = async (args: string[], what: string) => requestsOf(ok(await cairn([...args, '--backup-dir', bk, '--json'], { env }), what));
    const backup = ['backup', '--db', db, '--no-backup-log-files'];
    await run(backup, 'backup 1');
    await run(backup, 'backup 2');
    const same = await run(backup, 'backup 3, no change');
    // 3 private files, the manifest, the index and the lock (written twice: pending, held).
    assert.deepEqual({ LIST: same.LIST, PUT: same.PUT }, { LIST: WRITING_RUN_LISTS, PUT: 7 }, JSON.stringify(same));
    // gc: one more ListMultipartUploads (its own pass); delete and purge: and locks/ once more
    // (the readers that hold backups about to be deleted).
    const gc = await run(['gc'], 'gc');
    assert.equal(gc.LIST, WRITING_RUN_LISTS + 1, JSON.stringify(gc));
    const del = await run(['delete', '--id', '1'], 'delete');
    assert.equal(del.LIST, WRITING_RUN_LISTS + 2, JSON.stringify(del));
    const purge = await run(['purge', '--keep', '1'], 'purge');
    assert.equal(purge.LIST, WRITING_RUN_LISTS + 2, JSON.stringify(purge));
    const listed = ok(await cairn(['list', '--backup-dir', bk, '--json'], { env }), 'list');
    assert.deepEqual((JSON.parse(listed.stdout) as Row[]).map((r) => r.id), [3]);
    assert.deepEqual(requestsOf(listed), { GET: 1, LIST: 4 }, 'the index purge wrote answers');
  });

  it('LISTs per listing page: each file directory\'s pages once per writing run', async () => {
    const { S3Env } = await import('../../providers/s3/index.ts');
    const { BackupEngine } = await import('../../src/backup/engine.ts');
    const db = path.join(work, 'db-pages');
    const tables = Array.from({ length: 12 }, (_, k) => table(300 + k, 300 + k));
    await writeFakeDb(db, { tables, manifestNumber: 5, optionsNumber: 6, logNumber: 30, lastSequence: 100 });
    const pageSize = 5;
    const open = () => BackupEngine.open({
      env: new S3Env(`s3://${server.bucket}/pages`, {
        endpoint: server.endpoint, region: server.region, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
        checksum: 'crc32c', listPageSize: pageSize,
      }),
      lock: { hold: true },
    });
    for (let k = 0; k < 3; k++) {
      const e = await open();
      try {
        await e.createBackup(db);
      } finally {
        await e.close();
      }
    }
    const e = await open();
    let lists: number;
    try {
      await e.createBackup(db); // backup 4, no change
      lists = e.env.requestCounts!().LIST;
    } finally {
      await e.close();
    }
    // Before: meta/ 3 manifests + the index; shared_checksum/ 12 tables; private/ 3 x 3 files; shared/ empty.
    const pages = (n: number) => Math.max(1, Math.ceil(n / pageSize));
    const once = pages(4) + pages(12) + pages(9) + pages(0);
    // locks/ twice (one page each), ListMultipartUploads, meta/ again for the index (5 objects by then).
    assert.equal(lists, once + 2 + 1 + pages(5));
  });
});
