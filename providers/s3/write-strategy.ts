// How cairn writes to one S3 store, chosen from what the store does (probe.ts) or forced with
// CAIRN_S3_CHECKSUM:
//   - crc32c: the store keeps full-object CRC32Cs and enforces If-None-Match: cairn's CRC32C goes
//     with every PUT, part and Complete (FULL_OBJECT) and is read back after the write.
//   - md5 (the compatible path): Content-MD5 on every PUT and part, which the store checks before
//     anything is stored; CRC32C headers still sent where the store takes them; after the write the
//     best check the store allows: its full CRC32C, its COMPOSITE CRC32C (recomputed here from the
//     part CRCs), the ETag as an MD5 (MD5 of the body, or MD5 of the part MD5s + "-N"), else the
//     size alone. Create-only writes without If-None-Match: a HEAD before (and the check after);
//     cairn's meta files are only written under the writer lock, which needs no conditional write.
// The manifest always records cairn's own CRC32C of the bytes it read.
import { createHash } from 'node:crypto';
import type { HeadOutput } from './direct-head.ts';
import { CairnError, invalidArgument, ioError } from '../../src/errors.ts';
import { crc32c, crc32cFromBase64, crc32cToBase64 } from '../../src/crc32c.ts';
import { checkStored } from '../object-store/write-checks.ts';
import { fullObjectCrc } from './read.ts';
import type { S3StoreCapabilities } from './probe.ts';

export const CHECKSUM_MODES = ['auto', 'crc32c', 'md5'] as const;
export type ChecksumMode = (typeof CHECKSUM_MODES)[number];

/** What is compared after a write: the store's full CRC32C, its composite one, the ETag as an MD5, or the size only. */
export type StoredCheck = 'crc32c' | 'composite' | 'etag-md5' | 'size';

export interface WriteStrategy {
  name: 'crc32c' | 'md5';
  /** x-amz-checksum-crc32c on PutObject and UploadPart. */
  sendCrc32c: boolean;
  /** CreateMultipartUpload/Complete with ChecksumType FULL_OBJECT and the whole-file CRC32C. */
  fullObjectMultipart: boolean;
  contentMd5: boolean;
  /** Send If-None-Match: * (only where the store enforces it). */
  ifNoneMatch: { put: boolean; complete: boolean };
  afterSingle: StoredCheck;
  afterMultipart: StoredCheck;
}

export const CRC32C_STRATEGY: WriteStrategy = {
  name: 'crc32c',
  sendCrc32c: true,
  fullObjectMultipart: true,
  contentMd5: false,
  ifNoneMatch: { put: true, complete: true },
  afterSingle: 'crc32c',
  afterMultipart: 'crc32c',
};

export function parseChecksumMode(v: string, what: string): ChecksumMode {
  if (!(CHECKSUM_MODES as readonly string[]).includes(v)) throw invalidArgument(`${what}=${JSON.stringify(v)}: expected ${CHECKSUM_MODES.join(', ')}`);
  return v as ChecksumMode;
}

/** Whether the store does everything the crc32c strategy needs. */
export function fullCrc32cStore(c: S3StoreCapabilities): boolean {
  return c.checksumHeaders === 'accepted' && c.singleCrc32c === 'full' && c.multipartCrc32c === 'full' && c.ifNoneMatchPut === 'enforced' && c.ifNoneMatchComplete === 'enforced';
}

/** The strategy for `mode` on a store with capabilities `c` (auto: crc32c where the store allows it). */
export function chooseStrategy(mode: Exclude<ChecksumMode, 'crc32c'>, c: S3StoreCapabilities, sse: string | undefined): WriteStrategy {
  if (mode === 'auto' && fullCrc32cStore(c)) return CRC32C_STRATEGY;
  const crc = c.checksumHeaders === 'accepted';
  const s: WriteStrategy = {
    name: 'md5',
    sendCrc32c: crc,
    fullObjectMultipart: crc && c.multipartCrc32c === 'full',
    contentMd5: true,
    ifNoneMatch: { put: c.ifNoneMatchPut === 'enforced', complete: c.ifNoneMatchComplete === 'enforced' },
    afterSingle: crc && c.singleCrc32c === 'full' ? 'crc32c' : c.etagIsMd5.single ? 'etag-md5' : 'size',
    afterMultipart: crc && c.multipartCrc32c === 'full' ? 'crc32c' : crc && c.multipartCrc32c === 'composite' ? 'composite' : c.etagIsMd5.multipart ? 'etag-md5' : 'size',
  };
  // With SSE-KMS, S3's ETags are not MD5s: the check after the write would fail every time.
  if (sse === 'aws:kms' && (s.afterSingle === 'etag-md5' || s.afterMultipart === 'etag-md5')) {
    throw new CairnError('NotSupported', 'SSE-KMS (aws:kms) on a store without full-object CRC32Cs: cairn checks writes there by their ETag, which is not an MD5 under SSE-KMS. Use AES256 or a store that keeps CRC32Cs');
  }
  return s;
}

export const md5Of = (b: Uint8Array): Buffer => createHash('md5').update(b).digest();

/** What one write sent, for the check after it. */
export interface SentDigests {
  size: number;
  crc32c: number;
  multipart: boolean;
  /** MD5 of the body (single PUT) or of each part, in order (md5 strategy only). */
  md5s: Buffer[];
  /** CRC32C of each part, in order (multipart only). */
  partCrcs: number[];
}

/** S3's COMPOSITE checksum of a multipart upload: the CRC32C of the parts' CRC32Cs (big-endian), "-N". */
export function compositeCrc32c(partCrcs: number[]): string {
  const all = Buffer.alloc(4 * partCrcs.length);
  partCrcs.forEach((c, i) => all.writeUInt32BE(c >>> 0, 4 * i));
  return `${crc32cToBase64(crc32c(all))}-${partCrcs.length}`;
}

export function expectedEtag(sent: SentDigests): string {
  return sent.multipart ? `${md5Of(Buffer.concat(sent.md5s)).toString('hex')}-${sent.md5s.length}` : (sent.md5s[0]?.toString('hex') ?? '');
}

const etagOf = (e: string | undefined) => e?.replace(/^W\//, '').replace(/"/g, '');

/** The check this strategy makes after a write like `sent`. */
export function checkAfter(s: WriteStrategy, sent: SentDigests): StoredCheck {
  return sent.multipart ? s.afterMultipart : s.afterSingle;
}

/** Whether the stored object is the one sent (as far as `check` can tell): for a retry whose answer was lost. */
export function storedMatches(s: WriteStrategy, h: HeadOutput, sent: SentDigests): boolean {
  if (h.ContentLength !== sent.size) return false;
  switch (checkAfter(s, sent)) {
    case 'crc32c':
      return h.ChecksumCRC32C !== undefined && crc32cFromBase64(h.ChecksumCRC32C) === sent.crc32c;
    case 'composite':
      return h.ChecksumCRC32C === compositeCrc32c(sent.partCrcs);
    case 'etag-md5':
      return etagOf(h.ETag) === expectedEtag(sent);
    case 'size':
      return true;
  }
}

/**
 * After a write: the object the store holds must be the one sent, checked as the strategy says.
 * `where` names the object, `server` the store (for NotSupported messages).
 */
export function verifyStored(s: WriteStrategy, h: HeadOutput | undefined, sent: SentDigests, at: { where: string; name: string; server: string }): void {
  const { where, name, server } = at;
  if (h === undefined) throw ioError(`${where} is missing right after it was written (deleted concurrently?)`, { file: name });
  const check = checkAfter(s, sent);
  if (check === 'crc32c') {
    const stored = h.ChecksumCRC32C;
    if (stored === undefined) {
      throw new CairnError(
        'NotSupported',
        `${server} returned no CRC32C for ${where} after the write (HeadObject with ChecksumMode ENABLED): cairn needs a store that keeps x-amz-checksum-crc32c, or CAIRN_S3_CHECKSUM=auto|md5. The object was published.`,
        { file: name },
      );
    }
    if (fullObjectCrc(h) === undefined) {
      throw new CairnError('NotSupported', `${server} stored a composite checksum (${stored}) for ${where}: it does not support FULL_OBJECT multipart checksums (CAIRN_S3_CHECKSUM=auto|md5 writes there). The object was published.`, { file: name });
    }
    checkStored(where, name, { size: sent.size, crc32c: sent.crc32c }, { crc32c: fullObjectCrc(h), ...(h.ContentLength === undefined ? {} : { size: h.ContentLength }) }, 'do not trust this object');
    return;
  }
  const size = h.ContentLength;
  const bad = (what: string) =>
    new CairnError('Corruption', `${where} was written but ${what}, while cairn sent ${sent.size} bytes with crc32c ${sent.crc32c}: do not trust this object`, { file: name });
  if (size !== undefined && size !== sent.size) throw bad(`the store reports ${size} bytes`);
  if (check === 'composite' && h.ChecksumCRC32C !== compositeCrc32c(sent.partCrcs)) throw bad(`the store reports the composite CRC32C ${h.ChecksumCRC32C}, not ${compositeCrc32c(sent.partCrcs)}`);
  if (check === 'etag-md5' && etagOf(h.ETag) !== expectedEtag(sent)) throw bad(`its ETag is ${h.ETag}, not the MD5 ${expectedEtag(sent)}`);
}

/** What `verify --server-checksum` cannot check on a store written with `s` (undefined: everything). */
export function serverChecksumGaps(s: WriteStrategy): string | undefined {
  if (s.afterSingle === 'crc32c' && s.afterMultipart === 'crc32c') return undefined;
  const none = s.afterSingle !== 'crc32c';
  return `the store keeps no full-object CRC32C for ${none ? 'objects' : 'multipart objects (files larger than one part)'}: for those, --server-checksum checks only that they exist with the right size, not their contents; \`cairn verify --checksum\` reads them and checks their CRC32C`;
}
