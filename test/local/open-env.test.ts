// The provider registry behind openBackupEnv: schemes to lazily loaded providers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openBackupEnv, registerProvider, registeredSchemes, schemeOf } from '../../src/open-env.ts';
import { registerBuiltinProviders } from '../../providers/builtin.ts';
import { LocalEnv } from '../../providers/local/index.ts';
import type { BackupEnv } from '../../src/env.ts';
import { isCairnError } from '../../src/errors.ts';

describe('provider registry', () => {
  it('finds the scheme of a location; a plain path is file', () => {
    assert.deepEqual(['s3://b/p', 'GS://b', '/var/backups', 'rel/dir', 'file:///x'].map(schemeOf), ['s3', 'gs', 'file', 'file', 'file']);
  });

  it('loads a provider once, on first use; a failed load is tried again', async () => {
    let loads = 0;
    let fail = true;
    registerProvider('memtest', async () => {
      loads++;
      if (fail) throw new Error('module missing');
      return async (location) => ({ url: location }) as unknown as BackupEnv;
    });
    assert.equal(loads, 0, 'nothing loaded at registration');
    await assert.rejects(openBackupEnv('memtest://a'), /module missing/);
    fail = false;
    assert.equal((await openBackupEnv('memtest://a')).url, 'memtest://a');
    assert.equal((await openBackupEnv('memtest://b')).url, 'memtest://b');
    assert.equal(loads, 2);
  });

  it('refuses an unknown scheme and an empty location, naming what it knows', async () => {
    registerBuiltinProviders();
    assert.ok(['file', 'gs', 's3'].every((s) => registeredSchemes().includes(s)));
    await assert.rejects(openBackupEnv('ftp://host/dir'), (e) => isCairnError(e, 'InvalidArgument') && /use a path, file:\/\/.*s3:\/\//.test((e as Error).message));
    await assert.rejects(openBackupEnv(''), (e) => isCairnError(e, 'InvalidArgument'));
  });

  it('the built-in file provider opens a path or a file:// URL as a local env', async () => {
    registerBuiltinProviders();
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-registry-'));
    try {
      for (const location of [dir, pathToFileURL(dir).href]) {
        const env = await openBackupEnv(location);
        assert.ok(env instanceof LocalEnv, location);
        assert.equal(env.url, dir);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
