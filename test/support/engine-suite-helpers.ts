// Helpers of the engine suite (engine-suite.ts and its parts).
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { BackupEnv } from '../../src/env.ts';
import type { FakeDbSpec } from './fake-db.ts';

export const pad = (n: number) => String(n).padStart(6, '0');

/** Files of the fake DB that a backup must contain, name → bytes. */
export async function expectedFiles(dbDir: string, spec: FakeDbSpec): Promise<Map<string, Buffer>> {
  const names = [
    ...spec.tables.map((t) => `${pad(t.number)}.sst`),
    ...(spec.blobs ?? []).map((b) => `${pad(b.number)}.blob`),
    `MANIFEST-${pad(spec.manifestNumber)}`,
    'CURRENT',
    ...(spec.optionsNumber !== undefined ? [`OPTIONS-${pad(spec.optionsNumber)}`] : []),
    ...(spec.wals ?? []).filter((w) => w.number >= spec.logNumber).map((w) => `${pad(w.number)}.log`),
  ];
  const m = new Map<string, Buffer>();
  for (const n of names) m.set(n, await fsp.readFile(path.join(dbDir, n)));
  return m;
}

export async function dirContents(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const n of await fsp.readdir(dir)) {
    const st = await fsp.stat(path.join(dir, n));
    if (st.isFile()) m.set(n, await fsp.readFile(path.join(dir, n)));
  }
  return m;
}

export function assertSameFiles(actual: Map<string, Buffer>, expected: Map<string, Buffer>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: file names`);
  for (const [n, b] of expected) assert.ok(actual.get(n)!.equals(b), `${what}: ${n} differs`);
}

/** A view of an env under a sub-prefix, so tests share one server bucket without interfering. */
export function prefixed(env: BackupEnv, prefix: string): BackupEnv {
  const strip = (name: string) => name.slice(prefix.length);
  return {
    url: `${env.url}/${prefix}`,
    capabilities: env.capabilities,
    async *list(p, o) {
      for await (const f of env.list(prefix + p, o)) yield { ...f, name: strip(f.name) };
    },
    stat: async (name, o) => {
      const s = await env.stat(prefix + name, o);
      return s && { name, size: s.size };
    },
    openRead: (name, o) => env.openRead(prefix + name, o),
    write: (name, src, o) => env.write(prefix + name, src, o),
    delete: (names, o) => env.delete(names.map((x) => prefix + x), o),
    serverChecksum: env.serverChecksum && ((name, o) => env.serverChecksum!(prefix + name, o)),
    cleanupIncomplete: env.cleanupIncomplete && ((o) => env.cleanupIncomplete!(o)),
    temporaryTarget: env.temporaryTarget && ((name) => env.temporaryTarget!(name)),
    promoteTemporary: env.promoteTemporary && ((name, o) => env.promoteTemporary!(prefix + name, o)),
    prepare: env.prepare && ((o) => env.prepare!(o)),
    close: async () => {},
  };
}
