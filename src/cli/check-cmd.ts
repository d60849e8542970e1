// `cairn check`: can cairn work in this backup directory, and how. It tries what cairn's commands
// do there (list, write, read back, delete) with a small file under probe/, then asks the env what
// the store supports (S3: the probe's findings and the write path chosen; others: their
// capabilities). Exit 0 only when every access works.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BackupEnv, StoreDescription } from '../env.ts';
import { CairnError, isCairnError } from '../errors.ts';
import { EXIT, exitCodeFor, printResult } from './output.ts';
import type { CommandContext, CommandResult } from './commands.ts';

type Access = 'list' | 'write' | 'read' | 'delete';
interface AccessResult {
  ok: boolean;
  code?: string;
  error?: string;
}

async function tryAccess(fn: () => Promise<void>): Promise<AccessResult & { failure?: unknown }> {
  try {
    await fn();
    return { ok: true };
  } catch (e) {
    if (isCairnError(e, 'Aborted')) throw e;
    return { ok: false, code: isCairnError(e) ? e.code : 'Error', error: e instanceof Error ? e.message : String(e), failure: e };
  }
}

/** What a store without describeStore() does, from its declared capabilities (local disk, GCS). */
function fromCapabilities(env: BackupEnv): StoreDescription {
  const c = env.capabilities;
  return {
    writePath: c.serverChecksum ? 'the store checks and keeps the CRC32C cairn computes for every file' : 'cairn computes the CRC32C of every file it writes and checks it on restore and verify --checksum',
    features: [
      {
        feature: 'stored CRC32C',
        store: c.serverChecksum ? 'kept for every object' : 'none (a file system)',
        cairn: c.serverChecksum ? 'verify --server-checksum compares it without downloading' : 'verify --checksum reads the files',
        ok: true,
      },
      {
        feature: 'create-only writes',
        store: c.atomicCreateOnly ? 'atomic' : 'not atomic',
        cairn: c.atomicCreateOnly ? 'an existing backup is never replaced' : 'a HEAD first, under the writer lock',
        ok: c.atomicCreateOnly,
      },
    ],
  };
}

export async function runCheck(ctx: CommandContext): Promise<CommandResult> {
  const { signal } = ctx;
  const env = await ctx.openEnv();
  const name = `probe/check-${hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const body = randomBytes(64);
  const access: Record<Access, AccessResult & { failure?: unknown }> = {} as never;
  access.list = await tryAccess(async () => {
    for await (const _ of env.list('', { signal })) break;
  });
  access.write = await tryAccess(async () => {
    await env.write(name, [body], { size: body.length, signal });
  });
  access.read = access.write.ok
    ? await tryAccess(async () => {
        const got: Buffer[] = [];
        for await (const c of await env.openRead(name, { signal })) got.push(Buffer.from(c));
        if (!Buffer.concat(got).equals(body)) throw new CairnError('Corruption', `${env.url}: ${name} read back differs from what was written`);
      })
    : { ok: false, code: 'NotTried', error: 'nothing to read: the write failed' };
  access.delete = access.write.ok
    ? await tryAccess(async () => {
        await env.delete([name], { signal });
        if ((await env.stat(name, { signal })) !== undefined) throw new CairnError('IOError', `${env.url}: ${name} is still there after its deletion`);
      })
    : { ok: false, code: 'NotTried', error: 'nothing to delete: the write failed' };

  let store: StoreDescription | undefined;
  let storeError: (AccessResult & { failure?: unknown }) | undefined;
  if (access.write.ok) {
    storeError = await tryAccess(async () => {
      store = env.describeStore ? await env.describeStore({ signal }) : fromCapabilities(env);
    });
    if (storeError.ok) storeError = undefined;
  }
  const failures = [...Object.values(access), ...(storeError ? [storeError] : [])].filter((a) => !a.ok && a.code !== 'NotTried');
  const usable = failures.length === 0;
  const code = usable ? EXIT.ok : Math.max(...failures.map((f) => exitCodeFor(f.failure)));

  const strip = (a: AccessResult & { failure?: unknown }): AccessResult => ({ ok: a.ok, ...(a.code ? { code: a.code } : {}), ...(a.error ? { error: a.error } : {}) });
  const json = {
    url: env.url,
    usable,
    access: Object.fromEntries(Object.entries(access).map(([k, v]) => [k, strip(v)])),
    ...(store ? { writePath: store.writePath, store: store.features } : {}),
    ...(storeError ? { storeError: strip(storeError) } : {}),
  };
  const lines = [`${env.url}`, 'access under the prefix:'];
  for (const [k, v] of Object.entries(access)) lines.push(`  ${k.padEnd(7)} ${v.ok ? 'ok' : `FAILED: ${v.error}`}`);
  if (store) {
    const w = Math.max(...store.features.map((x) => x.feature.length));
    const sw = Math.max(...store.features.map((x) => x.store.length));
    lines.push('store:', `  ${'feature'.padEnd(w)}  ${'store'.padEnd(sw)}  cairn`);
    for (const x of store.features) lines.push(`${x.ok ? ' ' : '!'} ${x.feature.padEnd(w)}  ${x.store.padEnd(sw)}  ${x.cairn}`);
    lines.push(`write path: ${store.writePath}`);
  }
  if (storeError) lines.push(`store: could not be examined: ${storeError.error}`);
  lines.push(usable ? 'cairn can work here.' : 'cairn cannot work here: see the failures above.');
  // The report is the point of the command: printed on failure too.
  printResult(ctx, json, lines.join('\n'), usable ? EXIT.ok : EXIT.error);
  return { code, stats: {} };
}
