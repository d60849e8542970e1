// The object-store layer shared by the S3 and GCS providers, without a server: locations, write
// checks, options from the environment, error helpers and the request counter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BucketLocation } from '../../providers/object-store/location.ts';
import { WriteTally, checkStored } from '../../providers/object-store/write-checks.ts';
import { envBool, envByteSize, envPositiveInt, envStorageClass, envString, isLoopbackUrl, optionsFromEnv, parseByteSize } from '../../providers/object-store/env-options.ts';
import { codeOfStatus, isAbortError, abortedError } from '../../providers/object-store/errors.ts';
import { RequestCounter } from '../../providers/object-store/request-counts.ts';
import { CairnError, isCairnError } from '../../src/errors.ts';
import { crc32c } from '../../src/crc32c.ts';
import { fillCapabilities } from '../../src/env.ts';

const invalid = (e: unknown) => isCairnError(e, 'InvalidArgument');
const corrupt = (re: RegExp) => (e: unknown) => isCairnError(e, 'Corruption') && re.test((e as Error).message);

describe('BucketLocation', () => {
  it('parses scheme://bucket[/prefix] the same way for every store', () => {
    const a = BucketLocation.parse('s3://b', 's3');
    assert.deepEqual([a.bucket, a.prefix, a.url], ['b', '', 's3://b']);
    const b = BucketLocation.parse(new URL('gs://b//x/y%20z/'), 'gs');
    assert.deepEqual([b.bucket, b.prefix, b.url], ['b', 'x/y z/', 'gs://b/x/y z']);
    for (const bad of ['gs://b/x', 's3:///x', 's3://b/a//c', 's3://b/a%2F..%2F..%2Fc', 's3://b/x?versionId=1', 's3://b/x#f', 's3://b/%E0%A4%A', 'not a url']) {
      assert.throws(() => BucketLocation.parse(bad, 's3'), invalid, bad);
    }
    assert.throws(() => BucketLocation.parse('gs://B', 'gs', (x) => /^[a-z]+$/.test(x)), invalid);
  });

  it('maps names to keys and listed keys back to names', () => {
    const loc = BucketLocation.parse('s3://b/root', 's3');
    assert.equal(loc.key('meta/1'), 'root/meta/1');
    assert.throws(() => loc.key('../x'), invalid);
    assert.equal(loc.listKey('private/'), 'root/private/');
    assert.throws(() => loc.listKey('/x'), invalid);
    assert.throws(() => loc.listKey('a\0'), invalid);
    assert.equal(loc.nameOf('root/meta/1'), 'meta/1');
    for (const outside of ['rootx/meta/1', 'other/x', 'root/dir/', 'root/a//b', 'root/']) assert.equal(loc.nameOf(outside), undefined, outside);
    assert.equal(loc.where('root/k'), 's3://b/root/k');
    assert.equal(loc.where(), 's3://b');
    assert.equal(BucketLocation.parse('gs://bucket', 'gs').key('k'), 'k');
  });
});

describe('write checks', () => {
  it('counts and hashes what passes; the right size and crc32c pass checkEnd', () => {
    const data = randomBytes(1000);
    const t = new WriteTally('f', { size: 1000, expectedCrc32c: crc32c(data) });
    t.add(data.subarray(0, 400));
    t.add(data.subarray(400));
    t.checkEnd();
    assert.deepEqual([t.size, t.crc32c], [1000, crc32c(data)]);
  });

  it('refuses more than declared at once, fewer or another crc32c at the end', () => {
    const over = new WriteTally('f', { size: 3 });
    assert.throws(() => over.add(Buffer.alloc(4)), corrupt(/more than the declared 3 bytes/));
    const short = new WriteTally('f', { size: 3 });
    short.add(Buffer.alloc(2));
    assert.throws(() => short.checkEnd(), corrupt(/delivered 2 bytes, 3 were declared/));
    const wrong = new WriteTally('f', { expectedCrc32c: 5 });
    wrong.add(Buffer.from('x'));
    assert.throws(() => wrong.checkEnd(), corrupt(/5 was expected/));
    for (const size of [-1, 1.5, Number.NaN]) assert.throws(() => new WriteTally('f', { size }), invalid, String(size));
  });

  it('checkStored accepts what was sent, refuses another size or crc32c naming the consequence', () => {
    checkStored('s3://b/k', 'k', { size: 3, crc32c: 7 }, { size: 3, crc32c: 7 }, 'x');
    checkStored('s3://b/k', 'k', { size: 3, crc32c: 7 }, { crc32c: 7 }, 'x');
    assert.throws(() => checkStored('s3://b/k', 'k', { size: 3, crc32c: 7 }, { size: 3, crc32c: 8 }, 'generation 9 deleted'), corrupt(/crc32c 8.*generation 9 deleted/));
    assert.throws(() => checkStored('s3://b/k', 'k', { size: 3, crc32c: 7 }, { size: 4, crc32c: 7 }, 'x'), corrupt(/4 bytes/));
    assert.throws(() => checkStored('s3://b/k', 'k', { size: 3, crc32c: 7 }, {}, 'x'), corrupt(/undefined/));
  });
});

describe('options from the environment', () => {
  it('reads each kind of value, treats blank as unset and names a bad variable', () => {
    assert.equal(parseByteSize('16MiB', 'X'), 16 * 1024 * 1024);
    assert.equal(envByteSize({ X: ' 2 KiB ' }, 'X'), 2048);
    assert.equal(envByteSize({ X: '' }, 'X'), undefined);
    assert.throws(() => envByteSize({ X: '8MB' }, 'X'), (e) => invalid(e) && /X=/.test((e as Error).message));
    assert.equal(envPositiveInt({ N: '7' }, 'N'), 7);
    assert.throws(() => envPositiveInt({ N: '0' }, 'N'), invalid);
    assert.deepEqual(['yes', 'off', '1', 'FALSE'].map((v) => envBool({ B: v }, 'B')), [true, false, true, false]);
    assert.throws(() => envBool({ B: 'maybe' }, 'B'), invalid);
    assert.equal(envStorageClass({ C: 'NEARLINE' }, 'C', 'X'), 'NEARLINE');
    assert.throws(() => envStorageClass({ C: 'near line' }, 'C', 'NEARLINE'), (e) => invalid(e) && /such as NEARLINE/.test((e as Error).message));
    assert.deepEqual(
      optionsFromEnv<{ a?: string; n?: number; b?: boolean }>({ A: 'x', N: '3', B: ' ' }, { a: ['A', envString], n: ['N', envPositiveInt], b: ['B', envBool] }),
      { a: 'x', n: 3 },
    );
  });

  it('tells loopback endpoints apart', () => {
    for (const u of ['http://127.0.0.1:9000', 'http://localhost', 'http://[::1]:80']) assert.equal(isLoopbackUrl(u), true, u);
    for (const u of ['http://10.0.0.1', 'https://s3.amazonaws.com', 'nonsense']) assert.equal(isLoopbackUrl(u), false, u);
  });
});

describe('errors, counts, capabilities', () => {
  it('recognises aborts from every layer and maps shared statuses', () => {
    assert.ok(isAbortError(Object.assign(new Error('x'), { name: 'AbortError' })));
    assert.ok(isAbortError(Object.assign(new Error('x'), { code: 'ABORT_ERR' })));
    assert.ok(isAbortError(new CairnError('Aborted', 'x')));
    assert.ok(!isAbortError(new Error('x')));
    assert.deepEqual([401, 403, 404, 412, 501, 500].map(codeOfStatus), ['PermissionDenied', 'PermissionDenied', 'NotFound', 'AlreadyExists', 'NotSupported', undefined]);
    const a = abortedError({ op: 'GetObject', where: 's3://b/k', file: 'k', signal: AbortSignal.abort() }, new Error('socket closed'));
    assert.ok(isCairnError(a, 'Aborted') && a.file === 'k' && /GetObject s3:\/\/b\/k: aborted/.test(a.message));
    assert.equal(abortedError({ op: 'x', where: 'y' }, new Error('other')), undefined);
  });

  it('counts requests by verb', () => {
    const c = new RequestCounter();
    for (const v of ['LIST', 'HEAD', 'LIST', 'PUT']) c.add(v);
    assert.deepEqual(c.snapshot(), { HEAD: 1, LIST: 2, PUT: 1 });
  });

  it('derives serverChecksum from the method, whatever is declared', () => {
    assert.equal(fillCapabilities({}, { atomicCreateOnly: true }).serverChecksum, false);
    assert.equal(fillCapabilities({ serverChecksum: async () => ({ size: 0 }) }, { atomicCreateOnly: true }).serverChecksum, true);
    const declared = { atomicCreateOnly: false, serverChecksum: true } as unknown as Parameters<typeof fillCapabilities>[1];
    assert.equal(fillCapabilities({}, declared).serverChecksum, false);
  });
});
