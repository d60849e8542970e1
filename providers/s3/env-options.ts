// S3 options a command-line user sets through the environment (or .env), as rclone's
// RCLONE_S3_* do: the --backup-dir URL names a place, not how to write there.
import type { StorageClass } from '@aws-sdk/client-s3';
import { invalidArgument } from '../../src/errors.ts';
import { envValue } from '../../src/env-var.ts';
import type { S3EnvOptions } from './index.ts';

// Classes whose objects cannot be read back without a restore request: cairn reads what it writes
// (after every write, and on restore), so they would make every backup unusable.
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export const S3_ENV_VARS = {
  storageClass: 'CAIRN_S3_STORAGE_CLASS',
  sse: 'CAIRN_S3_SSE',
  kmsKeyId: 'CAIRN_S3_SSE_KMS_KEY_ID',
  partSize: 'CAIRN_S3_PART_SIZE',
  concurrency: 'CAIRN_S3_CONCURRENCY',
} as const;

/** A byte count: digits, optionally followed by KiB, MiB or GiB. */
export function parseByteSize(v: string, what: string): number {
  const m = /^\s*([0-9]+)\s*(KiB|MiB|GiB)?\s*$/i.exec(v);
  if (!m) throw invalidArgument(`${what}=${JSON.stringify(v)}: expected a byte count such as 16777216 or 16MiB`);
  const unit = { kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3EnvOptions {
  const o: S3EnvOptions = {};
  const get = (k: string) => envValue(env, k);
  const sc = get(S3_ENV_VARS.storageClass);
  if (sc !== undefined) {
    if (!/^[A-Z_]+$/.test(sc)) throw invalidArgument(`${S3_ENV_VARS.storageClass}=${JSON.stringify(sc)}: expected an S3 storage class such as STANDARD_IA`);
    if (ARCHIVE_CLASSES.has(sc)) throw invalidArgument(`${S3_ENV_VARS.storageClass}=${sc}: archived objects cannot be read back without a restore request; use STANDARD_IA, GLACIER_IR or a lifecycle rule`);
    o.storageClass = sc as StorageClass;
  }
  const sse = get(S3_ENV_VARS.sse);
  if (sse !== undefined) {
    if (sse !== 'AES256' && sse !== 'aws:kms') throw invalidArgument(`${S3_ENV_VARS.sse}=${JSON.stringify(sse)}: expected AES256 or aws:kms`);
    o.sse = sse;
  }
  const kms = get(S3_ENV_VARS.kmsKeyId);
  if (kms !== undefined) o.kmsKeyId = kms;
  const ps = get(S3_ENV_VARS.partSize);
  if (ps !== undefined) o.partSize = parseByteSize(ps, S3_ENV_VARS.partSize);
  const c = get(S3_ENV_VARS.concurrency);
  if (c !== undefined) {
    if (!/^[1-9][0-9]*$/.test(c)) throw invalidArgument(`${S3_ENV_VARS.concurrency}=${JSON.stringify(c)}: expected a positive whole number`);
    o.concurrency = Number(c);
  }
  return o;
}
