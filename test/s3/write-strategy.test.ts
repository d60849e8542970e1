// The choice of write strategy from a store's capabilities, and the check after a write, for the
// stores the probe cannot reach from here (their capabilities as their documentation states them,
// docs/s3.md). Pure functions: no server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { CRC32C_STRATEGY, chooseStrategy, compositeCrc32c, serverChecksumGaps, storedMatches, verifyStored, type SentDigests } from '../../providers/s3/write-strategy.ts';
import type { S3StoreCapabilities } from '../../providers/s3/probe.ts';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';

const FULL: S3StoreCapabilities = {
  checksumHeaders: 'accepted',
  singleCrc32c: 'full',
  multipartCrc32c: 'full',
  ifNoneMatchPut: 'enforced',
  ifNoneMatchComplete: 'enforced',
  listUploadsByPrefix: 'yes',
  contentMd5Validated: true,
  etagIsMd5: { single: true, multipart: true },
};
// Cloudflare R2: CRC32C only COMPOSITE for multipart; part ETags are not MD5s.
const R2: S3StoreCapabilities = { ...FULL, multipartCrc32c: 'composite', etagIsMd5: { single: true, multipart: false } };
// Backblaze B2: checksum headers refused, no If-None-Match documented.
const B2: S3StoreCapabilities = { ...FULL, checksumHeaders: 'refused', singleCrc32c: 'none', multipartCrc32c: 'none', ifNoneMatchPut: 'unsupported', ifNoneMatchComplete: 'unsupported' };

const md5 = (b: Buffer) => createHash('md5').update(b).digest();
const at = { where: 's3://b/k', name: 'k', server: 'the S3 server at test' };

describe('write strategy', () => {
  it('auto keeps the CRC32C protocol on a store that has everything; md5 adds Content-MD5 there', () => {
    assert.equal(chooseStrategy('auto', FULL, undefined), CRC32C_STRATEGY);
    const s = chooseStrategy('md5', FULL, undefined);
    assert.deepEqual(s, { ...CRC32C_STRATEGY, name: 'md5', contentMd5: true });
    assert.equal(serverChecksumGaps(s), undefined);
  });

  it('R2 (composite multipart CRC32C): CRC32C FULL_OBJECT not asked for, the composite recomputed after the write', () => {
    const s = chooseStrategy('auto', R2, undefined);
    assert.equal(s.name, 'md5');
    assert.equal(s.fullObjectMultipart, false);
    assert.equal(s.afterSingle, 'crc32c');
    assert.equal(s.afterMultipart, 'composite');
    assert.match(serverChecksumGaps(s)!, /multipart objects/);
  });

  it('B2 (checksum headers refused): no CRC32C header, the ETag MD5 checked, create-only by HEAD', () => {
    const s = chooseStrategy('auto', B2, undefined);
    assert.deepEqual(s, {
      name: 'md5', sendCrc32c: false, fullObjectMultipart: false, contentMd5: true,
      ifNoneMatch: { put: false, complete: false }, afterSingle: 'etag-md5', afterMultipart: 'etag-md5',
    });
    assert.match(serverChecksumGaps(s)!, /for objects:/);
  });

  it('SSE-KMS where ETags would be checked: refused up front (its ETags are not MD5s)', () => {
    assert.throws(() => chooseStrategy('auto', B2, 'aws:kms'), (e) => isCairnError(e, 'NotSupported') && /SSE-KMS/.test(e.message));
    assert.equal(chooseStrategy('auto', FULL, 'aws:kms'), CRC32C_STRATEGY);
  });

  it('the composite value is the CRC32C of the part CRC32Cs, big-endian, with -N', () => {
    const parts = [randomBytes(1000), randomBytes(10)];
    const crcs = parts.map((p) => crc32c(p));
    const be = Buffer.alloc(8);
    be.writeUInt32BE(crcs[0]!, 0);
    be.writeUInt32BE(crcs[1]!, 4);
    assert.equal(compositeCrc32c(crcs), `${crc32cToBase64(crc32c(be))}-2`);
  });

  describe('the check after a write', () => {
    const parts = [randomBytes(5000), randomBytes(300)];
    const whole = Buffer.concat(parts);
    const sentMulti: SentDigests = { size: whole.length, crc32c: crc32c(whole), multipart: true, md5s: parts.map(md5), partCrcs: parts.map((p) => crc32c(p)) };
    const sentSingle: SentDigests = { size: whole.length, crc32c: crc32c(whole), multipart: false, md5s: [md5(whole)], partCrcs: [] };
    const etagMulti = `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-2"`;
    const b2 = chooseStrategy('auto', B2, undefined);
    const r2 = chooseStrategy('auto', R2, undefined);
    const head = (h: Partial<HeadObjectCommandOutput>) => ({ $metadata: {}, ContentLength: whole.length, ...h }) as HeadObjectCommandOutput;

    it('ETag MD5: a match passes; another ETag or size is Corruption naming both', () => {
      verifyStored(b2, head({ ETag: etagMulti }), sentMulti, at);
      verifyStored(b2, head({ ETag: `"${md5(whole).toString('hex')}"` }), sentSingle, at);
      assert.ok(storedMatches(b2, head({ ETag: etagMulti }), sentMulti));
      assert.throws(() => verifyStored(b2, head({ ETag: '"0123-2"' }), sentMulti, at), (e) => isCairnError(e, 'Corruption') && /ETag is "0123-2", not the MD5/.test(e.message));
      assert.throws(() => verifyStored(b2, head({ ETag: etagMulti, ContentLength: 1 }), sentMulti, at), (e) => isCairnError(e, 'Corruption') && /reports 1 bytes/.test(e.message));
      assert.ok(!storedMatches(b2, head({ ETag: '"x"' }), sentSingle));
    });

    it('composite: the recomputed value must be the stored one', () => {
      verifyStored(r2, head({ ChecksumCRC32C: compositeCrc32c(sentMulti.partCrcs) }), sentMulti, at);
      assert.throws(() => verifyStored(r2, head({ ChecksumCRC32C: compositeCrc32c([1, 2]) }), sentMulti, at), (e) => isCairnError(e, 'Corruption') && /composite CRC32C/.test(e.message));
      // Single PUTs on R2 keep a full CRC32C: compared as such.
      verifyStored(r2, head({ ChecksumCRC32C: crc32cToBase64(sentSingle.crc32c) }), sentSingle, at);
      assert.throws(() => verifyStored(r2, head({}), sentSingle, at), (e) => isCairnError(e, 'NotSupported'));
    });

    it('an object missing right after its write is IOError', () => {
      assert.throws(() => verifyStored(b2, undefined, sentSingle, at), (e) => isCairnError(e, 'IOError'));
    });
  });
});
