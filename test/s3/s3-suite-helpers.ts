// Helpers of the S3 provider tests (s3-suite.ts and its parts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { S3Env } from '../../providers/s3/index.ts';
import { CairnError, type ErrorCode } from '../../src/errors.ts';
import type { it as nodeIt } from 'node:test';

export const MiB = 1024 * 1024;

/** Registers nothing: a test for a feature this server lacks (its gap is pinned by another test). */
export const notHere = ((..._args: unknown[]) => undefined) as unknown as typeof nodeIt;

/** Yields `data` in chunks of `size` bytes, as a file stream would. */
export async function* chunks(data: Buffer, size = 256 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

export async function readAll(env: S3Env, name: string, opts?: { offset?: number; length?: number }): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of await env.openRead(name, opts)) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

export async function listNames(env: S3Env, prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const f of env.list(prefix)) names.push(f.name);
  return names.sort();
}

/**
 * Keys with an open multipart upload: those under `prefix`, and (MinIO lists uploads only for an
 * exact key, not by prefix) those of `names` asked for one by one.
 */
export async function openUploads(env: S3Env, ...names: string[]): Promise<string[]> {
  const found = new Set<string>();
  for (const p of [env.prefix, ...names.map((n) => env.prefix + n)]) {
    const r = await env.client.send(new ListMultipartUploadsCommand({ Bucket: env.bucket, Prefix: p }));
    for (const u of r.Uploads ?? []) if (u.Key !== undefined) found.add(u.Key);
  }
  return [...found].sort();
}

export function assertCairn(code: ErrorCode, ...mustContain: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof CairnError, `expected a CairnError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    for (const s of mustContain) assert.ok(e.message.includes(s), `message should mention ${s}: ${e.message}`);
    return true;
  };
}

let prefixCounter = 0;
export const uniquePrefix = (what: string) => `t${++prefixCounter}-${what}-${randomBytes(3).toString('hex')}`;
