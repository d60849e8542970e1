// CAIRN_S3_* variables: how a command-line user sets S3 write options. No server needed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseByteSize, s3OptionsFromEnv } from '../../providers/s3/options.ts';
import { S3Env } from '../../providers/s3/index.ts';
import { isCairnError } from '../../src/errors.ts';

const bad = (name: RegExp) => (e: unknown) => isCairnError(e, 'InvalidArgument') && name.test((e as Error).message);

describe('S3 options from the environment', () => {
  it('reads every variable, ignores empty ones', () => {
    assert.deepEqual(
      s3OptionsFromEnv({ CAIRN_S3_STORAGE_CLASS: 'STANDARD_IA', CAIRN_S3_SSE: 'aws:kms', CAIRN_S3_SSE_KMS_KEY_ID: 'alias/backups', CAIRN_S3_PART_SIZE: '64MiB', CAIRN_S3_CONCURRENCY: '8' }),
      { storageClass: 'STANDARD_IA', sse: 'aws:kms', kmsKeyId: 'alias/backups', partSize: 64 * 1024 * 1024, concurrency: 8 },
    );
    assert.deepEqual(s3OptionsFromEnv({ CAIRN_S3_STORAGE_CLASS: '', CAIRN_S3_SSE: '  ' }), {});
    assert.equal(parseByteSize('16777216', 'X'), 16 * 1024 * 1024);
    assert.equal(parseByteSize('1 GiB', 'X'), 1024 ** 3);
  });

  it('refuses bad values, naming the variable', () => {
    assert.throws(() => s3OptionsFromEnv({ CAIRN_S3_STORAGE_CLASS: 'standard ia' }), bad(/CAIRN_S3_STORAGE_CLASS/));
    assert.throws(() => s3OptionsFromEnv({ CAIRN_S3_STORAGE_CLASS: 'DEEP_ARCHIVE' }), bad(/cannot be read back/));
    assert.throws(() => s3OptionsFromEnv({ CAIRN_S3_SSE: 'kms' }), bad(/CAIRN_S3_SSE.*AES256 or aws:kms/));
    assert.throws(() => s3OptionsFromEnv({ CAIRN_S3_PART_SIZE: '8MB' }), bad(/CAIRN_S3_PART_SIZE/));
    assert.throws(() => s3OptionsFromEnv({ CAIRN_S3_CONCURRENCY: '0' }), bad(/CAIRN_S3_CONCURRENCY/));
    // combinations the provider itself refuses
    assert.throws(() => new S3Env('s3://b/p', { ...s3OptionsFromEnv({ CAIRN_S3_PART_SIZE: '1MiB' }), region: 'us-east-1' }), bad(/partSize/));
    assert.throws(() => new S3Env('s3://b/p', { ...s3OptionsFromEnv({ CAIRN_S3_SSE_KMS_KEY_ID: 'k' }), region: 'us-east-1' }), bad(/kmsKeyId needs sse/));
  });
});
