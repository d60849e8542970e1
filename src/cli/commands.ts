// One handler per command: reads its flags, runs the engine, prints the result, and returns the
// exit code with the figures the metrics file reports.
import { BackupEngine, type BackupEngineOptions, type RestoreMode, type VerifyResult } from '../backup/engine.ts';
import { listBackupsIndexed } from '../backup/list-index.ts';
import { describeKeepReason, formatRetentionPlan } from '../backup/retention.ts';
import { RESTORE_MODES } from '../backup/types.ts';
import { DEFAULT_STALE_AFTER, isStale, listLocks, type LockInfo } from '../backup/writer-lock.ts';
import type { BackupEnv } from '../env.ts';
import { bytesOption, durationOption, oneBackup, required, stringOption, UsageError, wholeNumber, type Command, type OptionValues } from './args.ts';
import { runCheckpointCmd } from './checkpoint-cmd.ts';
import { show } from './show-cmd.ts';
import { describeRetained, requireRetention, type RetainedFile } from '../backup/locked-objects.ts';
import { runCheck } from './check-cmd.ts';
import { policyFromFlags } from './retention-flags.ts';
import type { RunStats } from './metrics.ts';
import { EXIT, exitCodeFor, printResult } from './output.ts';
import type { ProgressReporter } from './progress.ts';

export interface CommandContext {
  command: Command;
  values: OptionValues;
  backupDir: string;
  /** Opens the backup dir's env (once): after the flags are checked, so a usage error touches nothing. */
  openEnv(): Promise<BackupEnv>;
  json: boolean;
  quiet: boolean;
  /** Takes the --json document, printed when the command has ended (see printResult). */
  deferJson?: (value: unknown) => void;
  signal: AbortSignal;
  progress: ProgressReporter;
  /** Opens the engine on env; the caller closes it (and with it env) when the command ends. */
  openEngine(opts: EngineOpenOptions): Promise<BackupEngine>;
}

export interface CommandResult { code: number; stats: RunStats }

export type EngineOpenOptions = Omit<BackupEngineOptions, 'env'> & { signal?: AbortSignal };

type Handler = (ctx: CommandContext) => Promise<CommandResult>;

/** What the user should know though the command goes on (an unprotected read): on stderr, even with --quiet or --json. */
const warn = (message: string) => { process.stderr.write(`cairn: warning: ${message}\n`); };

const ok = (stats: RunStats = {}): CommandResult => ({ code: EXIT.ok, stats });

/** What every engine-opening command shares: threads, sync, the held writer lock. */
function engineOptions(ctx: CommandContext): EngineOpenOptions {
  const readOnly = ctx.command === 'list' || ctx.command === 'verify' || ctx.command === 'restore';
  // --no-sync: skip fsync of written files and directories (RocksDB's sync = false): faster,
  // but a power loss right after the command may lose what it wrote.
  // One command, one engine: a writing command holds the lock from open to close.
  return {
    readOnly,
    maxBackgroundOperations: wholeNumber(stringOption(ctx.values, 'threads'), '--threads', 1) ?? 4,
    sync: ctx.values['no-sync'] !== true,
    lock: { hold: true },
    signal: ctx.signal,
  };
}

const backup: Handler = async (ctx) => {
  const v = ctx.values;
  const db = required(stringOption(v, 'db'), '--db');
  const naming = stringOption(v, 'naming') ?? 'session-id';
  if (naming !== 'session-id' && naming !== 'legacy') throw new UsageError(`--naming is session-id or legacy, got ${JSON.stringify(naming)}`);
  if (v['backup-log-files'] && v['no-backup-log-files']) throw new UsageError('--backup-log-files and --no-backup-log-files contradict each other');
  const rate = bytesOption(stringOption(v, 'rate-limit'), '--rate-limit', { rate: true });
  const schema = stringOption(v, 'schema-version') ?? '1';
  if (schema !== '1' && schema !== '2') throw new UsageError(`--schema-version is 1 or 2, got ${JSON.stringify(schema)}`);
  const opts = engineOptions(ctx);
  const checkpointCmd = stringOption(v, 'checkpoint-cmd');
  const retainFor = retainOption(stringOption(v, 'retain'));
  // Before the engine opens (its writer lock is a write): a bucket without Object Lock is refused
  // with nothing written.
  if (retainFor !== undefined) await requireRetention(await ctx.openEnv(), ctx.signal);
  const engine = await ctx.openEngine({
    ...opts,
    shareTableFiles: !v['no-share-table-files'],
    naming: naming === 'legacy' ? 'legacy-crc32c-size' : 'session-id',
    // Live WAL files hold writes not yet in any table file: backing them up is the default,
    // as in RocksDB, so that nothing acknowledged is lost.
    backupLogFiles: !v['no-backup-log-files'],
    backupRateLimit: rate ?? 0,
    schemaVersion: schema === '2' ? 2 : 1,
  });
  const r = await engine.createBackup(db, {
    signal: ctx.signal,
    walDir: stringOption(v, 'wal-dir'),
    appMetadata: stringOption(v, 'metadata'),
    onProgress: ctx.progress.onProgress,
    checkpoint: checkpointCmd ? (dir, signal) => runCheckpointCmd(checkpointCmd, db, dir, signal) : undefined,
    // Counted from when the backup starts (whole seconds: some stores keep no more).
    ...(retainFor === undefined ? {} : { retainUntil: new Date(Math.ceil((Date.now() + retainFor) / 1000) * 1000) }),
  });
  const { retainUntil } = r;
  printResult(ctx, {
    id: r.id, size: r.size, numFiles: r.numFiles, copiedBytes: r.copiedBytes, sharedBytesReused: r.sharedBytesReused,
    filesKept: r.filesKept, bytesReused: r.bytesReused, filesResumed: r.filesResumed, bytesResumed: r.bytesResumed,
    ...(retainUntil ? { retainUntil: retainUntil.toISOString() } : {}),
  }, `backup ${r.id} created: ${r.numFiles} files, ${r.size} bytes (${r.copiedBytes} copied, ${r.sharedBytesReused} shared with earlier backups` +
    (r.filesResumed > 0 ? `, ${r.bytesResumed} in ${r.filesResumed} files stored by an interrupted backup and reused` : '') + ')' +
    (retainUntil ? `; retained until ${retainUntil.toISOString()}` : ''));
  return ok({ bytesCopied: r.copiedBytes, bytesReused: r.bytesReused, files: r.numFiles });
};

/** --retain DURATION in milliseconds. */
function retainOption(v: string | undefined): number | undefined {
  const ms = durationOption(v, '--retain');
  if (ms !== undefined && ms < 1000) throw new UsageError(`--retain takes a duration of at least 1s, got ${JSON.stringify(v)}`);
  return ms;
}

const retainedJson = (f: RetainedFile) => ({ ...f, until: f.until?.toISOString() ?? null });

const restore: Handler = async (ctx) => {
  const v = ctx.values;
  const db = required(stringOption(v, 'db'), '--db');
  const rate = bytesOption(stringOption(v, 'rate-limit'), '--rate-limit', { rate: true });
  const backupId = wholeNumber(stringOption(v, 'id'), '--id', 1);
  // The CLI keeps matching files by default: restoring again over an earlier restore (or a killed
  // one) then downloads only what changed. The library keeps RocksDB's default, purge-all.
  const mode = stringOption(v, 'mode') ?? 'keep-latest-session-files';
  if (!(RESTORE_MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode is one of ${RESTORE_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  // Only the manifest restored is read (the latest valid one without --id), not every backup's.
  const engine = await ctx.openEngine({ ...engineOptions(ctx), ...oneBackup(backupId), restoreRateLimit: rate ?? 0 });
  const info = await engine.restore({
    signal: ctx.signal,
    backupId,
    dbDir: db,
    walDir: stringOption(v, 'wal-dir'),
    keepLogFiles: v['keep-log-files'] === true,
    checkSpace: v['no-space-check'] !== true,
    mode: mode as RestoreMode,
    onProgress: ctx.progress.onProgress,
    onWarning: warn,
  });
  printResult(
    ctx,
    { id: info.id, size: info.size, numFiles: info.numFiles, dbDir: db, filesKept: info.filesKept, bytesReused: info.bytesReused },
    `restored backup ${info.id} (${info.numFiles} files, ${info.size} bytes) to ${db}` +
      (info.filesKept > 0 ? `; ${info.filesKept} files (${info.bytesReused} bytes) already there were kept` : ''),
  );
  return ok({ bytesCopied: info.size - info.bytesReused, bytesReused: info.bytesReused, files: info.numFiles });
};

const list: Handler = async (ctx) => {
  // From the list index when it matches the directory (one listing and one small read instead of
  // every manifest), else from the manifests, rebuilding the index (list-index.ts).
  const listed = await listBackupsIndexed(await ctx.openEnv(), { signal: ctx.signal });
  const rows = [
    ...listed.backups.map((b) => ({ id: b.id, timestamp: b.timestamp, size: b.size, numFiles: b.numFiles, appMetadata: b.appMetadata.toString('utf8'), corrupt: false })),
    ...listed.corrupt.map((c) => ({ id: c.id, timestamp: null, size: null, numFiles: null, appMetadata: null, corrupt: true, error: c.error.message })),
  ].sort((a, b) => a.id - b.id);
  const text = rows.length === 0 ? `no backups in ${ctx.backupDir}` : rows.map((r) => r.corrupt
    ? `${String(r.id).padStart(6)}  CORRUPT  ${(r as { error: string }).error}`
    : `${String(r.id).padStart(6)}  ${new Date(r.timestamp! * 1000).toISOString()}  ${String(r.size).padStart(14)} bytes  ${String(r.numFiles).padStart(5)} files${r.appMetadata ? `  ${JSON.stringify(r.appMetadata)}` : ''}`).join('\n');
  // For a person reading the list: whether a reader or writer is at work right now. The JSON
  // keeps its shape (an array) unless --locks asks for the holders too.
  const wantLocks = ctx.values.locks === true;
  const all = wantLocks || !(ctx.json || ctx.quiet) ? await listLocks(await ctx.openEnv(), { signal: ctx.signal }) : [];
  const shown = wantLocks ? all : all.filter((l) => !isStale(l, DEFAULT_STALE_AFTER));
  const describe = (l: LockInfo) =>
    `a ${l.kind === 'read' ? `reader of backup ${l.backupIds.join(', ')}` : 'writer'} ${isStale(l, DEFAULT_STALE_AFTER) ? 'left a stale lock' : 'is at work'}: ${l.host} pid ${l.pid}, since ${l.created}`;
  const locks = shown.map((l) => ({ kind: l.kind, host: l.host, pid: l.pid, backupIds: l.backupIds, created: l.created, refreshed: l.refreshed, readable: l.readable, stale: isStale(l, DEFAULT_STALE_AFTER), name: l.name }));
  printResult(ctx, wantLocks ? { backups: rows, locks } : rows, [text, ...shown.map(describe)].join('\n'));
  return ok();
};

const verify: Handler = async (ctx) => {
  const v = ctx.values;
  if (v.checksum && v['server-checksum']) throw new UsageError('--checksum and --server-checksum: choose one');
  const id = wholeNumber(stringOption(v, 'id'), '--id', 1);
  const engine = await ctx.openEngine({ ...engineOptions(ctx), ...(id === undefined ? {} : oneBackup(id)) });
  // One pass over every backup: each directory listed once (the open's listing, just taken,
  // gives the sizes), each distinct file checked once, its problems reported for every backup
  // that uses it.
  const all = await engine.verifyBackups(id !== undefined ? [id] : 'all', { signal: ctx.signal, checksum: v.checksum === true, serverChecksum: v['server-checksum'] === true, sizesFromOpen: true, onProgress: ctx.progress.onProgress, onWarning: warn });
  const ids = all.map((r) => r.id);
  const results: (VerifyResult & { ok: boolean; error?: string })[] = [];
  let code: number = EXIT.ok;
  for (const r of all) {
    const { error, ...rest } = r;
    if (error) {
      results.push({ ...rest, ok: false, error: error.message });
      code = Math.max(code, exitCodeFor(error));
      continue;
    }
    results.push({ ...rest, ok: r.problems.length === 0 });
    for (const p of r.problems) code = Math.max(code, p.code === 'NotFound' ? EXIT.notFound : p.code === 'Corruption' ? EXIT.corruption : EXIT.error);
  }
  if (ids.length === 0 && id === undefined) code = EXIT.ok;
  const text = ids.length === 0 ? `no backups in ${ctx.backupDir}` : results.map((r) => r.ok
    ? `backup ${r.id}: OK (${r.filesChecked} files, ${r.bytesChecked} bytes)`
    : `backup ${r.id}: FAILED${r.error ? `: ${r.error}` : ''}${r.problems.map((p) => `\n  ${p.code}: ${p.message}`).join('')}`).join('\n');
  printResult(ctx, results, text, code);
  const sum = (f: (r: VerifyResult) => number) => results.reduce((n, r) => n + f(r), 0);
  return { code, stats: { bytesChecked: sum((r) => r.bytesChecked), files: sum((r) => r.filesChecked) } };
};

const del: Handler = async (ctx) => {
  const id = required(wholeNumber(stringOption(ctx.values, 'id'), '--id', 1), '--id');
  const engine = await ctx.openEngine(engineOptions(ctx));
  await engine.deleteBackup(id, { signal: ctx.signal });
  printResult(ctx, { deleted: [id] }, `deleted backup ${id}`);
  return ok({ backupsDeleted: 1 });
};

const purge: Handler = async (ctx) => {
  const policy = policyFromFlags(ctx.values);
  const dryRun = ctx.values['dry-run'] === true;
  // A dry run reads only: no writer lock, no clean-up on open.
  const engine = await ctx.openEngine({ ...engineOptions(ctx), ...(dryRun ? { readOnly: true } : {}) });
  const r = await engine.purge(policy, { dryRun, signal: ctx.signal });
  const deleted = r.removed.map((b) => b.id).sort((a, b) => a - b);
  const json = {
    dryRun,
    deleted: dryRun ? [] : deleted,
    kept: r.kept.map((k) => ({ id: k.id, timestamp: k.timestamp, reasons: k.reasons.map(describeKeepReason) })),
    removed: r.removed,
    corrupt: r.corrupt.map((c) => ({ ...c, timestamp: Number.isFinite(c.timestamp) ? c.timestamp : null })),
    keptForReaders: r.keptForReaders.map((k) => k.id),
    keptRetained: r.keptRetained.map((k) => ({ id: k.id, timestamp: k.timestamp, until: k.until?.toISOString() ?? null, files: k.files.map(retainedJson) })),
  };
  const readers = r.keptForReaders.map((k) => `kept backup ${k.id}: being read by ${k.readers.join('; ')}`);
  const retained = r.keptRetained.map((k) => `${dryRun ? 'would keep' : 'kept'} backup ${k.id}: ${describeRetained(k)}`);
  printResult(ctx, json, [formatRetentionPlan(r.plan, policy, { dryRun }), ...readers, ...retained].join('\n'));
  return ok({ backupsDeleted: dryRun ? 0 : deleted.length });
};

const gc: Handler = async (ctx) => {
  const grace = durationOption(stringOption(ctx.values, 'grace'), '--grace');
  // The writable open collects too: with the same grace, so `--grace 0` removes everything now.
  const engine = await ctx.openEngine({ ...engineOptions(ctx), ...(grace === undefined ? {} : { gcGraceMs: grace }) });
  const r = await engine.garbageCollect({ signal: ctx.signal });
  // A writable open already collected; report both passes.
  const files = engine.cleanedOnOpen.deleted.length + r.deleted.length;
  const uploads = engine.cleanedOnOpen.abortedUploads + r.abortedUploads;
  // The second pass asked the store again: its answer is the current one.
  const retained = r.retained ?? [];
  const kept = retained.map((f) => `kept ${f.file}${f.backupId !== undefined ? ` (backup ${f.backupId})` : ''}: under retention ${f.until ? `until ${f.until.toISOString()}` : '(legal hold)'} (${f.mode})`);
  const resumable = r.keptForResume;
  printResult(ctx, { deletedFiles: files, abortedUploads: uploads, keptForResume: resumable, retained: retained.map(retainedJson) },
    [`removed ${files} unreferenced files${uploads ? `, aborted ${uploads} unfinished uploads` : ''}` +
      (resumable ? `; kept ${resumable} shared files an interrupted backup stored, for a resumed run (younger than the grace period; --grace 0 removes them)` : '') +
      (retained.length ? `; ${retained.length} kept under retention` : ''), ...kept].join('\n'));
  return ok({ files });
};

// Stale locks (not refreshed for 30 minutes, or left by a process of this host that is gone)
// are removed; a live one only with --all, the user's word that its writer is gone.
const unlock: Handler = async (ctx) => {
  const staleAfter = durationOption(stringOption(ctx.values, 'stale-after'), '--stale-after') ?? DEFAULT_STALE_AFTER;
  const env = await ctx.openEnv();
  const locks = await listLocks(env);
  const removed = ctx.values.all ? locks : locks.filter((l) => isStale(l, staleAfter));
  const kept = locks.filter((l) => !removed.includes(l));
  await env.delete(removed.map((l) => l.name));
  const describe = (l: LockInfo) => `${l.name} (${l.host} pid ${l.pid}, since ${l.created}, last refreshed ${l.refreshed})`;
  const text = [
    ...removed.map((l) => `removed ${describe(l)}`),
    ...kept.map((l) => `kept live lock ${describe(l)}: --all removes it, if its writer is really gone`),
  ].join('\n');
  printResult(ctx, { removed, kept }, text || `no locks in ${ctx.backupDir}`);
  return ok({ files: removed.length });
};

export const HANDLERS: Record<Command, Handler> = { backup, restore, list, show, verify, delete: del, purge, gc, unlock, check: runCheck };
