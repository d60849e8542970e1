// GCS retention on fake-gcs-server, through the JSON API a provider would use: what the emulator
// keeps and what it enforces (only that a Locked object retention never changes, not even to be
// extended), pinned so a release that starts enforcing is noticed and docs/retention.md updated. GCS itself refuses to delete or overwrite an object under a bucket
// retention policy, an object retention or a hold (403); none of that can be tested here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { requireOrSkip } from '../support/servers-common.ts';
import { GCS_SERVER_BIN, startGcsServer, type GcsServer } from '../support/gcs-server.ts';

describe('GCS retention on fake-gcs-server', { skip: requireOrSkip(existsSync(GCS_SERVER_BIN), 'fake-gcs-server') }, () => {
  let srv: GcsServer;
  const until = new Date(Math.ceil(Date.now() / 1000) * 1000 + 24 * 3_600_000).toISOString();

  const json = async (method: string, path: string, body?: unknown, query = '') => {
    const res = await fetch(`${srv.endpoint}${path}${query}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const newBucket = async (extra: Record<string, unknown> = {}, query = '') => {
    const name = `ret-${randomBytes(5).toString('hex')}`;
    const r = await json('POST', '/storage/v1/b', { name, ...extra }, `?project=${srv.projectId}${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return name;
  };
  const upload = async (bucket: string, name: string, metadata?: Record<string, unknown>) => {
    let res: Response;
    if (metadata === undefined) {
      res = await fetch(`${srv.endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${name}`, { method: 'POST', body: 'bytes' });
    } else {
      const b = 'cairn-boundary';
      const body = `--${b}\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ name, ...metadata })}\r\n--${b}\r\ncontent-type: application/octet-stream\r\n\r\nbytes\r\n--${b}--\r\n`;
      res = await fetch(`${srv.endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=multipart`, { method: 'POST', headers: { 'content-type': `multipart/related; boundary=${b}` }, body });
    }
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Record<string, unknown>;
  };
  const remove = (bucket: string, name: string) => json('DELETE', `/storage/v1/b/${bucket}/o/${name}`);

  before(async () => {
    srv = (await startGcsServer())!;
  });
  after(async () => {
    await srv?.stop();
  });

  it('ignores a bucket retention policy: not stored, objects deletable at once', async () => {
    const bucket = await newBucket({ retentionPolicy: { retentionPeriod: '3600' } });
    assert.equal((await json('GET', `/storage/v1/b/${bucket}`)).body.retentionPolicy, undefined);
    await upload(bucket, 'x');
    assert.equal((await remove(bucket, 'x')).status, 200);
    const patched = await json('PATCH', `/storage/v1/b/${srv.bucket}`, { retentionPolicy: { retentionPeriod: '3600' } });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.retentionPolicy, undefined);
  });

  it('keeps defaultEventBasedHold on the bucket but holds no new object', async () => {
    const bucket = await newBucket({ defaultEventBasedHold: true });
    assert.equal((await json('GET', `/storage/v1/b/${bucket}`)).body.defaultEventBasedHold, true);
    const obj = await upload(bucket, 'x');
    assert.equal(obj.eventBasedHold, undefined);
    assert.equal((await remove(bucket, 'x')).status, 200);
  });

  it('drops event-based and temporary holds set on an object; a "held" object is deleted', async () => {
    await upload(srv.bucket, 'held');
    const patched = await json('PATCH', `/storage/v1/b/${srv.bucket}/o/held`, { eventBasedHold: true, temporaryHold: true });
    assert.equal(patched.status, 200);
    const got = await json('GET', `/storage/v1/b/${srv.bucket}/o/held`);
    assert.equal(got.body.eventBasedHold, undefined);
    assert.equal(got.body.temporaryHold, undefined);
    assert.equal((await remove(srv.bucket, 'held')).status, 200);
  });

  it('stores object retention; freezes a Locked one entirely (extension too) yet deletes and overwrites it', async () => {
    const bucket = await newBucket({}, '&enableObjectRetention=true');
    assert.equal((await json('GET', `/storage/v1/b/${bucket}`)).body.objectRetention, undefined, 'the bucket does not report object retention as enabled');
    const obj = await upload(bucket, 'r', { retention: { mode: 'Locked', retainUntilTime: until } });
    assert.equal(new Date((obj.retention as { retainUntilTime: string }).retainUntilTime).toISOString(), until);
    const patch = (name: string, retention: unknown) => json('PATCH', `/storage/v1/b/${bucket}/o/${name}`, { retention });
    const later = new Date(Date.parse(until) + 24 * 3_600_000).toISOString();
    const shorter = new Date(Date.now() + 3_600_000).toISOString();
    // GCS allows extending a Locked retention; fake-gcs-server refuses any change.
    for (const change of [{ mode: 'Locked', retainUntilTime: later }, { mode: 'Locked', retainUntilTime: shorter }, { mode: 'Unlocked', retainUntilTime: later }]) {
      const r = await patch('r', change);
      assert.equal(r.status, 400, JSON.stringify(change));
      assert.match(JSON.stringify(r.body), /locked retention policy and cannot be modified/);
    }
    // GCS refuses both while the retention lasts.
    const overwrite = await fetch(`${srv.endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=r`, { method: 'POST', body: 'other bytes' });
    assert.equal(overwrite.status, 200);
    await upload(bucket, 'r2', { retention: { mode: 'Locked', retainUntilTime: until } });
    assert.equal((await remove(bucket, 'r2')).status, 200);
    // Unlocked: GCS needs overrideUnlockedRetention=true to shorten; fake-gcs-server does not.
    await upload(bucket, 'u', { retention: { mode: 'Unlocked', retainUntilTime: until } });
    const shortened = await patch('u', { mode: 'Unlocked', retainUntilTime: shorter });
    assert.equal(shortened.status, 200);
    assert.equal(new Date((shortened.body.retention as { retainUntilTime: string }).retainUntilTime).getTime(), Date.parse(shorter));
    // GCS refuses object retention in a bucket created without enableObjectRetention.
    await upload(srv.bucket, 'plain');
    const onPlain = await json('PATCH', `/storage/v1/b/${srv.bucket}/o/plain`, { retention: { mode: 'Unlocked', retainUntilTime: until } });
    assert.equal(onPlain.status, 200);
    assert.equal((onPlain.body.retention as { mode: string }).mode, 'Unlocked');
  });
});
