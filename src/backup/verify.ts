// Verification of one or many backups in one pass: each directory a backup uses is listed once,
// each distinct file is checked once (its size against the listing; with `checksum` its bytes
// read and their crc32c recomputed; with `serverChecksum` the store's own crc32c compared), and a
// file's problems are reported for every backup that uses it. Checks run through fanOut: the
// first failure of the pass stops and waits for the rest, so nothing is still downloading when
// verification has returned.
import type { FileInfo, StoredChecksum } from '../env.ts';
import { CairnError, isCairnError } from '../errors.ts';
import { Crc32c } from '../crc32c.ts';
import { fanOut } from '../io/fan-out.ts';
import { readParallelRanges } from '../io/parallel-ranges.ts';
import { RateLimiter, rateLimited } from '../rate-limiter.ts';
import { deletedError, deletedMeanwhile, type Catalog, type CatalogBackup } from './catalog.ts';
import type { EngineContext } from './context.ts';
import { META_DIR, PRIVATE_DIR, SHARED_CHECKSUM_DIR, SHARED_DIR, isSharedName, metaName, privateDir } from './layout.ts';
import type { VerifyOptions, VerifyProblem, VerifyResult } from './types.ts';

/** A backup's result; `error` when it could not be verified (corrupt, unknown, deleted meanwhile). */
export interface VerifyBackupsResult extends VerifyResult {
  error?: CairnError;
}

type Mode = 'size' | 'checksum' | 'server';

/** Verifies the backups `ids` (valid or not) in one pass; results in the order of `ids`. */
export async function verifyBackups(ctx: EngineContext, ids: readonly number[], opts: VerifyOptions = {}): Promise<VerifyBackupsResult[]> {
  const { catalog, env, settings } = ctx;
  const { signal } = opts;
  if (opts.serverChecksum && !env.capabilities.serverChecksum) {
    throw new CairnError('NotSupported', `${env.url} has no store-side checksums; use checksum verification`);
  }
  // What the store's checksums cover is known once the env has asked the store (read-only
  // credentials cannot: then a file without a stored CRC32C is reported as such).
  let gaps: string | undefined;
  if (opts.serverChecksum) {
    await env.prepare?.({ signal }).catch((e: unknown) => {
      if (!isCairnError(e, 'PermissionDenied')) throw e;
    });
    gaps = env.capabilities.serverChecksumGaps;
    if (gaps !== undefined) opts.onWarning?.(`${env.url}: ${gaps}`);
  }
  const results: VerifyBackupsResult[] = [];
  const backups: CatalogBackup[] = [];
  for (const id of ids) {
    try {
      backups.push(catalog.require(id, env.url));
    } catch (e) {
      if (!isCairnError(e)) throw e;
      results.push({ id, filesChecked: 0, bytesChecked: 0, problems: [], error: e });
    }
  }
  const mode: Mode = opts.checksum ? 'checksum' : opts.serverChecksum ? 'server' : 'size';
  // A shared file has the same size and crc32c in every backup (checked on load), so its outcome
  // in one mode holds for every backup that uses it; a caller verifying backup by backup passes
  // one map for the run (checkedSharedFiles) to keep that across calls.
  const memo = opts.checkedSharedFiles;
  const memoKey = (name: string) => (isSharedName(name) ? `${mode}\0${name}` : undefined);
  const known = (name: string) => memo?.get(memoKey(name) ?? '');

  // The distinct files to check, each with the first backup that uses it (named in progress).
  const files = catalog.files;
  // (By file index: a Set of a year of dailies' distinct files costs more than a byte each.)
  const seen = new Uint8Array(files.capacity);
  let filesTotal = 0;
  const todo: number[] = [];
  const todoBackup: number[] = [];
  let bytesTotal = 0;
  let bytesDone = 0;
  let filesDone = 0;
  const privateOf = new Set<number>();
  let anyShared = false;
  for (const b of backups) {
    for (const i of b.files) {
      if (seen[i]) continue;
      seen[i] = 1;
      filesTotal++;
      const name = files.name(i);
      bytesTotal += files.fileSize(i);
      if (known(name) !== undefined) {
        bytesDone += files.fileSize(i);
        filesDone++;
        continue;
      }
      todo.push(i);
      todoBackup.push(b.id);
      if (isSharedName(name)) anyShared = true;
      else privateOf.add(b.id);
    }
  }

  // Store-side checksums come with the size, from the listing where it carries them (GCS), else
  // from one metadata request per file (S3), which makes a listing unnecessary.
  const perFile = opts.serverChecksum && !env.capabilities.listsChecksums;
  const prefixes = [
    // (The private dirs of several backups: one listing of private/ rather than one per backup.)
    ...(privateOf.size > 1 ? [PRIVATE_DIR] : [...privateOf].map(privateDir)),
    ...(anyShared ? [SHARED_DIR, SHARED_CHECKSUM_DIR] : []),
  ];
  // (The load found every file a valid backup names in its listing, with the size it names.)
  const fromOpen = opts.sizesFromOpen === true && mode !== 'server';
  const listed = perFile || prefixes.length === 0 ? undefined : fromOpen ? Listed.fromCatalog(catalog, todo) : await listNeeded(ctx, prefixes, signal);
  const gone = fromOpen && backups.length > 0 ? await manifestsGone(ctx, backups, signal) : new Set<number>();

  const found = new Map<number, VerifyProblem[]>();
  const limiter = settings.restoreRateLimit > 0 ? new RateLimiter(settings.restoreRateLimit) : undefined;
  const check = async (k: number, sig: AbortSignal): Promise<void> => {
    const i = todo[k];
    const name = files.name(i);
    const size = files.fileSize(i);
    const problems = await checkFile(ctx, { name, size, crc32c: files.crc32c(i) }, mode, perFile === true, listed?.get(i), limiter, sig, gaps !== undefined);
    if (problems.length > 0) found.set(i, problems);
    const key = memoKey(name);
    if (memo && key !== undefined) memo.set(key, problems);
    bytesDone += size;
    filesDone++;
    opts.onProgress?.({ operation: 'verify', backupId: todoBackup[k], file: name, bytesDone, bytesTotal, filesDone, filesTotal });
  };
  await fanOut(todo.keys(), (k, _n, sig) => check(k, sig), { concurrency: Math.max(settings.maxBackgroundOperations, opts.serverChecksum ? 32 : 1), signal });

  for (const b of backups) {
    const problems: VerifyProblem[] = [];
    for (const i of b.files) {
      const p = found.get(i) ?? known(files.name(i));
      if (p) problems.push(...p);
    }
    const r: VerifyBackupsResult = { id: b.id, filesChecked: b.files.length, bytesChecked: b.size, problems };
    if (gone.has(b.id)) {
      r.error = deletedError(b.id, 'verified');
    } else if (problems.some((p) => p.code === 'NotFound')) {
      const deleted = await deletedMeanwhile(env, b.id, 'verified', signal);
      if (deleted) r.error = deleted;
    }
    results.push(r);
  }
  const order = new Map(ids.map((id, k) => [id, k]));
  return results.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
}

/**
 * What the listings say of the files the catalog knows (size, and the crc32c where the listing
 * carries it), by file index, in typed arrays: nothing per listed file is kept beyond that.
 */
class Listed {
  private readonly sizes: Float64Array;
  private readonly crcs: Uint32Array;
  private readonly hasCrc: Uint8Array;

  constructor(capacity: number) {
    this.sizes = new Float64Array(capacity).fill(-1);
    this.crcs = new Uint32Array(capacity);
    this.hasCrc = new Uint8Array(capacity);
  }

  /** The sizes the catalog recorded from its listing, for the files `indices`. */
  static fromCatalog(catalog: Catalog, indices: number[]): Listed {
    const out = new Listed(catalog.files.capacity);
    for (const i of indices) out.sizes[i] = catalog.files.fileSize(i);
    return out;
  }

  set(i: number, f: FileInfo): void {
    this.sizes[i] = f.size;
    if (f.crc32c !== undefined) {
      this.crcs[i] = f.crc32c;
      this.hasCrc[i] = 1;
    }
  }

  get(i: number): StoredChecksum | undefined {
    if (!(this.sizes[i] >= 0)) return undefined;
    return this.hasCrc[i] ? { size: this.sizes[i], crc32c: this.crcs[i] } : { size: this.sizes[i] };
  }
}

/** The backups among `backups` whose manifest is no longer in meta/ (one listing of it). */
async function manifestsGone(ctx: EngineContext, backups: CatalogBackup[], signal?: AbortSignal): Promise<Set<number>> {
  const stored = new Set<string>();
  for await (const f of ctx.env.list(META_DIR, { signal })) stored.add(f.name);
  return new Set(backups.filter((b) => !stored.has(metaName(b.id))).map((b) => b.id));
}

async function listNeeded(ctx: EngineContext, prefixes: string[], signal?: AbortSignal): Promise<Listed> {
  const out = new Listed(ctx.catalog.files.capacity);
  await Promise.all(prefixes.map(async (p) => {
    for await (const f of ctx.env.list(p, { signal })) {
      const i = ctx.catalog.files.find(f.name);
      if (i !== undefined) out.set(i, f);
    }
  }));
  return out;
}

async function checkFile(
  ctx: EngineContext,
  f: { name: string; size: number; crc32c: number | undefined },
  mode: Mode,
  perFile: boolean,
  listed: StoredChecksum | undefined,
  limiter: RateLimiter | undefined,
  signal: AbortSignal,
  sizeOnlyKnown = false,
): Promise<VerifyProblem[]> {
  const found: VerifyProblem[] = [];
  const missing = () => found.push({ file: f.name, code: 'NotFound', message: `file missing: ${f.name}` });
  const wrongSize = (size: number) =>
    found.push({ file: f.name, code: 'Corruption', message: `size mismatch for ${f.name}: expected ${f.size}, found ${size}` });
  if (mode === 'server') {
    let stored: StoredChecksum | undefined = listed;
    // (An entry listed without its checksum is asked for it on its own.)
    if (perFile || (stored !== undefined && stored.crc32c === undefined && f.crc32c !== undefined)) {
      try {
        stored = await ctx.env.serverChecksum!(f.name, { signal });
      } catch (e) {
        if (!isCairnError(e, 'NotFound')) throw e;
        stored = undefined;
      }
    }
    if (stored === undefined) missing();
    else if (stored.size !== f.size) wrongSize(stored.size);
    else if (f.crc32c !== undefined) {
      // (A RocksDB meta without checksums leaves only the size to compare.)
      // (On a store whose gaps were announced, a file without one had its size checked only.)
      if (stored.crc32c === undefined) {
        if (!sizeOnlyKnown) found.push({ file: f.name, code: 'NotSupported', message: `the store has no crc32c for ${f.name}` });
      }
      else if (stored.crc32c !== f.crc32c) found.push({ file: f.name, code: 'Corruption', message: `checksum mismatch for ${f.name}: expected ${f.crc32c}, the store has ${stored.crc32c}` });
    }
    return found;
  }
  if (listed === undefined) missing();
  else if (listed.size !== f.size) wrongSize(listed.size);
  else if (f.crc32c !== undefined && mode === 'checksum') {
    // (A damaged file, or one the store will not serve as it is, e.g. archived: a problem of
    // that file, not a failure of the whole verification.)
    const got = await checksumOf(ctx, f.name, f.size, limiter, signal).catch((e: unknown) => {
      if (isCairnError(e, 'Corruption') || isCairnError(e, 'NotSupported')) return e;
      throw e;
    });
    if (got instanceof CairnError) found.push({ file: f.name, code: got.code as 'Corruption' | 'NotSupported', message: got.message });
    else if (got.length !== f.size) found.push({ file: f.name, code: 'Corruption', message: `${f.name}: read ${got.length} bytes, expected ${f.size}` });
    else if (got.crc !== f.crc32c) found.push({ file: f.name, code: 'Corruption', message: `checksum mismatch for ${f.name}: expected ${f.crc32c}, computed ${got.crc}` });
  }
  return found;
}

/** CRC32C of a stored file, read in (parallel, resumable) ranges where the store prefers that. */
async function checksumOf(ctx: EngineContext, name: string, size: number, limiter: RateLimiter | undefined, signal: AbortSignal): Promise<{ crc: number; length: number }> {
  const { env } = ctx;
  const ranges = env.capabilities.parallelRanges;
  if (ranges && size > 0) {
    // (A range that returns another length than asked throws Corruption: reported as damage.)
    const crc = await readParallelRanges(
      // Nothing holds a chunk past the next: the provider may reuse its buffers.
      async (offset, length, sig) => rateLimited(await env.openRead(name, { offset, length, signal: sig, reuseBuffers: true }), limiter, sig),
      () => ({ chunk: () => {} }),
      { name, size, partSize: ranges.partSize, concurrency: ranges.concurrency, signal },
    );
    return { crc, length: size };
  }
  const crc = new Crc32c();
  for await (const c of rateLimited(await env.openRead(name, { signal, reuseBuffers: true, length: size }), limiter, signal)) crc.update(c);
  return { crc: crc.value, length: crc.length };
}

/** verifyBackup(id): one backup, its errors thrown. */
export async function verifyBackup(ctx: EngineContext, id: number, opts: VerifyOptions = {}): Promise<VerifyResult> {
  ctx.catalog.require(id, ctx.env.url);
  const [r] = await verifyBackups(ctx, [id], opts);
  if (r.error) throw r.error;
  const { error: _, ...result } = r;
  return result;
}

