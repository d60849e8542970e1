// Local-filesystem BackupEnv. Atomicity the RocksDB way: write a temporary file next to the
// target, fsync, then rename (or link, for create-only), so a crash leaves the old file or a
// `*.tmp` that garbage collection removes, never a torn file under a real name. A resumed backup
// may publish a temporary a killed run left complete (temporaryTarget, promoteTemporary).
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fillCapabilities, type BackupEnv, type WriteSource, type FileInfo, type ReadOptions, type WriteOptions, type WriteResult, type EnvCapabilities } from '../../src/env.ts';
import { CairnError, ioError, notFound, throwIfAborted } from '../../src/errors.ts';
import { assertSafeName } from '../../src/names.ts';
import { openFileChunks } from '../../src/io/file-chunks.ts';
import { writeAll } from '../../src/io/write-all.ts';
import { syncDir } from '../../src/io/sync-dir.ts';
import { WriteTally } from '../object-store/write-checks.ts';
import { testPoint } from '../../src/test-point.ts';

const TMP_SUFFIX = '.tmp';
/** `<final name>.<8 hex digits>.tmp`, as write() names its temporaries. */
const TEMPORARY = /^(.+)\.[0-9a-f]{8}\.tmp$/;

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function mapFsError(e: unknown, name: string, what: string): Error {
  if (e instanceof CairnError) return e;
  const code = errno(e);
  if (code === 'ENOENT') return notFound(`${what}: ${name} does not exist`, { file: name, cause: e });
  if (code === 'EACCES' || code === 'EPERM') return new CairnError('PermissionDenied', `${what}: permission denied on ${name}`, { file: name, cause: e });
  if (code === 'EROFS') return new CairnError('PermissionDenied', `${what} ${name}: the file system is read-only`, { file: name, cause: e });
  return ioError(`${what} ${name}: ${(e as Error).message}`, { file: name, cause: e });
}

/** Gives the file at `tmpPath` the name `finalPath` too, unless that exists (AlreadyExists naming `name`). */
async function linkNew(tmpPath: string, finalPath: string, name: string): Promise<void> {
  try {
    await fsp.link(tmpPath, finalPath);
  } catch (e) {
    if (errno(e) === 'EEXIST') throw new CairnError('AlreadyExists', `${name} already exists`, { file: name, cause: e });
    throw e;
  }
}

/** Files stat'ed in parallel while listing. */
const STAT_BATCH = 64;

export class LocalEnv implements BackupEnv {
  readonly root: string;
  readonly url: string;
  readonly capabilities: EnvCapabilities = fillCapabilities(this, { atomicCreateOnly: true, writeRetainsNoChunk: true });

  constructor(root: string) {
    this.root = path.resolve(root);
    this.url = this.root;
  }

  private abs(name: string): string {
    assertSafeName(name);
    return path.join(this.root, ...name.split('/'));
  }

  async *list(prefix: string, opts: { signal?: AbortSignal } = {}): AsyncIterable<FileInfo> {
    // Start the walk at the deepest directory the prefix names, so listing "private/3/" does
    // not read the whole tree.
    const slash = prefix.lastIndexOf('/');
    const startRel = slash >= 0 ? prefix.slice(0, slash) : '';
    const stack: string[] = [startRel];
    // Files are stat'ed a batch at a time, in parallel: one at a time, each stat's round trip
    // through libuv's thread pool left the main thread idle for most of a large listing.
    const statBatch = async (names: string[]): Promise<FileInfo[]> => (await Promise.all(names.map((n) => fsp.stat(path.join(this.root, n)).catch(() => undefined))))
      .flatMap((st, i) => (st ? [{ name: names[i], size: st.size, modified: st.mtimeMs }] : []));
    while (stack.length > 0) {
      throwIfAborted(opts.signal);
      const rel = stack.pop()!;
      // Streamed (opendir), not read whole (readdir): a shared_checksum/ of 400k files would
      // otherwise be 400k entry objects in memory at once.
      let entries;
      try {
        entries = await fsp.opendir(rel === '' ? this.root : path.join(this.root, rel), { bufferSize: 256 });
      } catch (e) {
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') {
          // A backup directory that is a regular file is a mistake to report, not an empty one.
          const root = await fsp.stat(this.root).catch(() => undefined);
          if (root && !root.isDirectory()) throw new CairnError('InvalidArgument', `${this.root} is a file, not a backup directory`, { cause: e });
          continue;
        }
        throw mapFsError(e, rel || '.', 'list');
      }
      let batch: string[] = [];
      for await (const ent of entries) {
        const name = rel === '' ? ent.name : `${rel}/${ent.name}`;
        if (ent.isDirectory()) {
          if (name.startsWith(prefix) || prefix.startsWith(name + '/')) stack.push(name);
        } else if (ent.isFile() && name.startsWith(prefix)) {
          batch.push(name);
          if (batch.length >= STAT_BATCH) {
            yield* await statBatch(batch);
            batch = [];
          }
        }
      }
      if (batch.length > 0) yield* await statBatch(batch);
    }
  }

  async stat(name: string, opts: { signal?: AbortSignal } = {}): Promise<FileInfo | undefined> {
    throwIfAborted(opts.signal);
    try {
      const st = await fsp.stat(this.abs(name));
      return st.isFile() ? { name, size: st.size } : undefined;
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw mapFsError(e, name, 'stat');
    }
  }

  async openRead(name: string, opts: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    try {
      return await openFileChunks(this.abs(name), { start: opts.offset, length: opts.length, reuse: opts.reuseBuffers, signal: opts.signal });
    } catch (e) {
      throw mapFsError(e, name, 'read');
    }
  }

  async write(name: string, source: WriteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const finalPath = this.abs(name);
    const tmpPath = `${finalPath}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`;
    await mkdirs(path.dirname(finalPath)).catch((e) => { throw mapFsError(e, name, 'write'); });
    const tally = new WriteTally(name, opts);
    let fh: fsp.FileHandle | undefined;
    let published = false;
    try {
      fh = await fsp.open(tmpPath, 'wx');
      for await (const chunk of source) {
        throwIfAborted(opts.signal);
        tally.add(chunk);
        await writeAll(fh, [chunk]);
      }
      throwIfAborted(opts.signal);
      tally.checkEnd();
      testPoint('local-write-before-sync', name);
      if (opts.sync) await fh.datasync();
      await fh.close();
      fh = undefined;
      if (opts.createOnly) {
        await linkNew(tmpPath, finalPath, name);
        published = true;
        await fsp.unlink(tmpPath);
      } else {
        await fsp.rename(tmpPath, finalPath);
        published = true;
      }
      if (opts.sync) await syncDir(path.dirname(finalPath));
      return { size: tally.size, crc32c: tally.crc32c };
    } catch (e) {
      await fh?.close().catch(() => {});
      if (!published) await fsp.unlink(tmpPath).catch(() => {});
      throw mapFsError(e, name, 'write');
    }
  }

  temporaryTarget(name: string): string | undefined {
    const m = TEMPORARY.exec(name);
    return m && !m[1]!.endsWith('/') ? m[1] : undefined;
  }

  async promoteTemporary(temporary: string, opts: { sync?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const name = this.temporaryTarget(temporary);
    if (name === undefined) throw new CairnError('InvalidArgument', `${temporary} is not a temporary file of an interrupted write`, { file: temporary });
    throwIfAborted(opts.signal);
    const tmpPath = this.abs(temporary);
    const finalPath = this.abs(name);
    try {
      if (opts.sync) {
        const fh = await fsp.open(tmpPath, 'r+');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      // link, not rename: a file already under the final name is never replaced.
      await linkNew(tmpPath, finalPath, name);
      await fsp.unlink(tmpPath);
      if (opts.sync) await syncDir(path.dirname(finalPath));
    } catch (e) {
      throw mapFsError(e, temporary, 'promote');
    }
  }

  async delete(names: string[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const parents = new Set<string>();
    for (const name of names) {
      try {
        await fsp.unlink(this.abs(name));
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw mapFsError(e, name, 'delete');
      }
      const dir = name.split('/').slice(0, -1);
      // Keep the top-level directories (meta/, private/, shared_checksum/) RocksDB expects;
      // remove emptied ones below them, such as private/<id>/.
      if (dir.length >= 2) parents.add(dir.join('/'));
    }
    for (const dir of [...parents].sort((a, b) => b.length - a.length)) {
      await fsp.rmdir(path.join(this.root, dir)).catch(() => {});
    }
  }

  async pruneEmptyDirs(dir: string, opts: { keep?: (name: string) => boolean; signal?: AbortSignal } = {}): Promise<string[]> {
    const removed: string[] = [];
    const top = dir.replace(/\/+$/, '');
    // Depth first, so that a directory emptied by removing its empty children goes too; rmdir
    // refuses a directory that is not empty (a file written meanwhile), which is then kept.
    const prune = async (rel: string): Promise<boolean> => {
      throwIfAborted(opts.signal);
      let entries;
      try {
        entries = await fsp.readdir(this.abs(rel), { withFileTypes: true });
      } catch (e) {
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
        throw mapFsError(e, rel, 'list');
      }
      let empty = true;
      for (const ent of entries) {
        if (!ent.isDirectory() || !(await prune(`${rel}/${ent.name}`))) empty = false;
      }
      if (!empty || rel === top || opts.keep?.(`${rel}/`)) return false;
      try {
        await fsp.rmdir(this.abs(rel));
      } catch (e) {
        if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST' || errno(e) === 'ENOENT') return false;
        throw mapFsError(e, rel, 'delete');
      }
      removed.push(`${rel}/`);
      return true;
    };
    await prune(top);
    return removed;
  }

  async close(): Promise<void> {}
}

/**
 * mkdir -p whose error names the real cause: Node's recursive mkdir reports ENOENT on a
 * read-only file system (or under a directory it may not write), which would read as "does not
 * exist"; creating the first missing directory alone gives EROFS / EACCES.
 */
async function mkdirs(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
    let missing = dir;
    while (path.dirname(missing) !== missing) {
      const parent = path.dirname(missing);
      if (await fsp.stat(parent).then(() => true, () => false)) break;
      missing = parent;
    }
    await fsp.mkdir(missing);
    throw e;
  }
}
