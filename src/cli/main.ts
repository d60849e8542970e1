// The cairn command line. Its flags, JSON output and exit codes are a contract other tools
// script against: change them only compatibly.
import { parseArgs } from 'node:util';
import dotenv from 'dotenv';
import * as path from 'node:path';
import { BackupEngine, type BackupEngineOptions, type ProgressEvent, type VerifyResult } from '../backup/engine.ts';
import { openBackupEnv } from '../open-env.ts';
import { DEFAULT_STALE_AFTER, isStale, listLocks, type LockInfo } from '../backup/writer-lock.ts';
import { CairnError, isCairnError } from '../errors.ts';

export const EXIT = { ok: 0, error: 1, usage: 2, corruption: 3, notFound: 4, locked: 5 } as const;
/** A command stopped by a signal exits as shells report a process that signal ended: 128 + its number. */
const signalExit = (sig: NodeJS.Signals) => 128 + (sig === 'SIGINT' ? 2 : 15);

const USAGE = `usage:
  cairn backup  --db DIR --backup-dir URL [--wal-dir DIR] [--metadata STR] [--threads N] [--rate-limit BYTES]
                [--no-share-table-files] [--naming session-id|legacy] [--[no-]backup-log-files]
                [--checkpoint-cmd CMD] [--no-sync] [--json]
  cairn restore --backup-dir URL --db DIR [--wal-dir DIR] [--id N] [--keep-log-files] [--threads N]
                [--rate-limit BYTES] [--no-sync] [--no-space-check] [--json]
  cairn list    --backup-dir URL [--json]
  cairn verify  --backup-dir URL [--id N] [--checksum | --server-checksum] [--threads N] [--json]
  cairn delete  --backup-dir URL --id N
  cairn purge   --backup-dir URL --keep N
  cairn gc      --backup-dir URL
  cairn unlock  --backup-dir URL [--all]   (removes stale writer locks; --all: every lock)

URL: a path, file://PATH, s3://bucket/prefix or gs://bucket/prefix. CAIRN_BACKUP_DIR may stand
for --backup-dir; a .env file in the working directory is read.
Writing commands (backup, delete, purge, gc) hold the directory's writer lock (locks/) while
they run; a lock not refreshed for 30 minutes is stale and removed by the next writer.
exit codes: 0 ok, 1 error, 2 usage, 3 corruption or checksum mismatch, 4 not found,
5 locked by another writer, 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM, nothing published`;

class UsageError extends Error {}

const COMMON = {
  'backup-dir': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const SPECS = {
  backup: {
    ...COMMON,
    db: { type: 'string' },
    'wal-dir': { type: 'string' },
    metadata: { type: 'string' },
    threads: { type: 'string' },
    'rate-limit': { type: 'string' },
    'no-share-table-files': { type: 'boolean', default: false },
    naming: { type: 'string', default: 'session-id' },
    'backup-log-files': { type: 'boolean' },
    'no-backup-log-files': { type: 'boolean' },
    'checkpoint-cmd': { type: 'string' },
    'no-sync': { type: 'boolean', default: false },
  },
  restore: {
    ...COMMON,
    db: { type: 'string' },
    'wal-dir': { type: 'string' },
    id: { type: 'string' },
    'keep-log-files': { type: 'boolean', default: false },
    threads: { type: 'string' },
    'rate-limit': { type: 'string' },
    'no-sync': { type: 'boolean', default: false },
    'no-space-check': { type: 'boolean', default: false },
  },
  list: { ...COMMON },
  verify: {
    ...COMMON,
    id: { type: 'string' },
    checksum: { type: 'boolean', default: false },
    'server-checksum': { type: 'boolean', default: false },
    threads: { type: 'string' },
  },
  delete: { ...COMMON, id: { type: 'string' } },
  purge: { ...COMMON, keep: { type: 'string' } },
  gc: { ...COMMON },
  unlock: { ...COMMON, all: { type: 'boolean' } },
} as const;

type Command = keyof typeof SPECS;

function wholeNumber(v: string | undefined, flag: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw new UsageError(`${flag} takes a whole number >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

function required<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

/** A one-line progress bar on a terminal; nothing when stderr is piped. */
function progressPrinter(enabled: boolean): ((ev: ProgressEvent) => void) | undefined {
  if (!enabled) return undefined;
  let last = 0;
  let ended = false;
  return (ev) => {
    const now = Date.now();
    if (ended || (now - last < 100 && ev.filesDone !== ev.filesTotal)) return;
    last = now;
    const frac = ev.bytesTotal > 0 ? ev.bytesDone / ev.bytesTotal : 1;
    const width = 30;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const mb = (n: number) => (n / 1048576).toFixed(1);
    process.stderr.write(`\r${ev.operation} ${ev.backupId} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(ev.bytesDone)}/${mb(ev.bytesTotal)} MiB ${ev.filesDone}/${ev.filesTotal} files`);
    if (ev.filesDone === ev.filesTotal) {
      process.stderr.write('\n');
      ended = true;
    }
  };
}

/** Runs the user's checkpoint command with CAIRN_DB_DIR and CAIRN_CHECKPOINT_DIR set. */
async function runCheckpointCmd(cmd: string, dbDir: string, checkpointDir: string, signal?: AbortSignal): Promise<void> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', cmd], {
      env: { ...process.env, CAIRN_DB_DIR: path.resolve(dbDir), CAIRN_CHECKPOINT_DIR: checkpointDir },
      stdio: ['ignore', 'ignore', 'pipe'],
      signal,
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      if (code === 0) resolve();
      else reject(new Error(`--checkpoint-cmd exited ${code ?? sig}: ${stderr.trim()}`));
    });
  });
}

function out(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n' : text + (text.endsWith('\n') || text === '' ? '' : '\n'));
}

function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage;
  if (isCairnError(e, 'Corruption')) return EXIT.corruption;
  if (isCairnError(e, 'NotFound')) return EXIT.notFound;
  if (isCairnError(e, 'InvalidArgument')) return EXIT.usage;
  if (isCairnError(e, 'Locked')) return EXIT.locked;
  return EXIT.error;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd) {
    process.stderr.write(USAGE + '\n');
    return EXIT.usage;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return EXIT.ok;
  }
  if (!(cmd in SPECS)) {
    process.stderr.write(`cairn: unknown command ${JSON.stringify(cmd)}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const command = cmd as Command;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: rest, options: SPECS[command], strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    process.stderr.write(`cairn ${command}: ${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return EXIT.ok;
  }
  const json = values.json === true;
  const tty = !json && process.stderr.isTTY === true;
  let engine: BackupEngine | undefined;
  // Ctrl-C or a TERM stops the command the way an AbortSignal does: uploads in flight are
  // cancelled and aborted, nothing is published, the writer lock is released. A second one
  // ends the process at once.
  const stop = new AbortController();
  const signal = stop.signal;
  let stoppedBy: NodeJS.Signals = 'SIGINT';
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal.aborted) process.exit(signalExit(sig));
    stoppedBy = sig;
    process.stderr.write(`\ncairn ${command}: ${sig}: stopping cleanly (send it again to end at once)\n`);
    stop.abort(new CairnError('Aborted', `stopped by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const backupDir = required((values['backup-dir'] as string | undefined) ?? process.env.CAIRN_BACKUP_DIR, '--backup-dir');
    const threads = wholeNumber(values.threads as string | undefined, '--threads', 1);
    const rate = wholeNumber(values['rate-limit'] as string | undefined, '--rate-limit', 0);
    if (command === 'unlock') {
      // Stale locks (not refreshed for 30 minutes, or left by a process of this host that is
      // gone) are removed; a live one only with --all, the user's word that its writer is gone.
      const env = await openBackupEnv(backupDir);
      try {
        const locks = await listLocks(env);
        const removed = values.all ? locks : locks.filter((l) => isStale(l, DEFAULT_STALE_AFTER));
        const kept = locks.filter((l) => !removed.includes(l));
        await env.delete(removed.map((l) => l.name));
        const describe = (l: LockInfo) => `${l.name} (${l.host} pid ${l.pid}, since ${l.created}, last refreshed ${l.refreshed})`;
        const text = [
          ...removed.map((l) => `removed ${describe(l)}`),
          ...kept.map((l) => `kept live lock ${describe(l)}: --all removes it, if its writer is really gone`),
        ].join('\n');
        out(json, { removed, kept }, text || `no locks in ${backupDir}`);
        return EXIT.ok;
      } finally {
        await env.close();
      }
    }
    const readOnly = command === 'list' || command === 'verify' || command === 'restore';
    // --no-sync: skip fsync of written files and directories (RocksDB's sync = false): faster,
    // but a power loss right after the command may lose what it wrote.
    // One command, one engine: a writing command holds the lock from open to close.
    const opts: BackupEngineOptions = { env: await openBackupEnv(backupDir), readOnly, maxBackgroundOperations: threads ?? 4, sync: values['no-sync'] !== true, lock: { hold: true } };
    if (command === 'backup') {
      const db = required(values.db as string | undefined, '--db');
      const naming = values.naming as string;
      if (naming !== 'session-id' && naming !== 'legacy') throw new UsageError(`--naming is session-id or legacy, got ${JSON.stringify(naming)}`);
      if (values['backup-log-files'] && values['no-backup-log-files']) throw new UsageError('--backup-log-files and --no-backup-log-files contradict each other');
      engine = await BackupEngine.open({
        ...opts,
        signal,
        shareTableFiles: !values['no-share-table-files'],
        naming: naming === 'legacy' ? 'legacy-crc32c-size' : 'session-id',
        // Live WAL files hold writes not yet in any table file: backing them up is the default,
        // as in RocksDB, so that nothing acknowledged is lost.
        backupLogFiles: !values['no-backup-log-files'],
        backupRateLimit: rate ?? 0,
      });
      const r = await engine.createBackup(db, {
        signal,
        walDir: values['wal-dir'] as string | undefined,
        appMetadata: values.metadata as string | undefined,
        onProgress: progressPrinter(tty),
        checkpoint: values['checkpoint-cmd'] ? (dir, signal) => runCheckpointCmd(values['checkpoint-cmd'] as string, db, dir, signal) : undefined,
      });
      out(json, { id: r.id, size: r.size, numFiles: r.numFiles, copiedBytes: r.copiedBytes, sharedBytesReused: r.sharedBytesReused },
        `backup ${r.id} created: ${r.numFiles} files, ${r.size} bytes (${r.copiedBytes} copied, ${r.sharedBytesReused} shared with earlier backups)`);
      return EXIT.ok;
    }
    if (command === 'restore') {
      const db = required(values.db as string | undefined, '--db');
      engine = await BackupEngine.open({ ...opts, restoreRateLimit: rate ?? 0, signal });
      const info = await engine.restore({
        signal,
        backupId: wholeNumber(values.id as string | undefined, '--id', 1),
        dbDir: db,
        walDir: values['wal-dir'] as string | undefined,
        keepLogFiles: values['keep-log-files'] === true,
        checkSpace: values['no-space-check'] !== true,
        onProgress: progressPrinter(tty),
      });
      out(json, { id: info.id, size: info.size, numFiles: info.numFiles, dbDir: db }, `restored backup ${info.id} (${info.numFiles} files, ${info.size} bytes) to ${db}`);
      return EXIT.ok;
    }
    engine = await BackupEngine.open({ ...opts, signal });
    if (command === 'list') {
      const rows = [
        ...engine.listBackups().map((b) => ({ id: b.id, timestamp: b.timestamp, size: b.size, numFiles: b.numFiles, appMetadata: b.appMetadata.toString('utf8'), corrupt: false })),
        ...engine.listCorruptedBackups().map((c) => ({ id: c.id, timestamp: null, size: null, numFiles: null, appMetadata: null, corrupt: true, error: c.error.message })),
      ].sort((a, b) => a.id - b.id);
      const text = rows.length === 0 ? `no backups in ${backupDir}` : rows.map((r) => r.corrupt
        ? `${String(r.id).padStart(6)}  CORRUPT  ${(r as { error: string }).error}`
        : `${String(r.id).padStart(6)}  ${new Date(r.timestamp! * 1000).toISOString()}  ${String(r.size).padStart(14)} bytes  ${String(r.numFiles).padStart(5)} files${r.appMetadata ? `  ${JSON.stringify(r.appMetadata)}` : ''}`).join('\n');
      // For a person reading the list: whether a writer is at work right now (JSON keeps its shape).
      const writers = json ? [] : (await listLocks(opts.env, { signal })).filter((l) => !isStale(l, DEFAULT_STALE_AFTER));
      out(json, rows, [text, ...writers.map((l) => `a writer is at work: ${l.host} pid ${l.pid}, since ${l.created}`)].join('\n'));
      return EXIT.ok;
    }
    if (command === 'verify') {
      if (values.checksum && values['server-checksum']) throw new UsageError('--checksum and --server-checksum: choose one');
      const id = wholeNumber(values.id as string | undefined, '--id', 1);
      const ids = id !== undefined ? [id] : [...engine.listBackups().map((b) => b.id), ...engine.listCorruptedBackups().map((c) => c.id)].sort((a, b) => a - b);
      const results: (VerifyResult & { ok: boolean; error?: string })[] = [];
      let code: number = EXIT.ok;
      // Table files shared by several backups are checked once, not once per backup.
      const checkedSharedFiles = new Map();
      for (const bid of ids) {
        try {
          const r = await engine.verifyBackup(bid, { signal, checksum: values.checksum === true, serverChecksum: values['server-checksum'] === true, checkedSharedFiles, onProgress: progressPrinter(tty) });
          results.push({ ...r, ok: r.problems.length === 0 });
          for (const p of r.problems) code = Math.max(code, p.code === 'NotFound' ? EXIT.notFound : p.code === 'Corruption' ? EXIT.corruption : EXIT.error);
        } catch (e) {
          if (!(e instanceof CairnError) || signal.aborted) throw e;
          results.push({ id: bid, filesChecked: 0, bytesChecked: 0, problems: [], ok: false, error: e.message });
          code = Math.max(code, exitCodeFor(e));
        }
      }
      if (ids.length === 0 && id === undefined) code = EXIT.ok;
      const text = ids.length === 0 ? `no backups in ${backupDir}` : results.map((r) => r.ok
        ? `backup ${r.id}: OK (${r.filesChecked} files, ${r.bytesChecked} bytes)`
        : `backup ${r.id}: FAILED${r.error ? `: ${r.error}` : ''}${r.problems.map((p) => `\n  ${p.code}: ${p.message}`).join('')}`).join('\n');
      out(json, results, text);
      return code;
    }
    if (command === 'delete') {
      const id = required(wholeNumber(values.id as string | undefined, '--id', 1), '--id');
      await engine.deleteBackup(id, { signal });
      out(json, { deleted: [id] }, `deleted backup ${id}`);
      return EXIT.ok;
    }
    if (command === 'purge') {
      const keep = required(wholeNumber(values.keep as string | undefined, '--keep', 0), '--keep');
      const deleted = await engine.purgeOldBackups(keep, { signal });
      out(json, { deleted }, deleted.length ? `deleted backups ${deleted.join(', ')}` : 'nothing to purge');
      return EXIT.ok;
    }
    if (command === 'gc') {
      const r = await engine.garbageCollect({ signal });
      // A writable open already collected; report both passes.
      const files = engine.cleanedOnOpen.deleted.length + r.deleted.length;
      const uploads = engine.cleanedOnOpen.abortedUploads + r.abortedUploads;
      out(json, { deletedFiles: files, abortedUploads: uploads }, `removed ${files} unreferenced files${uploads ? `, aborted ${uploads} unfinished uploads` : ''}`);
      return EXIT.ok;
    }
    throw new UsageError(`unknown command ${command}`);
  } catch (e) {
    const code = signal.aborted ? signalExit(stoppedBy) : exitCodeFor(e);
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`cairn ${command}: ${msg}\n`);
    if (code === EXIT.usage && e instanceof UsageError) process.stderr.write(USAGE + '\n');
    if (json) process.stdout.write(JSON.stringify({ error: { code: e instanceof CairnError ? e.code : 'Error', message: msg } }) + '\n');
    return code;
  } finally {
    await engine?.close().catch(() => {});
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The process entry point: reads .env, runs the command, sets the exit code. */
export async function run(): Promise<void> {
  // .env is read before anything looks at the environment; a missing file is fine.
  dotenv.config({ quiet: true });
  process.exitCode = await main(process.argv.slice(2));
}

// Run directly (as the tests do), this module is an entry point too: it wires the providers in.
if (import.meta.main) {
  const { registerBuiltinProviders } = await import('../../providers/builtin.ts');
  registerBuiltinProviders();
  await run();
}
