// The cairn command line. Its flags, JSON output and exit codes are a contract other tools
// script against: change them only compatibly.
import dotenv from 'dotenv';
import * as fs from 'node:fs';
import { BackupEngine } from '../backup/engine.ts';
import { openBackupEnv } from '../open-env.ts';
import { CairnError } from '../errors.ts';
import type { BackupEnv } from '../env.ts';
import { bytesOption, isCommand, parseOptions, required, stringOption, UsageError, type Command, type OptionValues } from './args.ts';
import { envValue } from '../env-var.ts';
import { HANDLERS, type CommandContext } from './commands.ts';
import { sendHeartbeat } from './heartbeat.ts';
import { writeMetricsFile, type RunStats } from './metrics.ts';
import { EXIT, errorCodeOf, exitCodeFor, printJsonWithRequests, signalExit } from './output.ts';
import { PROGRESS_MODES, progressReporter, type ProgressMode } from './progress.ts';
import { commandUsage, generalUsage } from './usage.ts';

export { EXIT } from './output.ts';

/** The version in the package.json next to the sources (or the compiled dist/). */
export function version(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cairn' && pkg.version) return pkg.version;
    } catch { /* not here: look one level up */ }
    if (dir.pathname === '/') return 'unknown';
  }
}

/** Env implementations that count their requests offer this (optional, not part of BackupEnv). */
type CountingEnv = BackupEnv & { requestCounts?(): Record<string, number> };

function progressMode(values: OptionValues): ProgressMode {
  const mode = stringOption(values, 'progress');
  if (mode === undefined) return values.quiet === true ? 'none' : 'auto';
  if (!(PROGRESS_MODES as readonly string[]).includes(mode)) throw new UsageError(`--progress is ${PROGRESS_MODES.join(', ')}; got ${JSON.stringify(mode)}`);
  return mode as ProgressMode;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd) {
    process.stderr.write(generalUsage() + '\n');
    return EXIT.usage;
  }
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`cairn ${version()}\n`);
    return EXIT.ok;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = rest[0];
    if (topic === undefined) process.stdout.write(generalUsage() + '\n');
    else if (isCommand(topic) && rest.length === 1) process.stdout.write(commandUsage(topic) + '\n');
    else {
      process.stderr.write(`cairn help: unknown command ${JSON.stringify(rest.join(' '))}\n${generalUsage()}\n`);
      return EXIT.usage;
    }
    return EXIT.ok;
  }
  if (!isCommand(cmd)) {
    process.stderr.write(`cairn: unknown command ${JSON.stringify(cmd)}\n${generalUsage()}\n`);
    return EXIT.usage;
  }
  const command: Command = cmd;
  const usageFailure = (msg: string) => {
    process.stderr.write(`cairn ${command}: ${msg}\n${commandUsage(command)}\n`);
    return EXIT.usage;
  };
  let values: OptionValues;
  let mode: ProgressMode;
  try {
    values = parseOptions(command, rest);
    mode = progressMode(values);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(e.message);
    throw e;
  }
  if (values.help) {
    process.stdout.write(commandUsage(command) + '\n');
    return EXIT.ok;
  }
  const json = values.json === true;
  const quiet = values.quiet === true;
  const metricsFile = stringOption(values, 'metrics-file');
  const backupDirValue = stringOption(values, 'backup-dir') ?? process.env.CAIRN_BACKUP_DIR;
  const progress = progressReporter({ mode, command, backupDir: backupDirValue, isTTY: !json && process.stderr.isTTY === true });
  const started = performance.now();
  progress.start();

  let env: CountingEnv | undefined;
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
  let code: number;
  let stats: RunStats = {};
  let failure: unknown;
  // The --json document waits for the store to be closed, so that its request counts are whole.
  let jsonDoc: { value: unknown } | undefined;
  try {
    const backupDir = required(backupDirValue, '--backup-dir');
    const memoryBudget = memoryBudgetOf(values);
    const openEnv = async () => (env ??= await openBackupEnv(backupDir, memoryBudget === undefined ? {} : { memoryBudget }));
    const ctx: CommandContext = {
      command, values, backupDir, json, quiet, signal, progress, openEnv, deferJson: (v) => { jsonDoc = { value: v }; },
      openEngine: async (opts) => (engine = await BackupEngine.open({ ...opts, env: await openEnv() })),
    };
    ({ code, stats } = await HANDLERS[command](ctx));
  } catch (e) {
    failure = e;
    code = signal.aborted ? signalExit(stoppedBy) : exitCodeFor(e);
  } finally {
    if (engine) await engine.close().catch(() => {});
    else await env?.close().catch(() => {});
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const durationSeconds = (performance.now() - started) / 1000;
  let requests: Record<string, number> | undefined;
  try { requests = env?.requestCounts?.(); } catch { /* counting is optional */ }
  if (jsonDoc) printJsonWithRequests(jsonDoc.value, requests);
  const errorCode = failure !== undefined ? (signal.aborted ? 'Aborted' : errorCodeOf(failure)) : code !== EXIT.ok ? verifyErrorCode(code) : undefined;
  if (failure !== undefined) {
    const msg = failure instanceof Error ? failure.message : String(failure);
    progress.end({ exitCode: code, durationSeconds, error: { code: errorCode!, message: msg } });
    process.stderr.write(`cairn ${command}: ${msg}\n`);
    if (failure instanceof UsageError) process.stderr.write(commandUsage(command) + '\n');
    if (json) process.stdout.write(JSON.stringify({ error: { code: failure instanceof CairnError ? failure.code : 'Error', message: msg }, ...(requests ? { requests } : {}) }) + '\n');
  } else {
    progress.end({ exitCode: code, durationSeconds });
  }
  if (metricsFile !== undefined) {
    await writeMetricsFile(metricsFile, {
      command, backupDir: backupDirValue ?? '', endedAt: Math.floor(Date.now() / 1000), durationSeconds, exitCode: code, errorCode, stats, requests,
    }).catch((e: Error) => process.stderr.write(`cairn ${command}: warning: metrics file ${metricsFile} not written: ${e.message}\n`));
  }
  if (code === EXIT.ok) {
    const warning = await sendHeartbeat();
    if (warning) process.stderr.write(`cairn ${command}: warning: ${warning}\n`);
  }
  return code;
}

/** --memory, else CAIRN_MEMORY_BUDGET (for every command, as the providers apply it), else the providers' default. */
function memoryBudgetOf(values: OptionValues): number | undefined {
  const flag = stringOption(values, 'memory');
  const v = flag ?? envValue(process.env, 'CAIRN_MEMORY_BUDGET');
  const bytes = bytesOption(v, flag !== undefined ? '--memory' : 'CAIRN_MEMORY_BUDGET');
  if (bytes === 0) throw new UsageError(`${flag !== undefined ? '--memory' : 'CAIRN_MEMORY_BUDGET'} must be more than 0`);
  return bytes;
}

/** verify reports what it found through its exit code, not an exception. */
function verifyErrorCode(code: number): string {
  return code === EXIT.corruption ? 'Corruption' : code === EXIT.notFound ? 'NotFound' : 'Error';
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
