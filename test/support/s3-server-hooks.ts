// Suite hooks around a test S3 server (apart from s3-servers.ts, which benches import too: they
// must not load node:test).
import { after, before } from 'node:test';
import { startS3Server, type S3Server, type S3ServerKind } from './s3-servers.ts';

/**
 * Starts a `kind` server before the enclosing suite's tests and stops it after them; the getter
 * returns it inside tests and hooks.
 */
export function useS3Server(kind: S3ServerKind): () => S3Server {
  let server: S3Server | undefined;
  before(async () => {
    server = await startS3Server(kind);
    if (server === undefined) throw new Error(`${kind} is not installed`);
  });
  after(async () => {
    await server?.stop();
  });
  return () => server!;
}
