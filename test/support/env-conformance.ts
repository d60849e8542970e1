// The contract every BackupEnv must meet, run against each provider and each server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { BackupEnv } from '../../src/env.ts';
import { crc32c } from '../../src/crc32c.ts';
import { isCairnError } from '../../src/errors.ts';
import { readParallelRanges } from '../../src/io/parallel-ranges.ts';

export interface EnvHandle {
  env: BackupEnv;
  cleanup(): Promise<void>;
}
export type MakeEnv = () => Promise<EnvHandle>;

export async function readAll(env: BackupEnv, name: string, opts?: { offset?: number; length?: number }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await env.openRead(name, opts)) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** Reads as a restore does (each chunk used before the next is asked for: reused buffers allowed), with the chunk sizes. */
export async function readReusing(env: BackupEnv, name: string, opts: { offset?: number; length?: number; signal?: AbortSignal } = {}): Promise<{ bytes: Buffer; sizes: number[] }> {
  const parts: Buffer[] = [];
  const sizes: number[] = [];
  for await (const c of await env.openRead(name, { ...opts, reuseBuffers: true })) {
    parts.push(Buffer.from(c));
    sizes.push(c.length);
  }
  return { bytes: Buffer.concat(parts), sizes };
}

export async function listAll(env: BackupEnv, prefix: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const f of env.list(prefix)) m.set(f.name, f.size);
  return m;
}

/** Yields `data` in chunks of `size` bytes, as a file stream would. */
export async function* chunked(data: Buffer, size = 64 * 1024): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function* failingAfter(data: Buffer, err: Error): AsyncIterable<Buffer> {
  yield data;
  throw err;
}

export interface ConformanceOptions {
  largeSize?: number;
  /** Entries per listing request of the env under test (object stores; default 1000). */
  listPageSize?: number;
}

const isAborted = (e: unknown) => isCairnError(e, 'Aborted');

/** The CRC32C serverChecksum() answers: none where the store keeps none (serverChecksumGaps, S3's compatible path). */
const storedCrc = (env: BackupEnv, data: Buffer) => (env.capabilities.serverChecksumGaps === undefined ? crc32c(data) : undefined);

/** Requests counted between two snapshots, verbs that did not change left out. */
function countsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [verb, n] of Object.entries(after)) if (n !== (before[verb] ?? 0)) d[verb] = n - (before[verb] ?? 0);
  return d;
}

export function runEnvConformance(label: string, makeEnv: MakeEnv, opts: ConformanceOptions = {}): void {
  describe(`BackupEnv conformance: ${label}`, () => {
    let h: EnvHandle;
    let env: BackupEnv;
    before(async () => {
      h = await makeEnv();
      env = h.env;
    });
    after(async () => {
      await h?.env.close();
      await h?.cleanup();
    });

    it('writes, stats, lists and reads back the same bytes with their crc32c', async () => {
      const data = randomBytes(300_000);
      const res = await env.write('shared_checksum/000001_s1_300000.sst', chunked(data), { size: data.length });
      assert.equal(res.size, data.length);
      assert.equal(res.crc32c, crc32c(data));
      assert.deepEqual(await env.stat('shared_checksum/000001_s1_300000.sst'), { name: 'shared_checksum/000001_s1_300000.sst', size: data.length });
      assert.ok((await readAll(env, 'shared_checksum/000001_s1_300000.sst')).equals(data));
    });

    it('writes an empty file', async () => {
      const res = await env.write('private/1/EMPTY', chunked(Buffer.alloc(0)));
      assert.deepEqual(res, { size: 0, crc32c: 0 });
      assert.equal((await env.stat('private/1/EMPTY'))?.size, 0);
      assert.equal((await readAll(env, 'private/1/EMPTY')).length, 0);
    });

    it('replaces an existing file whole', async () => {
      await env.write('meta/replace', chunked(Buffer.from('first version, longer')));
      await env.write('meta/replace', chunked(Buffer.from('second')));
      assert.equal((await readAll(env, 'meta/replace')).toString(), 'second');
    });

    it('createOnly refuses to replace and keeps the original', async () => {
      await env.write('meta/7', chunked(Buffer.from('original')), { createOnly: true });
      await assert.rejects(env.write('meta/7', chunked(Buffer.from('intruder')), { createOnly: true }), (e) => isCairnError(e, 'AlreadyExists'));
      assert.equal((await readAll(env, 'meta/7')).toString(), 'original');
    });

    it('a crc32c mismatch publishes nothing', async () => {
      const data = randomBytes(10_000);
      await assert.rejects(
        env.write('shared_checksum/bad.sst', chunked(data), { expectedCrc32c: (crc32c(data) ^ 1) >>> 0 }),
        (e) => isCairnError(e, 'Corruption'),
      );
      assert.equal(await env.stat('shared_checksum/bad.sst'), undefined);
    });

    it('a source that delivers another size than declared publishes nothing', async () => {
      const data = randomBytes(20_000);
      for (const size of [19_999, 20_001]) {
        await assert.rejects(env.write('shared_checksum/resized.sst', chunked(data), { size }), (e) => isCairnError(e, 'Corruption'), String(size));
        assert.equal(await env.stat('shared_checksum/resized.sst'), undefined);
      }
    });

    it('a source that fails midway publishes nothing and leaves no visible leftovers', async () => {
      await assert.rejects(env.write('shared_checksum/torn.sst', failingAfter(randomBytes(1000), new Error('disk read failed'))));
      assert.equal(await env.stat('shared_checksum/torn.sst'), undefined);
      const names = [...(await listAll(env, 'shared_checksum/torn'))].map(([n]) => n);
      assert.deepEqual(names, []);
    });

    it('an aborted write publishes nothing', async () => {
      const ac = new AbortController();
      async function* slow() {
        yield randomBytes(1000);
        ac.abort();
        yield randomBytes(1000);
      }
      await assert.rejects(env.write('private/2/ABORTED', slow(), { signal: ac.signal }));
      assert.equal(await env.stat('private/2/ABORTED'), undefined);
    });

    it('reads ranges', async () => {
      const data = randomBytes(100_000);
      await env.write('private/1/RANGE', chunked(data));
      assert.ok((await readAll(env, 'private/1/RANGE', { offset: 1000, length: 5000 })).equals(data.subarray(1000, 6000)));
      assert.ok((await readAll(env, 'private/1/RANGE', { offset: 99_000 })).equals(data.subarray(99_000)));
    });

    it('missing files: stat undefined, read NotFound', async () => {
      assert.equal(await env.stat('meta/404'), undefined);
      await assert.rejects(env.openRead('meta/404'), (e) => isCairnError(e, 'NotFound'));
    });

    it('lists recursively by prefix, with sizes, without prefix look-alikes', async () => {
      await env.write('list/a/1', chunked(Buffer.alloc(1, 1)));
      await env.write('list/a/sub/2', chunked(Buffer.alloc(2, 2)));
      await env.write('list/ab', chunked(Buffer.alloc(3, 3)));
      assert.deepEqual(await listAll(env, 'list/a/'), new Map([['list/a/1', 1], ['list/a/sub/2', 2]]));
      assert.deepEqual(await listAll(env, 'list/'), new Map([['list/a/1', 1], ['list/a/sub/2', 2], ['list/ab', 3]]));
      assert.deepEqual(await listAll(env, 'nothing-here/'), new Map());
    });

    it('deletes in batches, ignoring missing files', async () => {
      await env.write('del/1', chunked(Buffer.from('x')));
      await env.write('del/2', chunked(Buffer.from('y')));
      await env.delete(['del/1', 'del/2', 'del/never-existed']);
      assert.deepEqual(await listAll(env, 'del/'), new Map());
    });

    it('refuses names that escape the root', async () => {
      for (const bad of ['../escape', 'a/../../b', '/abs', 'a//b', '']) {
        await assert.rejects(env.write(bad, chunked(Buffer.from('x'))), (e) => isCairnError(e, 'InvalidArgument'), bad);
      }
    });

    it('streams a large file with the right crc32c', async () => {
      const size = opts.largeSize ?? 12 * 1024 * 1024 + 123;
      const data = randomBytes(size);
      const res = await env.write('shared_checksum/large.sst', chunked(data, 1 << 20), { size });
      assert.equal(res.crc32c, crc32c(data));
      assert.equal((await env.stat('shared_checksum/large.sst'))?.size, size);
      if (env.capabilities.serverChecksum) {
        assert.deepEqual(await env.serverChecksum!('shared_checksum/large.sst'), { size: data.length, crc32c: storedCrc(env, data) });
      }
      const back = await readAll(env, 'shared_checksum/large.sst');
      assert.equal(crc32c(back), crc32c(data));
    });

    it('several files at once, of one part, parts + a tail and exact parts; with writeRetainsNoChunk, from reused chunks', async () => {
      // With writeRetainsNoChunk each source scribbles over its one buffer as soon as write()
      // moves on: any chunk kept and read later would store garbage, and so would a part buffer
      // handed out again too early. Other providers get a fresh buffer per chunk.
      const reuse = env.capabilities.writeRetainsNoChunk === true;
      const part = env.capabilities.preferredChunkSize ?? 1 << 20;
      const sizes = [100_000, 2 * part + 12_345, 3 * part];
      const datas = sizes.map((n) => randomBytes(n));
      const source = async function* (data: Buffer, size: number) {
        let buf = Buffer.alloc(size);
        for (let i = 0; i < data.length; i += size) {
          const n = data.copy(buf, 0, i, Math.min(i + size, data.length));
          yield buf.subarray(0, n);
          if (reuse) buf.fill(0xee);
          else buf = Buffer.alloc(size);
        }
      };
      for (let round = 0; round < 2; round++) {
        await Promise.all(datas.map((d, i) => env.write(`shared_checksum/reuse-${round}-${i}.sst`, source(d, i === 1 ? part : 777_777), { size: d.length })));
        for (const [i, d] of datas.entries()) assert.ok((await readAll(env, `shared_checksum/reuse-${round}-${i}.sst`)).equals(d), `round ${round}, file ${i}`);
      }
    });

    // What each capability flag and optional method promises (a provider without one is held to
    // not claiming it).

    it('listsChecksums: every listed entry carries the crc32c of its bytes (and only then)', async () => {
      const datas = [randomBytes(1), randomBytes(5000), Buffer.alloc(0)];
      for (const [i, d] of datas.entries()) await env.write(`sums/${i}`, chunked(d));
      const listed = [];
      for await (const f of env.list('sums/')) listed.push(f);
      assert.equal(listed.length, datas.length);
      for (const f of listed) {
        const d = datas[Number(f.name.slice('sums/'.length))]!;
        assert.equal(f.size, d.length, f.name);
        assert.equal(f.crc32c, env.capabilities.listsChecksums ? crc32c(d) : undefined, f.name);
      }
    });

    it('parallelRanges: ranges read at and across part boundaries give the same bytes and crc32c', async () => {
      const part = env.capabilities.parallelRanges?.partSize ?? 64 * 1024;
      const concurrency = env.capabilities.parallelRanges?.concurrency ?? 2;
      const data = randomBytes(2 * part + 123);
      await env.write('ranges/f', chunked(data, 256 * 1024), { size: data.length });
      for (const [offset, length] of [[0, part], [part - 1, 2], [part, part], [2 * part, 123], [2 * part + 122, 1], [part - 5, part + 10]] as const) {
        assert.ok((await readAll(env, 'ranges/f', { offset, length })).equals(data.subarray(offset, offset + length)), `${offset}+${length}`);
      }
      const out = Buffer.alloc(data.length);
      const crc = await readParallelRanges(
        (offset, length, signal) => env.openRead('ranges/f', { offset, length, signal }),
        () => ({ chunk: (pos, c) => void out.set(c, pos) }),
        { name: 'ranges/f', size: data.length, partSize: part, concurrency },
      );
      assert.equal(crc, crc32c(data));
      assert.ok(out.equals(data));
    });

    it('a read at or past the end is empty, with or without a length; of a missing file NotFound', async () => {
      const data = randomBytes(1000);
      await env.write('ranges/end', chunked(data));
      for (const [offset, length] of [[1000, undefined], [1000, 10], [1500, undefined], [1500, 1], [999, 50]] as const) {
        const want = data.subarray(offset, length === undefined ? undefined : offset + length);
        assert.ok((await readAll(env, 'ranges/end', { offset, ...(length === undefined ? {} : { length }) })).equals(want), `${offset}+${length}`);
      }
      await assert.rejects(env.openRead('ranges/missing', { offset: 1000 }), (e) => isCairnError(e, 'NotFound'));
    });

    it('serverChecksum: size and crc32c without a download; NotFound for a missing file', async () => {
      assert.equal(env.capabilities.serverChecksum, typeof env.serverChecksum === 'function');
      if (!env.serverChecksum) return;
      const data = randomBytes(3000);
      await env.write('sums/server', chunked(data));
      assert.deepEqual(await env.serverChecksum('sums/server'), { size: data.length, crc32c: storedCrc(env, data) });
      await assert.rejects(env.serverChecksum('sums/missing'), (e) => isCairnError(e, 'NotFound'));
    });

    it('cleanupIncomplete: after a failed write nothing is visible, and a second call finds nothing', async () => {
      if (!env.cleanupIncomplete) return;
      const big = randomBytes((env.capabilities.preferredChunkSize ?? 1 << 20) + 1000);
      await assert.rejects(env.write('leftover/big', failingAfter(big, new Error('source failed'))));
      const first = await env.cleanupIncomplete();
      assert.ok(Number.isSafeInteger(first) && first >= 0, String(first));
      assert.equal(await env.cleanupIncomplete(), 0);
      assert.deepEqual(await listAll(env, 'leftover/'), new Map());
    });

    it('an aborted signal stops list, stat and delete before they act', async () => {
      await env.write('abort/keep', chunked(Buffer.from('kept')));
      const aborted = AbortSignal.abort(new Error('stop'));
      await assert.rejects((async () => {
        for await (const _ of env.list('abort/', { signal: aborted })) assert.fail('listed after the abort');
      })(), isAborted);
      await assert.rejects(env.stat('abort/keep', { signal: aborted }), isAborted);
      await assert.rejects(env.delete(['abort/keep'], { signal: aborted }), isAborted);
      assert.equal((await readAll(env, 'abort/keep')).toString(), 'kept');
    });

    it('requestCounts: a listing costs one LIST per page, a stat one HEAD', async () => {
      if (!env.requestCounts) return;
      for (let i = 0; i < 3; i++) await env.write(`counted/${i}`, chunked(Buffer.from([i])));
      const c0 = env.requestCounts();
      assert.equal((await listAll(env, 'counted/')).size, 3);
      const c1 = env.requestCounts();
      assert.deepEqual(countsSince(c0, c1), { LIST: Math.ceil(3 / (opts.listPageSize ?? 1000)) });
      assert.equal((await env.stat('counted/1'))?.size, 1);
      assert.deepEqual(countsSince(c1, env.requestCounts()), { HEAD: 1 });
    });
  });
}
