// GCS object retention behind BackupEnv's retention methods (backup --retain): objects are written
// with `retention: { mode, retainUntilTime }` (a bucket created with object retention enabled),
// extended with a metadata PATCH, and read back with the holds and the bucket policy's
// `retentionExpirationTime`, so delete / purge / gc keep what GCS would refuse to delete.
// Mode (GcsEnvOptions.retentionMode, CAIRN_GCS_RETENTION_MODE): Unlocked (default; a caller allowed
// overrideUnlockedRetention may still shorten it, as S3 GOVERNANCE) or Locked (only ever extended,
// as S3 COMPLIANCE).
// fake-gcs-server stores object retention but enforces none of it and does not report a bucket's
// objectRetention (test/gcs/retention-gaps.test.ts): requireRetention refuses there.
import type { FileMetadata } from '@google-cloud/storage';
import type { FileRetention, WriteOptions } from '../../src/env.ts';
import { CairnError } from '../../src/errors.ts';
import { fanOut } from '../../src/io/fan-out.ts';
import { statusOf } from './errors.ts';
import type { GcsStore, Signal } from './client.ts';

export type GcsRetentionMode = 'Unlocked' | 'Locked';

interface RetentionMetadata {
  retention?: { mode?: string; retainUntilTime?: string } | null;
  retentionExpirationTime?: string;
  eventBasedHold?: boolean;
  temporaryHold?: boolean;
}

/** What keeps an object from being deleted at `now`, from its metadata. */
export function gcsRetentionInForce(md: RetentionMetadata, now: Date): FileRetention | undefined {
  if (md.temporaryHold) return { mode: 'temporary hold' };
  if (md.eventBasedHold) return { mode: 'event-based hold' };
  let best: FileRetention | undefined;
  const consider = (until: string | undefined, mode: string) => {
    if (!until) return;
    const d = new Date(until);
    if (d > now && (!best?.until || d > best.until)) best = { until: d, mode };
  };
  consider(md.retention?.retainUntilTime, md.retention?.mode ?? 'Unlocked');
  consider(md.retentionExpirationTime, 'bucket retention policy');
  return best;
}

export class GcsRetention {
  private readonly store: GcsStore;
  private readonly mode: GcsRetentionMode;

  constructor(store: GcsStore, mode: GcsRetentionMode) {
    this.store = store;
    this.mode = mode;
  }

  async require(signal: Signal): Promise<void> {
    let md: { objectRetention?: { mode?: string } };
    try {
      [md] = await this.store.bucket.getMetadata();
    } catch (e) {
      throw this.store.mapError(e, 'get bucket metadata', undefined, undefined, signal);
    }
    if (md.objectRetention?.mode === 'Enabled') return;
    throw new CairnError(
      'NotSupported',
      `${this.store.loc.url} has no object retention, so --retain cannot protect what cairn writes there (nothing was written); ` +
        'use a bucket created with object retention enabled (gcloud storage buckets create --enable-per-object-retention)',
    );
  }

  /** Metadata to add to an upload with retainUntil. */
  writeMetadata(opts: WriteOptions): FileMetadata {
    return opts.retainUntil === undefined ? {} : { retention: { mode: this.mode, retainUntilTime: opts.retainUntil.toISOString() } };
  }

  private async metadataOf(name: string, signal: Signal): Promise<(FileMetadata & RetentionMetadata) | undefined> {
    return this.store.metadata(this.store.loc.key(name), name, signal) as Promise<(FileMetadata & RetentionMetadata) | undefined>;
  }

  /** Lengthens each object's retention to `until`; never shortens it, and a Locked one stays Locked. */
  async extend(names: string[], until: Date, signal: Signal): Promise<void> {
    const { store } = this;
    await fanOut(names, async (name, _i, sig) => {
      const md = await this.metadataOf(name, sig);
      if (!md) throw new CairnError('NotFound', `${store.loc.where(store.loc.key(name))} is missing: its retention cannot be extended`, { file: name });
      const current = md.retention?.retainUntilTime ? new Date(md.retention.retainUntilTime) : undefined;
      if (current && current >= until) return;
      const mode = md.retention?.mode === 'Locked' ? 'Locked' : this.mode;
      try {
        await store.file(store.loc.key(name)).setMetadata({ retention: { mode, retainUntilTime: until.toISOString() } });
      } catch (e) {
        throw store.mapError(e, 'extend retention', name, store.loc.key(name), sig);
      }
    }, { concurrency: store.settings.deleteConcurrency, ...(signal === undefined ? {} : { signal }) });
  }

  async retentionOf(names: string[], now: Date, signal: Signal): Promise<Map<string, FileRetention>> {
    const out = new Map<string, FileRetention>();
    await fanOut(names, async (name, _i, sig) => {
      let md;
      try {
        md = await this.metadataOf(name, sig);
      } catch (e) {
        if (statusOf(e) === 404) return;
        throw e;
      }
      const r = md && gcsRetentionInForce(md, now);
      if (r) out.set(name, r);
    }, { concurrency: this.store.settings.deleteConcurrency, ...(signal === undefined ? {} : { signal }) });
    return out;
  }

  /** After a 403 on delete: what keeps the object, if a retention or hold does (else it is a permission problem). */
  async whyRefused(name: string, signal: Signal): Promise<FileRetention | undefined> {
    const md = await this.metadataOf(name, signal).catch(() => undefined);
    return md && gcsRetentionInForce(md, new Date());
  }
}
