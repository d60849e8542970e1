// S3 Object Lock behind BackupEnv's retention methods (requireRetention, extendRetention,
// retentionOf, WriteOptions.retainUntil), and the deletion of every version of an object that a
// versioned bucket needs. The lock primitives are in object-lock.ts; docs/retention.md says what
// each emulator enforces.
//
// Deleting on an Object Lock bucket (always versioned): a DeleteObject without a version id only
// adds a delete marker, the bytes stay stored and billed, so each key's versions and delete
// markers are listed and deleted by id. A version the lock keeps stays: its key is still listed
// (no delete marker hides it), so the next GC finds it again once the date passes. Versions no
// listing shows (older ones of a rewritten object, those behind a delete marker left by another
// tool) are swept by cleanupIncomplete. A versioned bucket without Object Lock keeps S3's own
// semantics (delete markers; its lifecycle rules expire old versions): its owner may rely on
// versioning as an undo.
import type { HeadOutput } from './direct-head.ts';
import {
  DeleteObjectsCommand,
  GetObjectLockConfigurationCommand,
  ListObjectVersionsCommand,
} from '@aws-sdk/client-s3';
import type { FileRetention, WriteOptions } from '../../src/env.ts';
import { RetainedFilesError } from '../../src/env.ts';
import { CairnError, isCairnError, ioError, throwIfAborted } from '../../src/errors.ts';
import { fanOut, fanOutMap } from '../../src/io/fan-out.ts';
import { deleteVersionUnlessLocked, extendRetention, headObjectLock, type ObjectLockState } from './object-lock.ts';
import { isCode, isStatus, mapS3Error } from './errors.ts';
import type { S3Store, Signal } from './client.ts';
import type { S3Settings } from './options.ts';

const DELETE_BATCH = 1000;

/** Answers of servers (or policies) that do not offer a bucket-level API: the feature is absent. */
const unsupported = (e: unknown) => isStatus(e, 501, 405) || isCode(e, 'NotImplemented', 'MethodNotAllowed', 'XNotImplemented');

export interface ObjectVersion {
  key: string;
  versionId: string;
}

/** The lock on a version as a FileRetention, when it is in force at `now`. */
export function retentionInForce(lock: ObjectLockState, now: Date): FileRetention | undefined {
  if (lock.retention && lock.retention.retainUntil > now) return { until: lock.retention.retainUntil, mode: lock.retention.mode };
  if (lock.legalHold) return { mode: 'legal hold' };
  return undefined;
}

export class S3Retention {
  private readonly store: S3Store;
  private readonly settings: S3Settings;
  private lockEnabled: Promise<boolean> | undefined;

  constructor(store: S3Store, settings: S3Settings) {
    this.store = store;
    this.settings = settings;
  }

  /** Whether the bucket has Object Lock (asked once per env). */
  hasObjectLock(signal: Signal): Promise<boolean> {
    const { store } = this;
    const p = (this.lockEnabled ??= store.client.send(new GetObjectLockConfigurationCommand({ Bucket: store.bucket }), store.sendOpts(signal)).then(
      (out) => out.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled',
      (e: unknown) => {
        if (isCode(e, 'ObjectLockConfigurationNotFoundError') || unsupported(e)) return false;
        throw mapS3Error(e, store.request('GetObjectLockConfiguration', undefined, signal));
      },
    ));
    // A failed or aborted question is asked again next time.
    p.catch(() => { if (this.lockEnabled === p) this.lockEnabled = undefined; });
    return p;
  }

  /**
   * Whether deletes go by version id (an Object Lock bucket). Credentials that may not read the
   * bucket's lock configuration get plain deletes, as before Object Lock support.
   */
  deletesByVersion(signal: Signal): Promise<boolean> {
    return this.hasObjectLock(signal).catch((e: unknown) => {
      if (isCairnError(e, 'PermissionDenied')) return false;
      throw e;
    });
  }

  async require(signal: Signal): Promise<void> {
    if (await this.hasObjectLock(signal)) return;
    throw new CairnError(
      'NotSupported',
      `${this.store.loc.url} has no Object Lock, so --retain cannot protect what cairn writes there (nothing was written); use a bucket created with ` +
        'Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket), or enable it on a versioned bucket (put-object-lock-configuration)',
    );
  }

  /** Lock parameters for PutObject and CreateMultipartUpload. */
  writeParams(opts: WriteOptions): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
    return opts.retainUntil === undefined ? {} : { ObjectLockMode: this.settings.objectLockMode, ObjectLockRetainUntilDate: opts.retainUntil };
  }

  /**
   * After a write with retainUntil: the store must report the lock on the object (moto drops the
   * lock headers of a multipart upload). Throws NotSupported, the object being published unlocked.
   */
  checkApplied(opts: WriteOptions, head: HeadOutput, name: string): void {
    const wanted = opts.retainUntil;
    if (wanted === undefined) return;
    const until = head.ObjectLockRetainUntilDate ? new Date(head.ObjectLockRetainUntilDate) : undefined;
    // (Some servers keep the date to the second.)
    if (until !== undefined && until.getTime() >= Math.floor(wanted.getTime() / 1000) * 1000) return;
    throw new CairnError(
      'NotSupported',
      `the S3 server at ${this.store.endpoint ?? 'AWS'} did not keep the Object Lock retention asked for ${this.store.loc.where(this.store.loc.key(name))} ` +
        `(until ${wanted.toISOString()}; it reports ${until ? until.toISOString() : 'none'}). The object was published without it.`,
      { file: name },
    );
  }

  async extend(names: string[], until: Date, signal: Signal): Promise<void> {
    const { store } = this;
    const wanted = { mode: this.settings.objectLockMode, retainUntil: until };
    await fanOut(names, async (name, _i, sig) => {
      await extendRetention(store.client, store.bucket, store.loc.key(name), wanted, { signal: sig });
    }, { concurrency: this.settings.concurrency, ...(signal === undefined ? {} : { signal }) });
  }

  /** The current versions among `names` under a lock in force at `now`; nothing on a bucket without Object Lock. */
  async retentionOf(names: string[], now: Date, signal: Signal): Promise<Map<string, FileRetention>> {
    const out = new Map<string, FileRetention>();
    if (names.length === 0 || !(await this.deletesByVersion(signal))) return out;
    const { store } = this;
    await fanOut(names, async (name, _i, sig) => {
      let lock: ObjectLockState;
      try {
        lock = await headObjectLock(store.client, store.bucket, store.loc.key(name), { signal: sig });
      } catch (e) {
        if (isCairnError(e, 'NotFound')) return;
        throw e;
      }
      const r = retentionInForce(lock, now);
      if (r) out.set(name, r);
    }, { concurrency: this.settings.concurrency, ...(signal === undefined ? {} : { signal }) });
    return out;
  }

  /** Every version and delete marker of exactly `key`. */
  private async versionsOf(key: string, signal: Signal): Promise<ObjectVersion[]> {
    const { store } = this;
    const out: ObjectVersion[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await store.call('ListObjectVersions', key, signal, () =>
        store.client.send(
          new ListObjectVersionsCommand({
            Bucket: store.bucket,
            Prefix: key,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(versionIdMarker === undefined ? {} : { VersionIdMarker: versionIdMarker }),
          }),
          store.sendOpts(signal),
        ),
      );
      for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (v.Key === key && v.VersionId) out.push({ key, versionId: v.VersionId });
      }
      // Keys sort after their prefix: once past `key`, the rest is other keys.
      if (!page.IsTruncated || (page.NextKeyMarker !== undefined && page.NextKeyMarker > key)) return out;
      if (page.NextKeyMarker === keyMarker && page.NextVersionIdMarker === versionIdMarker) throw ioError(`ListObjectVersions ${store.loc.where(key)}: truncated page without new markers`);
      keyMarker = page.NextKeyMarker;
      versionIdMarker = page.NextVersionIdMarker;
    }
  }

  /**
   * Deletes every version and delete marker of each key. Versions a lock keeps stay; once the
   * rest is deleted, rejects with RetainedFilesError naming them.
   */
  async deleteAllVersions(keys: string[], batchDelete: boolean, signal: Signal): Promise<void> {
    const { store } = this;
    const opts = { concurrency: this.settings.concurrency, ...(signal === undefined ? {} : { signal }) };
    const versions = (await fanOutMap(keys, (key, _i, sig) => this.versionsOf(key, sig), opts)).flat();
    const refused: ObjectVersion[] = [];
    if (batchDelete) {
      for (let i = 0; i < versions.length; i += DELETE_BATCH) {
        throwIfAborted(signal);
        const batch = versions.slice(i, i + DELETE_BATCH);
        const res = await store.call('DeleteObjects', `${store.loc.prefix}…`, signal, () =>
          store.client.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch.map((v) => ({ Key: v.key, VersionId: v.versionId })), Quiet: true } }), store.sendOpts(signal)),
        );
        for (const er of res.Errors ?? []) {
          if (er.Code === 'NoSuchKey' || er.Code === 'NoSuchVersion') continue;
          // (moto leaves VersionId out of its errors: every version of the key is asked again.)
          const vs = batch.filter((b) => b.key === er.Key && (er.VersionId === undefined || b.versionId === er.VersionId));
          if (vs.length > 0 && (er.Code === 'AccessDenied' || er.Code === 'InvalidRequest')) refused.push(...vs);
          else throw new CairnError(er.Code === 'AccessDenied' ? 'PermissionDenied' : 'IOError', `DeleteObjects in ${store.loc.where()}: ${er.Key} version ${er.VersionId}: ${er.Code} ${er.Message ?? ''}`.trim(), { file: er.Key?.slice(store.loc.prefix.length) ?? '' });
        }
      }
    } else {
      refused.push(...versions);
    }
    // One by one (or the refused ones again, to tell a lock from a missing permission).
    const retained = new Map<string, FileRetention>();
    await fanOut(refused, async (v, _i, sig) => {
      let r;
      try {
        r = await deleteVersionUnlessLocked(store.client, store.bucket, v.key, v.versionId, { signal: sig });
      } catch (e) {
        if (isCairnError(e, 'NotFound')) return; // deleted meanwhile
        throw e;
      }
      if (r.deleted) return;
      const name = v.key.slice(store.loc.prefix.length);
      const held = retentionInForce(r.lock, new Date(0)) ?? { mode: 'locked' };
      const prev = retained.get(name);
      if (!prev || (held.until && prev.until && held.until > prev.until)) retained.set(name, held);
    }, opts);
    if (retained.size > 0) throw new RetainedFilesError(`delete in ${store.loc.url}`, retained);
  }

  /**
   * On an Object Lock bucket: deletes the versions no listing shows under the prefix (older
   * versions of rewritten objects, such as lock files; objects behind a delete marker, and the
   * marker) where the lock allows; locked ones are left for a later run. Returns how many went.
   */
  async sweepHiddenVersions(signal: Signal): Promise<number> {
    if (!(await this.deletesByVersion(signal))) return 0;
    const { store } = this;
    const { prefix } = store.loc;
    const hidden: ObjectVersion[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await store.call('ListObjectVersions', prefix, signal, () =>
        store.client.send(
          new ListObjectVersionsCommand({
            Bucket: store.bucket,
            ...(prefix === '' ? {} : { Prefix: prefix }),
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(versionIdMarker === undefined ? {} : { VersionIdMarker: versionIdMarker }),
          }),
          store.sendOpts(signal),
        ),
      );
      // A delete marker on top hides every version of its key; below a live version, older ones are hidden.
      for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (v.Key && v.VersionId && (!v.IsLatest || (page.DeleteMarkers ?? []).includes(v))) hidden.push({ key: v.Key, versionId: v.VersionId });
      }
      if (!page.IsTruncated) break;
      if (page.NextKeyMarker === keyMarker && page.NextVersionIdMarker === versionIdMarker) throw ioError(`ListObjectVersions ${store.loc.where(prefix)}: truncated page without new markers`);
      keyMarker = page.NextKeyMarker;
      versionIdMarker = page.NextVersionIdMarker;
    }
    let removed = 0;
    for (let i = 0; i < hidden.length; i += DELETE_BATCH) {
      throwIfAborted(signal);
      const batch = hidden.slice(i, i + DELETE_BATCH);
      const res = await store.call('DeleteObjects', `${prefix}…`, signal, () =>
        store.client.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch.map((v) => ({ Key: v.key, VersionId: v.versionId })), Quiet: true } }), store.sendOpts(signal)),
      );
      // (Refusals are versions still locked: they go at a later run.)
      removed += batch.length - (res.Errors ?? []).length;
    }
    return removed;
  }
}
