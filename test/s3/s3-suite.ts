// S3-specific tests of providers/s3, run against real servers (no mocked client): checksum protocol,
// conditional writes, faults injected by a loopback proxy, aborts, orphaned uploads, error mapping,
// pagination. Each *.test.ts file in this directory runs it against one server kind.
// The tests are in s3-suite-writes.ts and s3-suite-errors.ts; this file registers them per server.
import { describe, it as nodeIt, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HeadObjectCommand, type HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { S3Env, type S3EnvOptions } from '../../providers/s3/index.ts';
import { requireOrSkip } from '../support/servers-common.ts';
import { s3ServerInstalled, startS3Server, type S3Server, type S3ServerKind } from '../support/s3-servers.ts';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../support/fault-proxy.ts';
import { runEnvConformance, type EnvHandle } from '../support/env-conformance.ts';
import { runEngineSuite } from '../support/engine-suite.ts';
import { KNOWN_FAILURES } from './known-failures.ts';
import { MiB, uniquePrefix } from './s3-suite-helpers.ts';
import { writeTests } from './s3-suite-writes.ts';
import { errorTests } from './s3-suite-errors.ts';

/**
 * `it`, except that a test listed in known-failures.ts for `kind` runs as an expected failure: it
 * must still fail there (nothing skips under CI), and a server that starts passing it is noticed.
 */
function itOn(kind: S3ServerKind, registered: Set<string>): typeof nodeIt {
  const known = KNOWN_FAILURES[kind] ?? {};
  return ((name: string, fn: () => Promise<void> | void) => {
    registered.add(name);
    if (known[name] === undefined) return nodeIt(name, fn);
    return nodeIt(`${name} — fails on ${kind} as known: ${known[name]}`, async () => {
      await assert.rejects(async () => fn(), `${name} now passes on ${kind}: remove it from known-failures.ts`);
    });
  }) as unknown as typeof nodeIt;
}

/**
 * What each server is known to do. A test that needs a feature runs on the servers that have it;
 * on the others a test pins the known gap instead, so nothing skips and an emulator that changes
 * is noticed.
 */
export interface ServerTraits {
  /** Recomputes x-amz-checksum-crc32c and refuses a mismatch (moto only echoes it). */
  validatesChecksums: boolean;
  /** Checks request signatures (LocalStack and moto accept any credentials). */
  validatesCredentials: boolean;
  /** A storage class other than STANDARD it accepts (MinIO knows only REDUCED_REDUNDANCY). */
  storageClass: string;
  /** Server-side encryption it applies (MinIO needs a KMS set up; LocalStack's S3 alone has no KMS). */
  sse: ('AES256' | 'aws:kms')[];
  /** Stores GLACIER objects and refuses to serve them (InvalidObjectState), as S3 does. */
  archives: boolean;
}

export const TRAITS: Record<S3ServerKind, ServerTraits> = {
  minio: { validatesChecksums: true, validatesCredentials: true, storageClass: 'REDUCED_REDUNDANCY', sse: [], archives: false },
  localstack: { validatesChecksums: true, validatesCredentials: false, storageClass: 'STANDARD_IA', sse: ['AES256'], archives: true },
  moto: { validatesChecksums: false, validatesCredentials: false, storageClass: 'STANDARD_IA', sse: ['AES256', 'aws:kms'], archives: true },
  seaweedfs: { validatesChecksums: true, validatesCredentials: true, storageClass: 'STANDARD_IA', sse: [], archives: false },
};

/** What the S3 tests of one server share. */
export interface S3Case {
  kind: S3ServerKind;
  traits: ServerTraits;
  /** `it`, with this server's known failures run as expected failures. */
  it: typeof nodeIt;
  /** The server (set once it runs). */
  server(): S3Server;
  /** An env on the server (CRC32C write path, 5 MiB parts), closed after the suite. */
  envFor(o?: S3EnvOptions & { prefix?: string; bucket?: string }): S3Env;
  /** Closed after the suite. */
  envs: S3Env[];
  /** An env behind a fault proxy with these rules. */
  proxied(rules: FaultRule[], o?: S3EnvOptions & { prefix?: string }): Promise<{ proxy: FaultProxy; env: S3Env }>;
  /** HeadObject with the stored checksum, behind cairn's back. */
  head(env: S3Env, name: string): Promise<HeadObjectCommandOutput>;
}

/**
 * Registers everything for one server kind: starts it in before(), stops it in after(), runs the
 * S3-specific tests, the BackupEnv conformance suite and the engine end-to-end suite on it.
 */
export function runS3ServerTests(kind: S3ServerKind, extra?: (getServer: () => S3Server) => void): void {
  const skip = requireOrSkip(s3ServerInstalled(kind), `${kind} (install it with: bash scripts/install-s3-servers.sh ${kind})`);
  describe(`S3 on ${kind}`, { skip: skip ?? false }, () => {
    let server: S3Server;
    before(async () => {
      const s = await startS3Server(kind);
      if (s === undefined) throw new Error(`${kind} is not installed`);
      server = s;
    });
    after(async () => {
      await server?.stop();
    });

    const makeEnv = async (): Promise<EnvHandle> => {
      const bucket = await server.createBucket();
      const env = new S3Env(`s3://${bucket}/cairn/backups`, {
        endpoint: server.endpoint,
        region: server.region,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
        partSize: 5 * MiB,
        // Small read ranges: files of 2 MiB and more are restored and verified in parallel ranges.
        readPartSize: MiB,
        readConcurrency: 3,
      });
      return { env, cleanup: async () => {} };
    };

    runS3Suite(kind, () => server);
    runEnvConformance(`s3 on ${kind}`, makeEnv);
    runEngineSuite(`s3 on ${kind}`, makeEnv);
    extra?.(() => server);
  });
}

export function runS3Suite(kind: S3ServerKind, getServer: () => S3Server): void {
  const registered = new Set<string>();
  const it = itOn(kind, registered);
  const traits = TRAITS[kind];
  describe(`S3 provider specifics on ${kind}`, () => {
    let server: S3Server;
    const proxies: FaultProxy[] = [];
    const envs: S3Env[] = [];
    before(() => {
      server = getServer();
    });
    after(async () => {
      await Promise.all(envs.map((e) => e.close()));
      await Promise.all(proxies.map((p) => p.stop()));
    });

    const envFor = (o: S3EnvOptions & { prefix?: string; bucket?: string } = {}): S3Env => {
      const { prefix, bucket, ...rest } = o;
      const env = new S3Env(`s3://${bucket ?? server.bucket}/${prefix ?? uniquePrefix('x')}`, {
        endpoint: server.endpoint,
        region: server.region,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
        partSize: 5 * MiB,
        maxAttempts: 5,
        // These tests pin the CRC32C protocol request by request; the probe and the compatible path
        // have their own tests (compatible-path.test.ts, check-cmd tests), and the conformance and
        // engine suites below run with the default ('auto').
        checksum: 'crc32c',
        ...rest,
      });
      envs.push(env);
      return env;
    };
    const proxied = async (rules: FaultRule[], o: S3EnvOptions & { prefix?: string } = {}) => {
      const proxy = await startFaultProxy({ target: server.endpoint, rules, lifetimeMs: 60_000 });
      proxies.push(proxy);
      return { proxy, env: envFor({ ...o, endpoint: proxy.endpoint }) };
    };
    const head = (env: S3Env, name: string) =>
      env.client.send(new HeadObjectCommand({ Bucket: env.bucket, Key: env.prefix + name, ChecksumMode: 'ENABLED' }));

    const c: S3Case = { kind, traits, it, server: () => server, envFor, envs, proxied, head };
    writeTests(c);
    errorTests(c);

    nodeIt('known-failures.ts names only tests that exist here', () => {
      assert.deepEqual(Object.keys(KNOWN_FAILURES[kind] ?? {}).filter((n) => !registered.has(n)), []);
    });
  });
}
