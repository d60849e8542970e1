// Asks S3 servers what they do with the checksum and conditional-write features cairn relies on,
// and prints one markdown table (a column per server) for docs/s3.md. It starts each server itself
// (test/support/s3-servers.ts) and talks to it with plain SDK calls, so what it prints is what the
// server answered, not what its documentation says.
// (cairn's own probe, the one that chooses its write path before the first write, is
// providers/s3/probe.ts: fewer requests, and a record rather than a table; `cairn check` prints it.)
//
//   node test/support/s3-probe.ts [minio] [localstack] [moto] [seaweedfs] [--json]
//   node test/support/s3-probe.ts --endpoint URL --bucket B   (any store; credentials from AWS_*)
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { crc32c, crc32cToBase64 } from '../../src/crc32c.ts';
import { s3ServerInstalled, startS3Server, type S3ServerKind } from './s3-servers.ts';

const MiB = 1024 * 1024;

export interface ProbeTarget {
  name: string;
  endpoint: string;
  region: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

interface Probe {
  row: string;
  run: (t: Ctx) => Promise<string>;
}

interface Ctx {
  /** Sends exactly what is asked: no checksum the call does not need. */
  c: S3Client;
  /** The SDK's defaults: CRC32 computed for every body, streams sent aws-chunked with a trailer. */
  sdkDefault: S3Client;
  bucket: string;
  key: (what: string) => string;
}

const b64 = (n: number) => crc32cToBase64(n);
const md5 = (b: Buffer) => createHash('md5').update(b).digest();
const errName = (e: unknown) => {
  const x = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
  return `${x.$metadata?.httpStatusCode ?? '?'} ${x.Code ?? x.name ?? String(e)}`;
};
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return `refused (${errName(e)})`;
  }
}
async function getBytes(t: Ctx, key: string): Promise<Buffer> {
  const r = await t.c.send(new GetObjectCommand({ Bucket: t.bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}
async function headChecksums(t: Ctx, key: string): Promise<string> {
  const h = await t.c.send(new HeadObjectCommand({ Bucket: t.bucket, Key: key, ChecksumMode: 'ENABLED' }));
  const found = Object.entries(h)
    .filter(([k, v]) => k.startsWith('Checksum') && k !== 'ChecksumType' && typeof v === 'string')
    .map(([k, v]) => `${k.slice('Checksum'.length)}=${String(v)}`);
  return `${found.join(' ') || 'none'}${h.ChecksumType ? ` (${h.ChecksumType})` : ''}`;
}

/** Uploads `parts` as one multipart upload; the Complete gets `complete` merged in. */
async function multipart(
  t: Ctx,
  key: string,
  parts: Buffer[],
  o: { type?: 'FULL_OBJECT' | 'COMPOSITE'; algorithm?: boolean; complete?: Record<string, unknown>; contentMd5?: (i: number, p: Buffer) => string | undefined } = {},
): Promise<void> {
  const cr = await t.c.send(
    new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: key, ...(o.algorithm === false ? {} : { ChecksumAlgorithm: 'CRC32C' }), ...(o.type ? { ChecksumType: o.type } : {}) }),
  );
  try {
    const done: CompletedPart[] = [];
    for (const [i, p] of parts.entries()) {
      const md5h = o.contentMd5?.(i, p);
      const r = await t.c.send(
        new UploadPartCommand({
          Bucket: t.bucket,
          Key: key,
          UploadId: cr.UploadId,
          PartNumber: i + 1,
          Body: p,
          ...(o.algorithm === false ? {} : { ChecksumCRC32C: b64(crc32c(p)) }),
          ...(md5h ? { ContentMD5: md5h } : {}),
        }),
      );
      done.push({ PartNumber: i + 1, ETag: r.ETag, ...(o.algorithm === false ? {} : { ChecksumCRC32C: b64(crc32c(p)) }) });
    }
    await t.c.send(
      new CompleteMultipartUploadCommand({
        Bucket: t.bucket,
        Key: key,
        UploadId: cr.UploadId,
        MultipartUpload: { Parts: done },
        ...(o.type ? { ChecksumType: o.type } : {}),
        ...o.complete,
      }),
    );
  } catch (e) {
    await t.c.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: key, UploadId: cr.UploadId })).catch(() => {});
    throw e;
  }
}

const twoParts = () => [randomBytes(5 * MiB), randomBytes(1000)];

export const PROBES: Probe[] = [
  {
    row: 'PUT with x-amz-checksum-crc32c: HEAD (ChecksumMode ENABLED) returns',
    run: async (t) => {
      const body = randomBytes(1000);
      const key = t.key('put-crc');
      await t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: key, Body: body, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: b64(crc32c(body)) }));
      const got = await headChecksums(t, key);
      return got.includes(`CRC32C=${b64(crc32c(body))}`) ? `the same CRC32C${got.includes('(') ? got.slice(got.indexOf(' (')) : ''}` : `not it: ${got}`;
    },
  },
  {
    row: 'PUT with a wrong x-amz-checksum-crc32c',
    run: async (t) => {
      const body = randomBytes(1000);
      return await outcome(t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: t.key('put-bad-crc'), Body: body, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: b64(crc32c(body) ^ 1) })));
    },
  },
  {
    row: 'multipart CRC32C FULL_OBJECT with the whole-file value on Complete: HEAD returns',
    run: async (t) => {
      const parts = twoParts();
      const whole = b64(crc32c(Buffer.concat(parts)));
      const key = t.key('mpu-full');
      const r = await outcome(multipart(t, key, parts, { type: 'FULL_OBJECT', complete: { ChecksumCRC32C: whole } }));
      if (r !== 'accepted') return r;
      const got = await headChecksums(t, key);
      return got.includes(`CRC32C=${whole}`) ? `the whole-file CRC32C${got.slice(got.indexOf(' ('))}` : `not it: ${got}`;
    },
  },
  {
    row: 'multipart FULL_OBJECT with a wrong whole-file value on Complete',
    run: async (t) => {
      const parts = twoParts();
      return await outcome(multipart(t, t.key('mpu-full-bad'), parts, { type: 'FULL_OBJECT', complete: { ChecksumCRC32C: b64(crc32c(Buffer.concat(parts)) ^ 1) } }));
    },
  },
  {
    row: 'multipart CRC32C without a type (COMPOSITE by default): HEAD returns',
    run: async (t) => {
      const key = t.key('mpu-composite');
      const r = await outcome(multipart(t, key, twoParts()));
      return r === 'accepted' ? await headChecksums(t, key) : r;
    },
  },
  {
    row: 'If-None-Match: * on PUT of an existing key',
    run: async (t) => {
      const key = t.key('inm-put');
      const first = await outcome(t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: key, Body: 'first', IfNoneMatch: '*' })));
      if (first !== 'accepted') return `first PUT ${first}`;
      const second = await outcome(t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: key, Body: 'second', IfNoneMatch: '*' })));
      const now = (await getBytes(t, key)).toString();
      return `${second}${now === 'second' ? ', OVERWRITTEN' : ''}`;
    },
  },
  {
    row: 'If-None-Match: * on CompleteMultipartUpload of an existing key',
    run: async (t) => {
      const key = t.key('inm-complete');
      await t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: key, Body: 'first' }));
      const r = await outcome(multipart(t, key, twoParts(), { algorithm: false, complete: { IfNoneMatch: '*' } }));
      const now = await getBytes(t, key);
      return `${r}${now.toString() !== 'first' ? ', OVERWRITTEN' : ''}`;
    },
  },
  {
    row: 'ListMultipartUploads with a prefix finds an open upload under it',
    run: async (t) => {
      const key = t.key('lmu/dir/open');
      const cr = await t.c.send(new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: key }));
      try {
        const byPrefix = await t.c.send(new ListMultipartUploadsCommand({ Bucket: t.bucket, Prefix: t.key('lmu/') }));
        const byKey = await t.c.send(new ListMultipartUploadsCommand({ Bucket: t.bucket, Prefix: key }));
        const has = (r: typeof byKey) => (r.Uploads ?? []).some((u) => u.UploadId === cr.UploadId);
        return has(byPrefix) ? 'yes' : has(byKey) ? 'no (only with the exact key as prefix)' : 'no (not even by exact key)';
      } finally {
        await t.c.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: key, UploadId: cr.UploadId }));
      }
    },
  },
  {
    row: "stream PUT with the SDK's defaults (aws-chunked, trailing CRC32)",
    run: async (t) => {
      const body = randomBytes(300_000);
      const key = t.key('aws-chunked');
      const r = await outcome(t.sdkDefault.send(new PutObjectCommand({ Bucket: t.bucket, Key: key, Body: Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]), ContentLength: body.length })));
      if (r !== 'accepted') return r;
      const got = await getBytes(t, key);
      return got.equals(body) ? `accepted, bytes intact; HEAD: ${await headChecksums(t, key)}` : `accepted, STORED ${got.length} bytes for ${body.length} (framing kept?)`;
    },
  },
  {
    row: 'PUT with a wrong Content-MD5',
    run: async (t) => {
      const body = randomBytes(1000);
      const bad = md5(body);
      bad[0]! ^= 1;
      return await outcome(t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: t.key('md5-bad'), Body: body, ContentMD5: bad.toString('base64') })));
    },
  },
  {
    row: 'UploadPart with a wrong Content-MD5',
    run: async (t) => {
      return await outcome(
        multipart(t, t.key('md5-part-bad'), twoParts(), {
          algorithm: false,
          contentMd5: (i, p) => {
            const m = md5(p);
            if (i === 1) m[0]! ^= 1;
            return m.toString('base64');
          },
        }),
      );
    },
  },
  {
    row: 'ETag of a single PUT is hex MD5 of the body',
    run: async (t) => {
      const body = randomBytes(1000);
      const r = await t.c.send(new PutObjectCommand({ Bucket: t.bucket, Key: t.key('etag-single'), Body: body }));
      return r.ETag === `"${md5(body).toString('hex')}"` ? 'yes' : `no: ${r.ETag}`;
    },
  },
  {
    row: 'ETag of a multipart upload is MD5(part MD5s)-N',
    run: async (t) => {
      const parts = twoParts();
      const key = t.key('etag-multi');
      await multipart(t, key, parts, { algorithm: false });
      const h = await t.c.send(new HeadObjectCommand({ Bucket: t.bucket, Key: key }));
      const want = `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-${parts.length}"`;
      return h.ETag === want ? 'yes' : `no: ${h.ETag}`;
    },
  },
];

export async function probeStore(target: ProbeTarget): Promise<Record<string, string>> {
  const base = { endpoint: target.endpoint, region: target.region, forcePathStyle: true, credentials: target.credentials, maxAttempts: 1 };
  const c = new S3Client({ ...base, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  const sdkDefault = new S3Client(base);
  const run = randomBytes(4).toString('hex');
  const ctx: Ctx = { c, sdkDefault, bucket: target.bucket, key: (w) => `cairn-probe-${run}/${w}` };
  const out: Record<string, string> = {};
  try {
    for (const p of PROBES) {
      try {
        out[p.row] = await p.run(ctx);
      } catch (e) {
        out[p.row] = `error: ${errName(e)}`;
      }
    }
  } finally {
    c.destroy();
    sdkDefault.destroy();
  }
  return out;
}

export function markdownTable(results: Record<string, Record<string, string>>): string {
  const names = Object.keys(results);
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const lines = [`| probe | ${names.join(' | ')} |`, `| --- | ${names.map(() => '---').join(' | ')} |`];
  for (const p of PROBES) lines.push(`| ${esc(p.row)} | ${names.map((n) => esc(results[n]![p.row] ?? '')).join(' | ')} |`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  const results: Record<string, Record<string, string>> = {};
  const ei = args.indexOf('--endpoint');
  if (ei >= 0) {
    const bucket = args[args.indexOf('--bucket') + 1];
    if (!bucket || args.indexOf('--bucket') < 0) throw new Error('--endpoint needs --bucket');
    results[args[ei + 1]!] = await probeStore({
      name: args[ei + 1]!,
      endpoint: args[ei + 1]!,
      region: process.env.AWS_REGION ?? 'us-east-1',
      bucket,
      credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '' },
    });
  } else {
    const kinds = (args.length ? args : ['minio', 'localstack', 'moto', 'seaweedfs']) as S3ServerKind[];
    for (const kind of kinds) {
      if (!s3ServerInstalled(kind)) {
        process.stderr.write(`${kind}: not installed (scripts/install-s3-servers.sh ${kind})\n`);
        continue;
      }
      const server = await startS3Server(kind);
      try {
        results[`${kind} ${server!.version}`] = await probeStore({ name: kind, ...server!, credentials: { accessKeyId: server!.accessKeyId, secretAccessKey: server!.secretAccessKey } });
      } finally {
        await server!.stop();
      }
    }
  }
  process.stdout.write(json ? `${JSON.stringify(results, null, 2)}\n` : `${markdownTable(results)}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
