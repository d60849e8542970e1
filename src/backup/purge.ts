// purge: a retention policy (retention.ts) applied to the catalog, then every backup it drops
// deleted (meta first) and one GC pass over what they leave. Corrupt backups are reported and
// kept: the policy does not count them and GC keeps the files they name.
import { throwIfAborted } from '../errors.ts';
import type { EngineContext } from './context.ts';
import { deleteBackupsKeepingReaders } from './gc.ts';
import type { DeleteResult } from './types.ts';
import { splitRetainedBackups, type RetainedBackup } from './locked-objects.ts';
import { metaName } from './layout.ts';
import { applyRetentionPolicy, type KeepReason, type RetentionPlan, type RetentionPolicy } from './retention.ts';

export interface PurgeOptions {
  /** Plan only: nothing is deleted. */
  dryRun?: boolean;
  /** Seconds since the epoch; timestamps after it are "in the future" (default: the clock). */
  now?: number;
  signal?: AbortSignal;
}

export interface PurgeResult {
  /** Newest first, with every rule that keeps each one. */
  kept: { id: number; timestamp: number; reasons: KeepReason[] }[];
  /** Newest first: deleted, or with dryRun the ones that would be. */
  removed: { id: number; timestamp: number }[];
  /** Not counted, not removed; timestamp NaN when the meta file's first line is unreadable. */
  corrupt: { id: number; timestamp: number; error: string }[];
  /** Dropped by the policy but kept because a live restore or verify reads them. */
  keptForReaders: DeleteResult['keptForReaders'];
  /** Dropped by the policy but kept whole because files their deletion would remove are under retention. */
  keptRetained: (RetainedBackup & { timestamp: number })[];
  /** The plan as retention.ts returns it (for formatRetentionPlan). */
  plan: RetentionPlan;
}

/** The first number of a meta file (after an optional schema_version line); NaN if unreadable. */
async function metaTimestamp(ctx: EngineContext, id: number, signal?: AbortSignal): Promise<number> {
  try {
    let text = '';
    for await (const chunk of await ctx.env.openRead(metaName(id), { signal })) {
      text += Buffer.from(chunk).toString('latin1');
      if (text.length >= 256) break;
    }
    const line = text.split('\n').find((l) => /^[0-9]+$/.test(l));
    return line === undefined ? NaN : Number(line);
  } catch {
    return NaN;
  }
}

export async function purgeBackups(ctx: EngineContext, policy: RetentionPolicy, opts: PurgeOptions = {}): Promise<PurgeResult> {
  const { catalog } = ctx;
  const valid = [...catalog.backups.values()].map((b) => ({ id: b.id, timestamp: b.timestamp }));
  const plan = applyRetentionPolicy(valid, policy, { now: opts.now });
  const corrupt: PurgeResult['corrupt'] = [];
  for (const [id, error] of [...catalog.corrupt.entries()].sort((a, b) => b[0] - a[0])) {
    corrupt.push({ id, timestamp: await metaTimestamp(ctx, id, opts.signal), error: error.message });
  }
  plan.corrupt = corrupt.map(({ id, timestamp }) => ({ id, timestamp }));
  let keptForReaders: DeleteResult['keptForReaders'] = [];
  let keptRetained: PurgeResult['keptRetained'] = [];
  let removed = plan.remove;
  if (!opts.dryRun && plan.remove.length > 0) {
    throwIfAborted(opts.signal);
    const r = await deleteBackupsKeepingReaders(ctx, plan.remove.map((b) => b.id), opts.signal);
    keptForReaders = r.keptForReaders;
    const ts = new Map(plan.remove.map((b) => [b.id, b.timestamp]));
    keptRetained = r.retained.map((b) => ({ ...b, timestamp: ts.get(b.id)! }));
    const gone = new Set(r.deleted);
    removed = plan.remove.filter((b) => gone.has(b.id));
    plan.remove = removed; // what the text shows: backups kept for readers or retention are listed apart
  } else if (plan.remove.length > 0) {
    // A dry run asks the store too: which backups the purge would have to keep for retention.
    const split = await splitRetainedBackups(ctx, plan.remove.map((b) => b.id), opts.signal);
    const ts = new Map(plan.remove.map((b) => [b.id, b.timestamp]));
    keptRetained = split.retained.map((b) => ({ ...b, timestamp: ts.get(b.id)! }));
    const go = new Set(split.deletable);
    removed = plan.remove.filter((b) => go.has(b.id));
    plan.remove = removed;
  }
  return { kept: plan.keep, removed, corrupt, keptForReaders, keptRetained, plan };
}
