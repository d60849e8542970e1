// Targets for the resumed-after-SIGKILL suite (resume-kill-suite.ts): local disk, an S3 server of
// the test matrix (s3-servers.ts), fake-gcs-server. A server that is not installed makes the
// suite skip, or fail under CI.
import { describe } from 'node:test';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { LocalEnv } from '../../providers/local/index.ts';
import { S3Env } from '../../providers/s3/index.ts';
import { GcsEnv } from '../../providers/gcs/index.ts';
import { requireOrSkip } from './servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3ServerKind } from './s3-servers.ts';
import { GCS_SERVER_BIN, startGcsServer } from './gcs-server.ts';
import { existsSync } from 'node:fs';
import { runResumeKillSuite, type KillTarget } from './resume-kill-suite.ts';

export function resumeKillLocal(): void {
  runResumeKillSuite('local', async () => {
    const base = await fsp.mkdtemp(path.join(tmpdir(), 'cairn-resume-kill-bk-'));
    const target: KillTarget = {
      label: 'local', url: (sub) => path.join(base, sub), vars: {}, countsRequests: false,
      openEnv: async (sub) => new LocalEnv(path.join(base, sub)),
    };
    return { target, stop: () => fsp.rm(base, { recursive: true, force: true }) };
  });
}

export function resumeKillS3(kind: S3ServerKind): void {
  const skip = requireOrSkip(s3ServerInstalled(kind), `${kind} (scripts/install-s3-servers.sh)`);
  describe(kind, { skip: skip ?? false }, () => {
    runResumeKillSuite(kind, async () => {
      const s = await startS3Server(kind);
      if (!s) throw new Error(`${kind} is not installed`);
      const credentials = { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey };
      const target: KillTarget = {
        label: kind,
        url: (sub) => `s3://${s.bucket}/${sub}`,
        vars: { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: s.region },
        countsRequests: true,
        openEnv: async (sub) => new S3Env(`s3://${s.bucket}/${sub}`, { endpoint: s.endpoint, region: s.region, credentials }),
      };
      return { target, stop: () => s.stop() };
    });
  });
}

export function resumeKillGcs(): void {
  const skip = requireOrSkip(existsSync(GCS_SERVER_BIN), 'fake-gcs-server (scripts/install-gcs-server.sh)');
  describe('fake-gcs-server', { skip: skip ?? false }, () => {
    runResumeKillSuite('gcs', async () => {
      const s = await startGcsServer();
      if (!s) throw new Error('fake-gcs-server is not installed');
      const target: KillTarget = {
        label: 'gcs',
        url: (sub) => `gs://${s.bucket}/${sub}`,
        vars: { CAIRN_GCS_ENDPOINT: s.endpoint },
        countsRequests: true,
        openEnv: async (sub) => new GcsEnv(`gs://${s.bucket}/${sub}`, { apiEndpoint: s.endpoint, projectId: s.projectId }),
      };
      return { target, stop: () => s.stop() };
    });
  });
}
