// backup --retain end to end on the S3 servers that have Object Lock buckets (MinIO, LocalStack,
// moto, SeaweedFS), through the real bin: every object of a backup is locked, shared files get the newest
// date, delete / purge / gc keep and report what is retained (the data stays restorable byte for
// byte), and once the dates pass everything goes, with no object version left behind. Each
// server's gaps that touch this path are pinned here; the raw Object Lock behaviour is pinned by
// object-lock.test.ts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, ListObjectVersionsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3Env } from '../../providers/s3/index.ts';
import { createObjectLockBucket, headObjectLock } from '../../providers/s3/object-lock.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { rawS3Client, s3ServerInstalled, startS3Server, type S3Server } from '../support/s3-servers.ts';
import { writeFakeDb, table, fakeWal, type FakeDbSpec } from '../support/fake-db.ts';
import { cairn, type Run } from '../cli/run-cli.ts';

// Lock files and list's cache (rewritten by every command, never a backup's data) carry no retention.
const isLockable = (k: string) => !k.startsWith('locks/') && k !== 'meta/.cairn-list-index';

const NOT_BACKED_UP = new Set(['IDENTITY', 'LOCK', 'LOG']);

/** The DB files a backup holds, name → bytes (the fake DB's WALs are all live). */
async function dbState(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const n of await fsp.readdir(dir)) if (!NOT_BACKED_UP.has(n)) m.set(n, await fsp.readFile(path.join(dir, n)));
  return m;
}

async function assertSameDir(dir: string, expected: Map<string, Buffer>, what: string): Promise<void> {
  const got = await dbState(dir);
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort(), `${what}: file names`);
  for (const [n, b] of expected) assert.ok(got.get(n)!.equals(b), `${what}: ${n} differs`);
}

/** The DB after a flush: one more table, a new MANIFEST and OPTIONS (the old ones removed). */
async function nextState(db: string, spec: FakeDbSpec): Promise<void> {
  await writeFakeDb(db, { ...spec, tables: [...spec.tables, table(13, 30_000)], manifestNumber: 14, optionsNumber: 15 });
  for (const old of ['MANIFEST-000005', 'OPTIONS-000006']) await fsp.rm(path.join(db, old));
}

const ok = (r: Run, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);

for (const kind of ['minio', 'localstack', 'moto', 'seaweedfs'] as const) {
  describe(`backup --retain on ${kind}`, { skip: requireOrSkip(s3ServerInstalled(kind), kind) }, () => {
    let srv: S3Server;
    let client: S3Client;
    let bucket: string;
    let work: string;
    let cliEnv: Record<string, string>;
    let n = 0;

    before(async () => {
      srv = (await startS3Server(kind))!;
      // The SDK's default of 3 attempts, unlike the other raw clients.
      client = rawS3Client(srv, { maxAttempts: 3 });
      bucket = `retain-${randomBytes(4).toString('hex')}`;
      await createObjectLockBucket(client, bucket);
      work = await fsp.mkdtemp(path.join(tmpdir(), `cairn-retain-${kind}-`));
      cliEnv = { AWS_ENDPOINT_URL_S3: srv.endpoint, AWS_ACCESS_KEY_ID: srv.accessKeyId, AWS_SECRET_ACCESS_KEY: srv.secretAccessKey, AWS_REGION: srv.region, CAIRN_S3_OBJECT_LOCK_MODE: '' };
    });
    after(async () => {
      client?.destroy();
      await srv?.stop();
      if (work) await fsp.rm(work, { recursive: true, force: true });
    });

    const run = (args: string[], env: Record<string, string> = {}) => cairn(args, { env: { ...cliEnv, ...env } });
    const keysUnder = async (b: string, prefix: string) => {
      const out = await client.send(new ListObjectsV2Command({ Bucket: b, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key!.slice(prefix.length)).sort();
    };
    const versionsUnder = async (prefix: string) => {
      const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
      return [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].map((v) => v.Key!.slice(prefix.length)).sort();
    };
    const lockOf = async (prefix: string, name: string) => (await headObjectLock(client, bucket, prefix + name)).retention;
    const spec1 = (): FakeDbSpec => ({
      tables: [table(7, 60_000), table(9, 20_000)],
      blobs: [table(8, 10_000)],
      wals: [{ number: 11, data: fakeWal(101) }],
      manifestNumber: 5,
      optionsNumber: 6,
      logNumber: 11,
      lastSequence: 100,
    });
    const fresh = async () => {
      n++;
      const db = path.join(work, `db${n}`);
      const spec = spec1();
      await writeFakeDb(db, spec);
      return { db, spec, prefix: `t${n}/`, url: `s3://${bucket}/t${n}` };
    };

    it('refuses --retain on a bucket without Object Lock before writing anything (LocalStack would store the lock headers)', async () => {
      const { db } = await fresh();
      const r = await run(['backup', '--db', db, '--backup-dir', `s3://${srv.bucket}/plain`, '--retain', '1h', '--json']);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(JSON.parse(r.stdout).error.code, 'NotSupported');
      assert.match(r.stderr, new RegExp(`s3://${srv.bucket}/plain has no Object Lock.*nothing was written`));
      assert.deepEqual(await keysUnder(srv.bucket, 'plain/'), [], 'not even a lock file');
      const bad = await run(['backup', '--db', db, '--backup-dir', `s3://${bucket}/x`, '--retain', '1h'], { CAIRN_S3_OBJECT_LOCK_MODE: 'legal-hold' });
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /CAIRN_S3_OBJECT_LOCK_MODE="legal-hold": expected GOVERNANCE or COMPLIANCE/);
    });

    it('locks every object; delete, purge and gc keep retained backups whole and report them; restore stays byte-identical', async () => {
      const { db, spec, prefix, url } = await fresh();
      const state1 = await dbState(db);
      const b1 = await run(['backup', '--db', db, '--backup-dir', url, '--retain', '1h', '--json']);
      ok(b1, 'backup 1');
      const until1 = new Date(JSON.parse(b1.stdout).retainUntil);
      assert.ok(until1.getTime() > Date.now() + 3_500_000 && until1.getTime() <= Date.now() + 3_601_000, `retainUntil ${until1.toISOString()}`);
      const stored1 = (await keysUnder(bucket, prefix)).filter(isLockable);
      assert.ok(stored1.includes('meta/1') && stored1.some((k) => k.startsWith('private/1/')) && stored1.some((k) => k.startsWith('shared_checksum/')));
      for (const k of stored1) assert.deepEqual(await lockOf(prefix, k), { mode: 'GOVERNANCE', retainUntil: until1 }, k);

      // Backup 2 shares the unchanged files: their retention moves to its date, backup 1's own stay.
      await nextState(db, spec);
      const state2 = await dbState(db);
      const b2 = await run(['backup', '--db', db, '--backup-dir', url, '--retain', '2h', '--json']);
      ok(b2, 'backup 2');
      const until2 = new Date(JSON.parse(b2.stdout).retainUntil);
      const stored2 = (await keysUnder(bucket, prefix)).filter(isLockable);
      for (const k of stored2) {
        const mine = k === 'meta/1' || k.startsWith('private/1/');
        assert.deepEqual(await lockOf(prefix, k), { mode: 'GOVERNANCE', retainUntil: mine ? until1 : until2 }, k);
      }

      const del = await run(['delete', '--backup-dir', url, '--id', '1', '--json']);
      assert.equal(del.code, 5, del.stderr);
      assert.equal(JSON.parse(del.stdout).error.code, 'Retained');
      assert.match(del.stderr, new RegExp(`backup 1 in ${url} is under retention until ${until1.toISOString()} \\(meta/1 GOVERNANCE, and \\d+ more files\\); nothing was deleted`));

      const dry = await run(['purge', '--backup-dir', url, '--keep-last', '1', '--dry-run']);
      ok(dry, 'purge --dry-run');
      assert.match(dry.stdout, new RegExp(`would keep backup 1: under retention until ${until1.toISOString()}`));
      const purge = await run(['purge', '--backup-dir', url, '--keep-last', '1', '--json']);
      ok(purge, 'purge');
      const p = JSON.parse(purge.stdout);
      assert.deepEqual(p.deleted, []);
      assert.deepEqual(p.keptRetained.map((k: { id: number; until: string }) => [k.id, k.until]), [[1, until1.toISOString()]]);
      assert.ok(p.keptRetained[0].files.some((f: { file: string; mode: string; until: string }) => f.file === 'meta/1' && f.mode === 'GOVERNANCE' && f.until === until1.toISOString()));

      const gc = await run(['gc', '--backup-dir', url, '--json']);
      ok(gc, 'gc');
      const { requests: _requests, ...gcResult } = JSON.parse(gc.stdout);
      assert.deepEqual(gcResult, { deletedFiles: 0, abortedUploads: 0, keptForResume: 0, retained: [] });
      assert.deepEqual((await keysUnder(bucket, prefix)).filter(isLockable), stored2, 'nothing deleted, nothing hidden');

      const list = await run(['list', '--backup-dir', url, '--json']);
      assert.deepEqual(JSON.parse(list.stdout).map((b: { id: number; corrupt: boolean }) => [b.id, b.corrupt]), [[1, false], [2, false]]);
      for (const [id, state] of [[1, state1], [2, state2]] as const) {
        const out = path.join(work, `restore${n}-${id}`);
        ok(await run(['restore', '--backup-dir', url, '--db', out, '--id', String(id)]), `restore ${id}`);
        await assertSameDir(out, state, `backup ${id}`);
      }
      ok(await run(['verify', '--backup-dir', url, '--checksum']), 'verify');
    });

    it('gc leaves garbage under retention in place and names its backup and date; versions no listing shows are swept', async () => {
      const { prefix, url } = await fresh();
      const env = new S3Env(`${url}/`, { endpoint: srv.endpoint, region: srv.region, credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey } });
      const until = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000);
      try {
        await env.requireRetention();
        // What an interrupted backup 9 left: a locked private file and no manifest.
        await env.write('private/9/000011.log', [Buffer.from('wal bytes')], { retainUntil: until });
        await env.write('private/8/CURRENT', [Buffer.from('MANIFEST-000001\n')]);
        // Hidden from every listing: a version behind a delete marker (a plain DeleteObject, as
        // another tool or an older cairn sends), and an older version of a rewritten object.
        await env.write('shared_checksum/000001_1_1.sst', [Buffer.from('x')]);
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}shared_checksum/000001_1_1.sst` }));
        await env.write('shared_checksum/000002_1_1.sst', [Buffer.from('y')]);
        await env.write('shared_checksum/000002_1_1.sst', [Buffer.from('z')]);
      } finally {
        await env.close();
      }
      assert.equal((await versionsUnder(`${prefix}shared_checksum/`)).length, 4);
      // --grace 0: the young unreferenced shared file would otherwise wait for a resumed backup.
      const gc = await run(['gc', '--backup-dir', url, '--grace', '0', '--json']);
      ok(gc, 'gc');
      const r = JSON.parse(gc.stdout);
      assert.deepEqual(r.retained, [{ file: 'private/9/000011.log', mode: 'GOVERNANCE', until: until.toISOString(), backupId: 9 }]);
      assert.equal(r.deletedFiles, 2, 'the unlocked leftovers go');
      assert.deepEqual(await keysUnder(bucket, prefix), ['private/9/000011.log']);
      assert.deepEqual(await versionsUnder(`${prefix}private/8/`), [], 'deleted by version: no delete marker, no version left');
      assert.deepEqual(await versionsUnder(`${prefix}shared_checksum/`), [], 'hidden versions swept');
      const text = await run(['gc', '--backup-dir', url]);
      assert.match(text.stdout, new RegExp(`kept private/9/000011.log \\(backup 9\\): under retention until ${until.toISOString()} \\(GOVERNANCE\\)`));
    });

    it('COMPLIANCE for seconds: delete refused until the dates pass, then everything goes, no version left', async () => {
      const { db, spec, prefix, url } = await fresh();
      const env = { CAIRN_S3_OBJECT_LOCK_MODE: 'compliance' };
      const b1 = await run(['backup', '--db', db, '--backup-dir', url, '--retain', '8s', '--json'], env);
      ok(b1, 'backup 1');
      const until1 = new Date(JSON.parse(b1.stdout).retainUntil);
      assert.deepEqual(await lockOf(prefix, 'meta/1'), { mode: 'COMPLIANCE', retainUntil: until1 });
      await nextState(db, spec);
      const state2 = await dbState(db);
      const b2 = await run(['backup', '--db', db, '--backup-dir', url, '--retain', '9s', '--json'], env);
      ok(b2, 'backup 2');
      const until2 = new Date(JSON.parse(b2.stdout).retainUntil);

      // Retried until the store lets go: every refusal before that is the retention's (exit 5).
      const deleteWhenFree = async (id: number, until: Date) => {
        const deadline = Date.now() + 120_000;
        for (;;) {
          const r = await run(['delete', '--backup-dir', url, '--id', String(id)]);
          if (r.code === 0) return;
          assert.equal(r.code, 5, r.stderr);
          assert.match(r.stderr, /under retention until/);
          assert.ok(Date.now() < deadline, `backup ${id} still retained two minutes after ${until.toISOString()}`);
          await new Promise((res) => setTimeout(res, 250));
        }
      };
      const early = await run(['delete', '--backup-dir', url, '--id', '2']);
      if (Date.now() < until2.getTime() - 500) assert.equal(early.code, 5, `deleted while retained: ${early.stderr}`);
      await deleteWhenFree(1, until1);
      const left = (await keysUnder(bucket, prefix)).filter(isLockable);
      assert.ok(!left.includes('meta/1') && !left.some((k) => k.startsWith('private/1/')), left.join(' '));
      const out = path.join(work, `restore${n}`);
      ok(await run(['restore', '--backup-dir', url, '--db', out]), 'restore 2');
      await assertSameDir(out, state2, 'backup 2 after backup 1 went');
      await deleteWhenFree(2, until2);
      assert.deepEqual(await keysUnder(bucket, prefix), []);
      assert.deepEqual(await versionsUnder(prefix), [], 'no version and no delete marker left');
    });

    // moto drops the lock headers of CreateMultipartUpload (object-lock.test.ts): cairn notices
    // after the write and fails the backup; MinIO and LocalStack lock multipart objects.
    it(`a file written in parts is locked too${kind === 'moto' ? ' (moto: not, and the backup fails saying so)' : ''}`, async () => {
      const { db, spec, prefix, url } = await fresh();
      await writeFakeDb(db, { ...spec, tables: [table(7, 6 * 1024 * 1024)] });
      const r = await run(['backup', '--db', db, '--backup-dir', url, '--retain', '1h', '--json'], { CAIRN_S3_PART_SIZE: '5MiB' });
      if (kind === 'moto') {
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /did not keep the Object Lock retention asked for .*000007_.*\.sst/);
        assert.deepEqual((await keysUnder(bucket, prefix)).filter((k) => k.startsWith('meta/')), [], 'nothing published');
        return;
      }
      ok(r, 'backup');
      const until = new Date(JSON.parse(r.stdout).retainUntil);
      const big = (await keysUnder(bucket, prefix)).find((k) => k.startsWith('shared_checksum/000007_'))!;
      assert.deepEqual(await lockOf(prefix, big), { mode: 'GOVERNANCE', retainUntil: until });
    });
  });
}
