// The list index: a small cache of what `list` shows (per backup: id, timestamp, sequence, size,
// file count, app metadata; per corrupt backup: its error), kept in meta/.cairn-list-index so
// that listing N backups reads one object instead of N manifests. The manifests stay the source
// of truth; nothing but `list` reads the index (GC, purge, restore and verify always parse the
// manifests), so a wrong index could at worst show a wrong list, never lose data.
//
// RocksDB's engine skips a meta/ name that is not a backup id when it opens a directory, and
// deletes it at its next write (its auto-GC): the index then disappears and is rebuilt, which is
// what its staleness demands anyway.
//
// An index is trusted only when the state it was built from is the current one:
// - every manifest as listed (id, size, modification time) is the one recorded, and no other;
// - the stored files (shared/, shared_checksum/, private/) fingerprint the same: count, bytes,
//   and an order-independent hash of (name, size) over all of them. A backup is valid only if
//   its files exist with their sizes, so a file deleted or replaced by hand has to be noticed.
// The key is always taken before the content it describes is read, so a change in between makes
// the index stale rather than wrong. Writing it is best-effort: a failure never fails a command.
import type { BackupEnv } from '../env.ts';
import { CairnError, type ErrorCode } from '../errors.ts';
import { Catalog, STORED_DIRS } from './catalog.ts';
import { META_DIR, parseBackupId } from './layout.ts';
import type { BackupInfo, CorruptBackup } from './types.ts';

export const LIST_INDEX_NAME = `${META_DIR}.cairn-list-index`;
const FORMAT = 'cairn-list-index';
const VERSION = 1;
/** An index larger than this is not read (a sane one holds a few hundred bytes per backup). */
const MAX_INDEX_BYTES = 64 << 20;

export interface ManifestKey {
  id: number;
  size: number;
  /** As the store reports it (ms since the epoch); -1 when it reports none. */
  modified: number;
}

/** Count, bytes and hash of the stored files; equal fingerprints mean the same (name, size) set. */
export interface StoredFingerprint {
  count: number;
  bytes: number;
  hash: string;
}

interface IndexedBackup {
  id: number;
  timestamp: number;
  sequence: string;
  size: number;
  numFiles: number;
  /** base64 */
  appMetadata: string;
}

interface IndexedCorrupt {
  id: number;
  code: ErrorCode;
  message: string;
  file?: string;
}

interface IndexDoc {
  format: typeof FORMAT;
  version: number;
  manifests: ManifestKey[];
  stored: StoredFingerprint;
  backups: IndexedBackup[];
  corrupt: IndexedCorrupt[];
}

export interface ListedBackups {
  /** Valid backups, oldest first. */
  backups: BackupInfo[];
  corrupt: CorruptBackup[];
  /** Whether the index answered (else every manifest was parsed, and the index rebuilt). */
  fromIndex: boolean;
}

/** Every manifest of the directory, by id, and meta/'s listing (name -> size). */
export async function listManifests(env: BackupEnv, signal?: AbortSignal): Promise<{ keys: ManifestKey[]; metas: Map<string, number> }> {
  const keys: ManifestKey[] = [];
  const metas = new Map<string, number>();
  for await (const f of env.list(META_DIR, { signal })) {
    metas.set(f.name, f.size);
    const id = parseBackupId(f.name.slice(META_DIR.length));
    if (id !== undefined) keys.push({ id, size: f.size, modified: f.modified === undefined ? -1 : Math.round(f.modified) });
  }
  return { keys: keys.sort((a, b) => a.id - b.id), metas };
}

/** FNV-1a and a second multiplicative hash of `name` and `size`, as two 32-bit words. */
function entryHash(name: string, size: number): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x2545f491 ^ size;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 = Math.imul(h1 ^ (size >>> 0), 0x01000193) ^ Math.imul((size / 4294967296) >>> 0, 0x9e3779b1);
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
  return [(h1 ^ (h1 >>> 16)) >>> 0, (h2 ^ (h2 >>> 16)) >>> 0];
}

/**
 * The stored files' fingerprint as a running sum: a file can be added and taken out again in any
 * order (sums mod 2^32 and an XOR), so a writer that listed the directory once can follow its own
 * writes and deletes instead of listing it again (dir-listing.ts).
 */
export class FingerprintSum {
  private count = 0;
  private bytes = 0;
  private s1 = 0;
  private s2 = 0;
  private x = 0;

  add(name: string, size: number): void {
    this.step(name, size, 1);
  }

  remove(name: string, size: number): void {
    this.step(name, size, -1);
  }

  private step(name: string, size: number, sign: 1 | -1): void {
    const [h1, h2] = entryHash(name, size);
    this.count += sign;
    this.bytes += sign * size;
    this.s1 = (this.s1 + sign * h1) >>> 0;
    this.s2 = (this.s2 + sign * h2) >>> 0;
    this.x = (this.x ^ Math.imul(h1, 0x27d4eb2f)) >>> 0;
  }

  value(): StoredFingerprint {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    return { count: this.count, bytes: this.bytes, hash: hex(this.s1) + hex(this.s2) + hex(this.x) };
  }
}

/**
 * The stored files' fingerprint, from one streaming listing of each file directory; with
 * `keep`, also their names and sizes (for a Catalog.load that follows).
 */
export async function storedFingerprint(env: BackupEnv, signal?: AbortSignal, keep?: Map<string, number>): Promise<StoredFingerprint> {
  const sum = new FingerprintSum();
  await Promise.all(STORED_DIRS.map(async (p) => {
    for await (const f of env.list(p, { signal })) {
      sum.add(f.name, f.size);
      keep?.set(f.name, f.size);
    }
  }));
  return sum.value();
}

function sameManifests(a: readonly ManifestKey[], b: readonly ManifestKey[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].id !== b[i].id || a[i].size !== b[i].size || a[i].modified !== b[i].modified) return false;
  }
  return true;
}

const sameFingerprint = (a: StoredFingerprint, b: StoredFingerprint) => a.count === b.count && a.bytes === b.bytes && a.hash === b.hash;

/** The index's document, or undefined when absent, unreadable, malformed or of another version. */
export async function readListIndex(env: BackupEnv, signal?: AbortSignal): Promise<IndexDoc | undefined> {
  let text: string;
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of await env.openRead(LIST_INDEX_NAME, { signal })) {
      total += c.length;
      if (total > MAX_INDEX_BYTES) return undefined;
      chunks.push(Buffer.from(c));
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    if (signal?.aborted) throw e;
    return undefined; // missing or unreadable: the manifests answer
  }
  try {
    const doc = JSON.parse(text) as IndexDoc;
    return isIndexDoc(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}

const isInt = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n);

/** Checks every field a list would show, so that a damaged index is ignored rather than shown. */
function isIndexDoc(d: IndexDoc): boolean {
  if (typeof d !== 'object' || d === null || d.format !== FORMAT || d.version !== VERSION) return false;
  if (!Array.isArray(d.manifests) || !Array.isArray(d.backups) || !Array.isArray(d.corrupt)) return false;
  if (!d.manifests.every((m) => isInt(m?.id) && isInt(m.size) && isInt(m.modified))) return false;
  const s = d.stored;
  if (typeof s !== 'object' || s === null || !isInt(s.count) || !isInt(s.bytes) || typeof s.hash !== 'string') return false;
  const ok = d.backups.every((b) =>
    isInt(b?.id) && isInt(b.timestamp) && typeof b.sequence === 'string' && /^[0-9]+$/.test(b.sequence) && isInt(b.size) && isInt(b.numFiles) && typeof b.appMetadata === 'string');
  if (!ok || !d.corrupt.every((c) => isInt(c?.id) && typeof c.code === 'string' && typeof c.message === 'string')) return false;
  // Every backup it shows must be a manifest it was built from, once.
  const ids = new Set(d.manifests.map((m) => m.id));
  const shown = [...d.backups.map((b) => b.id), ...d.corrupt.map((c) => c.id)];
  return shown.every((id) => ids.has(id)) && new Set(shown).size === shown.length && shown.length === ids.size;
}

function fromDoc(doc: IndexDoc): ListedBackups {
  return {
    backups: doc.backups.map((b) => ({ id: b.id, timestamp: b.timestamp, sequence: BigInt(b.sequence), size: b.size, numFiles: b.numFiles, appMetadata: Buffer.from(b.appMetadata, 'base64') })),
    corrupt: doc.corrupt.map((c) => ({ id: c.id, error: new CairnError(c.code, c.message, { backupId: c.id, ...(c.file === undefined ? {} : { file: c.file }) }) })),
    fromIndex: true,
  };
}

function toDoc(manifests: ManifestKey[], stored: StoredFingerprint, backups: readonly BackupInfo[], corrupt: readonly CorruptBackup[]): IndexDoc {
  return {
    format: FORMAT,
    version: VERSION,
    manifests,
    stored,
    backups: backups.map((b) => ({ id: b.id, timestamp: b.timestamp, sequence: b.sequence.toString(), size: b.size, numFiles: b.numFiles, appMetadata: b.appMetadata.toString('base64') })),
    corrupt: corrupt.map((c) => ({ id: c.id, code: c.error.code, message: c.error.message, ...(c.error.file === undefined ? {} : { file: c.error.file }) })),
  };
}

async function writeDoc(env: BackupEnv, doc: IndexDoc, signal?: AbortSignal): Promise<boolean> {
  try {
    // One write: a rename into place on disk, a single PUT on object stores.
    await env.write(LIST_INDEX_NAME, [Buffer.from(JSON.stringify(doc))], { signal, sync: false });
    return true;
  } catch {
    return false; // best-effort: read-only credentials, a full disk, a stopped command...
  }
}

export interface ListOptions {
  signal?: AbortSignal;
  /** Rebuild the index when it did not answer (default true). */
  write?: boolean;
  /** Parse every manifest whatever the index says. */
  ignoreIndex?: boolean;
  /** Each backup's files too (from the manifests: the index does not hold them). */
  details?: boolean;
}

/**
 * What `list` shows: from the index when it matches the directory, else from every manifest
 * (Catalog.load), after which the index is rebuilt (best-effort) unless `write` is false.
 */
export async function listBackupsIndexed(env: BackupEnv, opts: ListOptions = {}): Promise<ListedBackups> {
  const { signal } = opts;
  const useIndex = !opts.ignoreIndex && !opts.details;
  // The key first (meta/ in parallel with reading the index), the content after it.
  const [{ keys, metas }, doc] = await Promise.all([listManifests(env, signal), useIndex ? readListIndex(env, signal) : undefined]);
  if (doc && sameManifests(doc.manifests, keys)) {
    const stored = await storedFingerprint(env, signal);
    if (sameFingerprint(doc.stored, stored)) return fromDoc(doc);
  }
  // Stale or missing: one more listing of the file directories, which the load uses too.
  const listing = new Map<string, number>();
  const stored = await storedFingerprint(env, signal, listing);
  const catalog = await Catalog.load(env, { signal, listing: { metas, stored: listing } });
  listing.clear();
  const backups = catalog.list(opts.details);
  const corrupt = catalog.listCorrupt();
  // (No manifest, no index: listing a mistyped path must not create it.)
  if (opts.write !== false && keys.length > 0 && !opts.details) await writeDoc(env, toDoc(keys, stored, backups, corrupt), signal);
  return { backups, corrupt, fromIndex: false };
}

/**
 * Rewrites the index after a writing command (backup, delete, purge, gc), from the catalog it
 * holds, under its writer lock. A catalog with corrupt backups is not written from: a fresh load
 * may judge them otherwise once other backups are gone (a conflict with a deleted backup), so
 * the next list parses the manifests and rebuilds the index itself.
 *
 * `stored` is the fingerprint of the listing the catalog was loaded from with the command's own
 * writes and deletes applied (DirListing). It is the better key: a file changed behind the
 * command's back after that listing is in neither the catalog nor the key, so the next list
 * finds the directory different and parses the manifests; a fresh listing here would take such
 * a change into the key while the catalog still describes the directory without it. Without it
 * (no listing under the lock) the file directories are listed again.
 */
export async function refreshListIndex(env: BackupEnv, catalog: Catalog, signal?: AbortSignal, stored?: StoredFingerprint): Promise<boolean> {
  try {
    if (catalog.corrupt.size > 0) return false;
    if (catalog.backups.size === 0) {
      // Every backup gone: so is the index, and an emptied directory is as RocksDB leaves it.
      await env.delete([LIST_INDEX_NAME], { signal });
      return false;
    }
    // meta/ is listed again all the same: the key holds each manifest's modification time as
    // the store lists it, which the command's own manifest write does not tell.
    const [{ keys: manifests }, fingerprint] = await Promise.all([listManifests(env, signal), stored ?? storedFingerprint(env, signal)]);
    const backups = catalog.list();
    // The catalog must describe exactly the manifests there are (another writer, RocksDB's
    // engine, takes no cairn lock): otherwise leave it to the next list.
    if (manifests.length !== backups.length || manifests.some((m, i) => m.id !== backups[i].id)) return false;
    return await writeDoc(env, toDoc(manifests, fingerprint, backups, []), signal);
  } catch {
    return false;
  }
}
