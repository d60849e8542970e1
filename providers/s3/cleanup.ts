// Removing objects from S3 (DeleteObjects in batches of 1000, one by one where the server lacks
// it) and multipart uploads an interrupted write left behind.
import { AbortMultipartUploadCommand, DeleteObjectCommand, DeleteObjectsCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { CairnError, ioError, throwIfAborted } from '../../src/errors.ts';
import { fanOut } from '../../src/io/fan-out.ts';
import { isCode, isStatus, mapS3Error } from './errors.ts';
import type { S3Store, Signal } from './client.ts';
import type { S3Retention } from './retention.ts';

const DELETE_BATCH = 1000;

export class S3Deleter {
  private readonly store: S3Store;
  private readonly concurrency: number;
  private batchDeleteUnsupported = false;
  /** Deletes by version on an Object Lock bucket (retention.ts). */
  private readonly versions: S3Retention | undefined;

  constructor(store: S3Store, concurrency: number, versions?: S3Retention) {
    this.store = store;
    this.concurrency = concurrency;
    this.versions = versions;
  }

  async delete(names: string[], signal: Signal): Promise<void> {
    const { store } = this;
    const keys = [...new Set(names.map((n) => store.loc.key(n)))];
    if (keys.length === 0) return;
    if (this.versions && (await this.versions.deletesByVersion(signal))) return this.versions.deleteAllVersions(keys, !this.batchDeleteUnsupported, signal);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (batch.length === 1 || this.batchDeleteUnsupported) {
        await this.deleteOneByOne(batch, signal);
        continue;
      }
      let res;
      try {
        throwIfAborted(signal);
        res = await store.client.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }), store.sendOpts(signal));
      } catch (e) {
        // Servers without multi-object delete (or that insist on Content-MD5) → one by one.
        if (isStatus(e, 501, 405) || isCode(e, 'NotImplemented', 'MethodNotAllowed', 'MissingContentMD5')) {
          this.batchDeleteUnsupported = true;
          await this.deleteOneByOne(batch, signal);
          continue;
        }
        throw mapS3Error(e, store.request('DeleteObjects', `${store.loc.prefix}…`, signal));
      }
      const errors = (res.Errors ?? []).filter((er) => er.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const list = errors.slice(0, 5).map((er) => `${er.Key}: ${er.Code} ${er.Message ?? ''}`.trim()).join('; ');
        const denied = errors.every((er) => er.Code === 'AccessDenied');
        throw new CairnError(denied ? 'PermissionDenied' : 'IOError', `DeleteObjects in ${store.loc.where()}: ${errors.length} of ${batch.length} keys not deleted (${list}${errors.length > 5 ? '; …' : ''})`, {
          file: errors[0]!.Key?.slice(store.loc.prefix.length) ?? '',
        });
      }
    }
  }

  private async deleteOneByOne(keys: string[], signal: Signal): Promise<void> {
    const { store } = this;
    await fanOut(
      keys,
      (key, _i, sig) => store.call('DeleteObject', key, sig, () => store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }), store.sendOpts(sig))),
      { concurrency: this.concurrency, ...(signal === undefined ? {} : { signal }) },
    );
  }
}

/** Multipart uploads of failed writes: aborted at once where possible, else by cleanupIncomplete. */
export class UploadLeftovers {
  private readonly store: S3Store;
  /** Uploads this env failed to abort (uploadId → key): cleanupIncomplete retries them first. */
  private readonly unaborted = new Map<string, string>();

  constructor(store: S3Store) {
    this.store = store;
  }

  /** Best effort, and not with the caller's signal: it may be the reason the upload failed. */
  async abort(key: string, uploadId: string): Promise<void> {
    try {
      await this.store.client.send(new AbortMultipartUploadCommand({ Bucket: this.store.bucket, Key: key, UploadId: uploadId }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch (e) {
      // cleanupIncomplete() removes what is left (it retries this one first, which matters on
      // servers such as MinIO that cannot list uploads by prefix).
      if (!isCode(e, 'NoSuchUpload')) this.unaborted.set(uploadId, key);
    }
  }

  /** Aborts one upload; false when it had finished or been aborted meanwhile. */
  private async abortNow(key: string, uploadId: string, signal: Signal): Promise<boolean> {
    const { store } = this;
    try {
      throwIfAborted(signal);
      await store.client.send(new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: key, UploadId: uploadId }), store.sendOpts(signal));
      return true;
    } catch (e) {
      if (isCode(e, 'NoSuchUpload') || isStatus(e, 404)) return false;
      throw mapS3Error(e, store.request('AbortMultipartUpload', key, signal));
    }
  }

  async cleanupIncomplete(signal: Signal): Promise<number> {
    const { store } = this;
    const { prefix } = store.loc;
    let removed = 0;
    for (const [uploadId, key] of [...this.unaborted]) {
      if (await this.abortNow(key, uploadId, signal)) removed++;
      this.unaborted.delete(uploadId);
    }
    // MinIO answers ListMultipartUploads only for an exact key, so this finds nothing there
    // (MinIO expires stale uploads itself, after 24 h by default: api stale_uploads_expiry).
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await store.call('ListMultipartUploads', prefix, signal, () =>
        store.client.send(
          new ListMultipartUploadsCommand({
            Bucket: store.bucket,
            ...(prefix === '' ? {} : { Prefix: prefix }),
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
          store.sendOpts(signal),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(prefix)) continue;
        if (await this.abortNow(u.Key, u.UploadId, signal)) removed++;
      }
      if (!page.IsTruncated) return removed;
      if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
        throw ioError(`ListMultipartUploads ${store.loc.where(prefix)}: truncated page without new markers`);
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }
}
