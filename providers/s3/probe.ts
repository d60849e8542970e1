// What an S3-compatible store does with the features cairn's write path relies on, asked of the
// store itself: about 16 small requests under <prefix>/probe/<host>-<pid>-<random>/, deleted
// afterwards (gc and listings of backups never look under probe/). The answer decides the write
// strategy (write-strategy.ts) and is what `cairn check` prints.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { isCode, isPreconditionFailed, isStatus, mapS3Error } from './errors.ts';
import { fullObjectCrc } from './read.ts';
import type { S3Store, Signal } from './client.ts';

export const PROBE_DIR = 'probe/';

export type IfNoneMatchSupport = 'enforced' | 'ignored' | 'unsupported';

export interface S3StoreCapabilities {
  /** Requests carrying x-amz-checksum-* headers are accepted (B2 refuses them). */
  checksumHeaders: 'accepted' | 'refused';
  /** HEAD returns the full-object CRC32C of a single PUT that carried one. */
  singleCrc32c: 'full' | 'none';
  /** What HEAD returns for a multipart upload: the whole-file CRC32C, a COMPOSITE (…-N), or none. */
  multipartCrc32c: 'full' | 'composite' | 'none';
  /** `If-None-Match: *` on PutObject of an existing key: refused with 412, or it replaces, or the header is refused. */
  ifNoneMatchPut: IfNoneMatchSupport;
  ifNoneMatchComplete: IfNoneMatchSupport;
  /** ListMultipartUploads finds an open upload by a prefix of its key, only by its exact key, or not at all. */
  listUploadsByPrefix: 'yes' | 'exact-key' | 'no';
  /** A PUT whose Content-MD5 does not match its body is refused. */
  contentMd5Validated: boolean;
  /** ETags are the body's MD5 (single PUT) and MD5(part MD5s)-N (multipart). */
  etagIsMd5: { single: boolean; multipart: boolean };
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest();
const etagOf = (e: string | undefined) => e?.replace(/^W\//, '').replace(/"/g, '');

/** An answer that says the store does not take a header or feature (as opposed to access, network or bucket errors). */
function isRefusal(e: unknown): boolean {
  return isStatus(e, 400, 405, 501) || isCode(e, 'NotImplemented', 'InvalidArgument', 'InvalidRequest', 'UnsupportedHeader');
}

/** Asks the store; throws (mapped) only for errors that stop the probe itself: access, bucket, network. */
export async function probeS3Store(store: S3Store, signal: Signal): Promise<S3StoreCapabilities> {
  const dir = `${PROBE_DIR}${hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-${process.pid}-${randomBytes(4).toString('hex')}/`;
  const key = (w: string) => store.loc.key(dir + w);
  const opts = store.sendOpts(signal);
  const fail = (op: string, k: string) => (e: unknown) => {
    throw mapS3Error(e, store.request(`${op} (probing the store)`, k, signal));
  };
  const written: string[] = [];
  const body = randomBytes(16);
  const crcB64 = crc32cToBase64(crc32c(body));
  const md5B64 = md5(body).toString('base64');

  const put = async (k: string, withCrc: boolean, withInm: boolean, contentMd5 = md5B64) => {
    const r = await store.client.send(
      new PutObjectCommand({
        Bucket: store.bucket,
        Key: k,
        Body: body,
        ContentLength: body.length,
        ContentMD5: contentMd5,
        ...(withCrc ? { ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crcB64 } : {}),
        ...(withInm ? { IfNoneMatch: '*' } : {}),
      }),
      opts,
    );
    written.push(k);
    return r;
  };

  try {
    // 1. A PUT with everything cairn may send; what is refused is found by leaving it out.
    const a = key('single');
    let checksumHeaders: S3StoreCapabilities['checksumHeaders'] = 'refused';
    let inmPut: IfNoneMatchSupport = 'unsupported';
    let firstEtag: string | undefined;
    for (const [withCrc, withInm] of [[true, true], [true, false], [false, true], [false, false]] as const) {
      try {
        firstEtag = (await put(a, withCrc, withInm)).ETag;
        checksumHeaders = withCrc ? 'accepted' : 'refused';
        inmPut = withInm ? 'enforced' : 'unsupported';
        break;
      } catch (e) {
        if (!isRefusal(e) || (!withCrc && !withInm)) fail('PutObject', a)(e);
      }
    }
    store.checksumMode = checksumHeaders === 'accepted';
    const h = await store.head(a, signal);
    const singleCrc32c = h !== undefined && h.ChecksumCRC32C === crcB64 && fullObjectCrc(h) !== undefined ? 'full' : 'none';
    const etagSingle = etagOf(h?.ETag ?? firstEtag) === md5(body).toString('hex');

    // 2. The same PUT again: 412 if If-None-Match is enforced.
    if (inmPut === 'enforced') {
      try {
        await put(a, checksumHeaders === 'accepted', true);
        inmPut = 'ignored';
      } catch (e) {
        if (isPreconditionFailed(e)) inmPut = 'enforced';
        else if (isRefusal(e)) inmPut = 'unsupported';
        else fail('PutObject', a)(e);
      }
    }

    // 3. A one-part multipart upload onto a fresh key, with the whole-file CRC32C as FULL_OBJECT.
    const b = key('multipart');
    const mp = await probeMultipart(store, b, body, checksumHeaders === 'accepted', signal);
    written.push(b);
    let inmComplete: IfNoneMatchSupport = mp.inmAccepted ? 'enforced' : 'unsupported';
    const hb = await store.head(b, signal);
    const multipartCrc32c: S3StoreCapabilities['multipartCrc32c'] =
      hb?.ChecksumCRC32C === undefined ? 'none' : hb.ChecksumCRC32C === crcB64 && fullObjectCrc(hb) !== undefined ? 'full' : 'composite';
    const etagMultipart = etagOf(hb?.ETag) === `${md5(md5(body)).toString('hex')}-1`;

    // 4. An upload onto the existing key `a`, listed by prefix and by key while open, then
    // completed with If-None-Match (412 if enforced).
    const created = await store.client.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: a }), opts).catch(fail('CreateMultipartUpload', a));
    const uploadId = created.UploadId!;
    let listUploadsByPrefix: S3StoreCapabilities['listUploadsByPrefix'] = 'no';
    try {
      const listed = async (prefix: string) => {
        try {
          const r = await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: prefix }), opts);
          return (r.Uploads ?? []).some((u) => u.UploadId === uploadId);
        } catch (e) {
          // (Without s3:ListBucketMultipartUploads cairn still writes; gc then cannot list uploads.)
          if (isRefusal(e) || isStatus(e, 403)) return false;
          throw e;
        }
      };
      listUploadsByPrefix = (await listed(store.loc.listKey(dir))) ? 'yes' : (await listed(a)) ? 'exact-key' : 'no';
      if (inmComplete === 'enforced') {
        const part = await store.client.send(new UploadPartCommand({ Bucket: store.bucket, Key: a, UploadId: uploadId, PartNumber: 1, Body: body, ContentLength: body.length, ContentMD5: md5B64 }), opts);
        try {
          await store.client.send(
            new CompleteMultipartUploadCommand({ Bucket: store.bucket, Key: a, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] }, IfNoneMatch: '*' }),
            opts,
          );
          inmComplete = 'ignored';
        } catch (e) {
          if (isPreconditionFailed(e)) inmComplete = 'enforced';
          else if (isRefusal(e)) inmComplete = 'unsupported';
          else throw e;
        }
      }
    } catch (e) {
      fail('multipart upload', a)(e);
    } finally {
      if (inmComplete !== 'ignored') await store.client.send(new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: a, UploadId: uploadId })).catch(() => {});
    }

    // 5. A PUT whose Content-MD5 is wrong.
    const c = key('bad-md5');
    const bad = md5(body);
    bad[0]! ^= 1;
    let contentMd5Validated = false;
    try {
      await put(c, false, false, bad.toString('base64'));
    } catch (e) {
      if (!(isRefusal(e) || isCode(e, 'BadDigest', 'InvalidDigest'))) fail('PutObject', c)(e);
      contentMd5Validated = true;
    }

    return {
      checksumHeaders,
      singleCrc32c,
      multipartCrc32c,
      ifNoneMatchPut: inmPut,
      ifNoneMatchComplete: inmComplete,
      listUploadsByPrefix,
      contentMd5Validated,
      etagIsMd5: { single: etagSingle, multipart: etagMultipart },
    };
  } finally {
    // (Not the caller's signal: whatever happened, the probe's objects should go.)
    for (const k of new Set(written)) await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: k })).catch(() => {});
  }
}

/**
 * One part of `body` onto a fresh key: CRC32C FULL_OBJECT where the store takes it (else a plain
 * upload), Complete with If-None-Match (retried without it where refused).
 */
async function probeMultipart(store: S3Store, key: string, body: Buffer, withCrc: boolean, signal: Signal): Promise<{ inmAccepted: boolean }> {
  const opts = store.sendOpts(signal);
  const crcB64 = crc32cToBase64(crc32c(body));
  const where = (op: string) => store.request(`${op} (probing the store)`, key, signal);
  let full = withCrc;
  let created;
  try {
    created = await store.client.send(
      new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: key, ...(full ? { ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' } : {}) }),
      opts,
    );
  } catch (e) {
    if (!full || !isRefusal(e)) throw mapS3Error(e, where('CreateMultipartUpload'));
    full = false;
    created = await store.client.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: key }), opts).catch((e2: unknown) => {
      throw mapS3Error(e2, where('CreateMultipartUpload'));
    });
  }
  const uploadId = created.UploadId!;
  let completed = false;
  try {
    const part = await store.client.send(
      new UploadPartCommand({
        Bucket: store.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: 1,
        Body: body,
        ContentLength: body.length,
        ContentMD5: md5(body).toString('base64'),
        ...(full ? { ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crcB64 } : {}),
      }),
      opts,
    );
    const parts: CompletedPart[] = [{ PartNumber: 1, ETag: part.ETag, ...(full ? { ChecksumCRC32C: crcB64 } : {}) }];
    const complete = (inm: boolean) =>
      store.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: store.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          ...(full ? { ChecksumType: 'FULL_OBJECT', ChecksumCRC32C: crcB64 } : {}),
          ...(inm ? { IfNoneMatch: '*' } : {}),
        }),
        opts,
      );
    let inmAccepted = true;
    try {
      await complete(true);
    } catch (e) {
      if (!isRefusal(e)) throw e;
      inmAccepted = false;
      await complete(false);
    }
    completed = true;
    return { inmAccepted };
  } catch (e) {
    throw mapS3Error(e, where('multipart upload'));
  } finally {
    if (!completed) await store.client.send(new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: key, UploadId: uploadId })).catch(() => {});
  }
}
