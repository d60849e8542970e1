// cairn's own ListObjectsV2 pages (providers/s3/direct-list.ts, list-page.ts): the reader on
// S3's documented answer shapes, then against MinIO behind the fault proxy: after the SDK's
// first page, pages go without the SDK (no amz-sdk-invocation-id header) and list exactly what
// the SDK lists; answers other than a 200 that parses are asked again through the SDK, and a
// refusal the SDK does not get turns cairn's own pages off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../../src/errors.ts';
import type { FileInfo } from '../../src/env.ts';
import type { S3Env } from '../../providers/s3/index.ts';
import { parseListPage, xmlText } from '../../providers/s3/list-page.ts';
import { listTemplateOf } from '../../providers/s3/direct-list.ts';
import type { SentRequest } from '../../providers/s3/direct-request.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled } from '../support/s3-servers.ts';
import { minioBehindProxies, viaSdk, waitFor } from './direct-harness.ts';
import { isList, type FaultProxy, type LoggedRequest } from '../support/fault-proxy.ts';

const lists = (p: FaultProxy) => p.log.filter(isList);

const page = (contents: string, top = '<IsTruncated>false</IsTruncated>') =>
  Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>${top}${contents}</ListBucketResult>`);
const obj = (key: string, size: number | string, extra = '<LastModified>2026-12-01T10:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag>') =>
  `<Contents><Key>${key}</Key>${extra}<Size>${size}</Size><Owner><ID>o</ID><DisplayName>d</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>`;

describe('parseListPage', () => {
  const p = Buffer.from('p/');
  it('reads names below the prefix, sizes, modification times and where to go on', () => {
    const b = page(obj('p/shared_checksum/1_s1_10.sst', 10) + obj('p/meta/1', 1234567890123), '<IsTruncated>true</IsTruncated><NextContinuationToken>a+b/c&amp;=</NextContinuationToken>');
    assert.deepEqual(parseListPage(b, p), {
      entries: [
        { name: 'shared_checksum/1_s1_10.sst', size: 10, modified: Date.parse('2026-12-01T10:00:00.000Z') },
        { name: 'meta/1', size: 1234567890123, modified: Date.parse('2026-12-01T10:00:00.000Z') },
      ],
      truncated: true,
      next: 'a+b/c&=',
    });
  });
  it('decodes references in keys, and leaves out keys outside the prefix', () => {
    const b = page(obj('p/a&amp;b &lt;c&gt; &#233;&#x1F600;.sst', 1) + obj('q/other', 2) + obj('p/é.sst', 3, ''));
    assert.deepEqual(parseListPage(b, p)?.entries, [
      { name: 'a&b <c> é😀.sst', size: 1, modified: Date.parse('2026-12-01T10:00:00.000Z') },
      { name: 'é.sst', size: 3 },
    ]);
    assert.deepEqual(parseListPage(page(''), p), { entries: [], truncated: false, next: undefined });
  });
  it('refuses what is not a ListObjectsV2 answer', () => {
    assert.equal(parseListPage(Buffer.from('<Error><Code>AccessDenied</Code></Error>'), p), undefined);
    assert.equal(parseListPage(page(obj('p/a', 'x1')), p), undefined, 'a size that is not a number');
    assert.equal(parseListPage(page('<Contents><Size>1</Size></Contents>'), p), undefined, 'no key');
    assert.equal(parseListPage(page(obj('p/a&bogus;', 1)), p), undefined, 'an unknown entity');
    assert.equal(parseListPage(page(obj('p/a', 1), ''), p), undefined, 'no IsTruncated');
    assert.equal(parseListPage(page(obj('p/a', 1)).subarray(0, 200), p), undefined, 'cut short');
  });
  it('xmlText', () => {
    assert.equal(xmlText('plain'), 'plain');
    assert.equal(xmlText('&quot;&apos;&amp;&#65;&#x42;'), `"'&AB`);
    assert.equal(xmlText('a & b'), undefined);
    assert.equal(xmlText('&#x110000;'), undefined);
  });
});

describe('listTemplateOf', () => {
  const sent = (o: Partial<SentRequest> = {}): SentRequest => ({
    method: 'GET',
    protocol: 'https:',
    hostname: 'b.s3.eu-west-1.amazonaws.com',
    path: '/',
    query: { 'list-type': '2', prefix: 'p/meta/', 'continuation-token': 't', 'max-keys': '5' },
    headers: { host: 'b.s3.eu-west-1.amazonaws.com', authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00', 'user-agent': 'ua' },
    ...o,
  });
  it('takes the path, the SigV4 scope, the static headers and the query that does not change per page', () => {
    assert.deepEqual(listTemplateOf(sent(), 'p/meta/'), {
      origin: { protocol: 'https:', hostname: 'b.s3.eu-west-1.amazonaws.com' },
      path: '/',
      fixedQuery: { 'list-type': '2' },
      region: 'eu-west-1',
      service: 's3',
      headers: { host: 'b.s3.eu-west-1.amazonaws.com', 'user-agent': 'ua' },
    });
  });
  it('copies nothing it cannot copy safely', () => {
    assert.equal(listTemplateOf(sent(), 'p/other/'), undefined, 'another prefix');
    assert.equal(listTemplateOf(sent({ method: 'HEAD' }), 'p/meta/'), undefined, 'not a GET');
    assert.equal(listTemplateOf(sent({ query: { prefix: 'p/meta/' } }), 'p/meta/'), undefined, 'ListObjects v1');
    const h = sent().headers;
    assert.equal(listTemplateOf(sent({ headers: { ...h, 'x-amz-s3session-token': 't' } }), 'p/meta/'), undefined, 'an S3 Express session');
  });
});

describe("cairn's own list pages against MinIO", { skip: requireOrSkip(s3ServerInstalled('minio'), 'minio (bash scripts/install-s3-servers.sh minio)') ?? false }, () => {
  const envVia = minioBehindProxies('direct-list', { listPageSize: 2 });
  // Names XML must escape, non-ASCII ones, and ones URL encoding treats specially.
  const names = ['shared_checksum/1_s1_10.sst', 'shared_checksum/a&b.sst', 'shared_checksum/x<y>"\'.sst', 'shared_checksum/é ü+%20=?.sst', 'shared_checksum/z 😀.sst', 'private/1/CURRENT', 'private/1/MANIFEST-000005'];
  const put = async (env: S3Env) => {
    for (const [i, name] of names.entries()) await env.write(name, [Buffer.alloc(100 + i, i)]);
  };
  const listAll = async (env: S3Env, prefix: string): Promise<FileInfo[]> => {
    const out: FileInfo[] = [];
    for await (const f of env.list(prefix)) out.push(f);
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  };

  it('after the first page, lists what the SDK lists without the SDK', async () => {
    const prefix = `direct list 0/é&(x)`;
    const { env, proxy } = await envVia({ prefix });
    await put(env);
    const { env: sdkEnv } = await envVia({ prefix, directList: false });
    const mark = lists(proxy).length;
    const mine = await listAll(env, 'shared_checksum/');
    const theirs = await listAll(sdkEnv, 'shared_checksum/');
    assert.deepEqual(mine, theirs);
    assert.deepEqual(mine.map((f) => [f.name, f.size]), names.slice(0, 5).map((name, i) => [name, 100 + i]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
    assert.ok(mine.every((f) => typeof f.modified === 'number' && f.modified > Date.parse('2026-01-01')));
    const sent = lists(proxy).slice(mark);
    assert.equal(sent.length, 3, 'five keys at two a page');
    assert.deepEqual(sent.map((r) => [viaSdk(r), r.status]), [[true, 200], [false, 200], [false, 200]], 'the first page through the SDK, the next ones without');
    assert.equal(env.requestCounts()['LIST'], lists(proxy).length, 'cairn counts its own pages');
    assert.deepEqual((await listAll(env, 'private/')).map((f) => f.name), ['private/1/CURRENT', 'private/1/MANIFEST-000005']);
  });

  it('with directList: false every page goes through the SDK', async () => {
    const { env, proxy } = await envVia({ directList: false });
    await put(env);
    assert.equal((await listAll(env, '')).length, names.length);
    assert.equal((await listAll(env, '')).length, names.length);
    assert.ok(lists(proxy).length >= 8 && lists(proxy).every(viaSdk));
  });

  it('a page answered 503, cut short or dropped is asked again through the SDK, and cairn keeps sending its own', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    await listAll(env, '');
    const mine = (r: LoggedRequest) => isList(r) && !viaSdk(r);
    for (const action of [{ kind: 'status', status: 503 }, { kind: 'cutResponse', afterBytes: 100 }, { kind: 'drop' }] as const) {
      const mark = proxy.log.length;
      proxy.addRule({ match: mine, action });
      assert.equal((await listAll(env, '')).length, names.length, action.kind);
      const sent = proxy.log.slice(mark).filter(isList);
      assert.deepEqual(sent.slice(0, 2).map(viaSdk), [false, true], `${action.kind}: the SDK asked again`);
      assert.ok(sent.slice(2).every((r) => !viaSdk(r)), `${action.kind}: still its own after`);
    }
  });

  it('a page refused (403), or answered with what is not a page, where the SDK succeeds turns cairn\'s own pages off', async () => {
    for (const action of [{ kind: 'status', status: 403, code: 'AccessDenied' }, { kind: 'answer', status: 200, body: '<NotAList/>' }] as const) {
      const { env, proxy } = await envVia();
      await put(env);
      await listAll(env, '');
      const mark = proxy.log.length;
      proxy.addRule({ match: (r) => isList(r) && !viaSdk(r), action });
      assert.equal((await listAll(env, '')).length, names.length);
      const sent = proxy.log.slice(mark).filter(isList);
      assert.deepEqual(sent.map(viaSdk), [false, true, true, true, true], action.kind);
    }
  });

  it('a refusal the SDK gets too is the SDK\'s error', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    await listAll(env, '');
    proxy.addRule({ match: isList, action: { kind: 'status', status: 403, code: 'AccessDenied' }, times: 3 });
    await assert.rejects(listAll(env, ''), (e) => isCairnError(e, 'PermissionDenied'));
  });

  it('an aborted page rejects with the abort, not through the SDK', async () => {
    const { env, proxy } = await envVia();
    await put(env);
    await listAll(env, '');
    const ac = new AbortController();
    proxy.addRule({ match: (r) => isList(r) && !viaSdk(r), action: { kind: 'delay', ms: 60_000 } });
    const mark = proxy.log.length;
    const p = (async () => {
      for await (const f of env.list('', { signal: ac.signal })) void f;
    })();
    await waitFor(() => proxy.log.length > mark);
    ac.abort();
    await assert.rejects(p, (e) => isCairnError(e, 'Aborted'));
    assert.ok(proxy.log.slice(mark).every((r) => !viaSdk(r)));
  });
});
