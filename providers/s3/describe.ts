// What `cairn check` says of an S3 store: each probed capability (probe.ts), what cairn does
// about it with the strategy it chose (write-strategy.ts).
import type { StoreDescription, StoreFeature } from '../../src/env.ts';
import type { S3StoreCapabilities } from './probe.ts';
import type { ChecksumMode, StoredCheck, WriteStrategy } from './write-strategy.ts';

const AFTER: Record<StoredCheck, string> = {
  crc32c: "the stored CRC32C is compared with cairn's after every write, and by verify --server-checksum",
  composite: 'cairn recomputes the composite value from its part CRC32Cs after the write; verify --server-checksum checks the size only',
  'etag-md5': 'the ETag is compared with the MD5 cairn computed after every write; verify --server-checksum checks the size only',
  size: 'only the size is compared after the write (and by verify --server-checksum); restore and verify --checksum still check the CRC32C',
};

export function describeS3Store(mode: ChecksumMode, c: S3StoreCapabilities, s: WriteStrategy): StoreDescription {
  const f: StoreFeature[] = [];
  const add = (feature: string, store: string, cairn: string, ok: boolean) => f.push({ feature, store, cairn, ok });
  add(
    'x-amz-checksum-crc32c headers',
    c.checksumHeaders,
    s.sendCrc32c ? 'sent with every PUT and part: the store refuses a body damaged on the way' : 'not sent; Content-MD5 protects the bodies instead',
    c.checksumHeaders === 'accepted',
  );
  add('full-object CRC32C of a single PUT', c.singleCrc32c === 'full' ? 'kept' : 'not kept', AFTER[s.afterSingle], c.singleCrc32c === 'full');
  add(
    'CRC32C of a multipart upload',
    c.multipartCrc32c === 'full' ? 'FULL_OBJECT kept' : c.multipartCrc32c === 'composite' ? 'COMPOSITE only' : 'not kept',
    (s.fullObjectMultipart ? 'FULL_OBJECT with the whole-file CRC32C on Complete; ' : '') + AFTER[s.afterMultipart],
    c.multipartCrc32c === 'full',
  );
  const inm = (what: string, v: S3StoreCapabilities['ifNoneMatchPut'], sent: boolean) =>
    add(
      `If-None-Match: * on ${what}`,
      v,
      sent
        ? 'create-only writes are conditional: an existing object is never replaced'
        : 'not sent: a create-only write checks with a HEAD first; backups are published only under the writer lock, which needs no conditional write',
      v === 'enforced',
    );
  inm('PutObject', c.ifNoneMatchPut, s.ifNoneMatch.put);
  inm('CompleteMultipartUpload', c.ifNoneMatchComplete, s.ifNoneMatch.complete);
  add(
    'Content-MD5 validated',
    c.contentMd5Validated ? 'yes' : 'no',
    s.contentMd5 ? (c.contentMd5Validated ? 'sent with every PUT and part' : 'sent, but the store does not check it: a body damaged on the way is caught only by the check after the write') : 'not needed (CRC32C)',
    c.contentMd5Validated || !s.contentMd5,
  );
  add(
    'ETag is an MD5',
    `single PUT ${c.etagIsMd5.single ? 'yes' : 'no'}, multipart ${c.etagIsMd5.multipart ? 'yes' : 'no'}`,
    s.afterSingle === 'etag-md5' || s.afterMultipart === 'etag-md5' ? 'compared after the write where no CRC32C is kept' : 'not used',
    true,
  );
  add(
    'ListMultipartUploads by prefix',
    c.listUploadsByPrefix === 'yes' ? 'yes' : c.listUploadsByPrefix === 'exact-key' ? 'by exact key only' : 'no',
    c.listUploadsByPrefix === 'yes'
      ? 'gc aborts every interrupted upload under the prefix'
      : 'gc aborts only the uploads this process failed to abort: add a bucket lifecycle rule AbortIncompleteMultipartUpload',
    c.listUploadsByPrefix === 'yes',
  );
  const how =
    s.name === 'crc32c'
      ? 'crc32c: full-object CRC32C on every write, checked by the store and read back'
      : `md5 (compatible): Content-MD5 on every PUT and part${s.sendCrc32c ? ' plus CRC32C headers' : ''}, checked after the write by ${[...new Set([s.afterSingle, s.afterMultipart])].join(' / ')}`;
  return { writePath: `${how} (CAIRN_S3_CHECKSUM=${mode})`, features: f };
}
