// Command-line options: each command's flags, parsed by cairn itself so that every mistake gets
// cairn's own message and exit code 2 (node:util's parseArgs calls `--threads -3` "ambiguous").
import { CALENDAR_RULES } from '../backup/retention.ts';
import { parseBytes, parseDuration, UnitError } from './units.ts';
import type { EngineOpenOptions } from './commands.ts';

/** A mistake on the command line: exit code 2, with the command's usage. */
export class UsageError extends Error {}

export type OptionKind = 'string' | 'boolean';
export interface OptionSpec { kind: OptionKind; short?: string }
export type OptionSpecs = Record<string, OptionSpec>;
export type OptionValues = Record<string, string | boolean | undefined>;

const str: OptionSpec = { kind: 'string' };
const bool: OptionSpec = { kind: 'boolean' };

/** Flags every command takes. */
const COMMON: OptionSpecs = {
  'backup-dir': str,
  json: bool,
  help: { kind: 'boolean', short: 'h' },
  quiet: { kind: 'boolean', short: 'q' },
  progress: str,
  'metrics-file': str,
};

/** purge's retention rules (retention-flags.ts turns them into a policy). */
const RETENTION_FLAGS: OptionSpecs = {
  keep: str, 'keep-last': str, 'keep-within': str, 'older-than': str, 'dry-run': bool,
  ...Object.fromEntries(CALENDAR_RULES.flatMap((r) => [[`keep-${r}`, str], [`keep-within-${r}`, str]])),
};

export const COMMANDS = {
  backup: {
    ...COMMON, db: str, 'wal-dir': str, metadata: str, threads: str, 'rate-limit': str,
    'no-share-table-files': bool, naming: str, 'backup-log-files': bool, 'no-backup-log-files': bool,
    'checkpoint-cmd': str, 'no-sync': bool, 'schema-version': str, retain: str, memory: str,
  },
  restore: {
    ...COMMON, db: str, 'wal-dir': str, id: str, 'keep-log-files': bool, threads: str, 'rate-limit': str,
    'no-sync': bool, 'no-space-check': bool, mode: str,
  },
  list: { ...COMMON, locks: bool },
  show: { ...COMMON, id: str, files: bool },
  verify: { ...COMMON, id: str, checksum: bool, 'server-checksum': bool, threads: str },
  delete: { ...COMMON, id: str },
  purge: { ...COMMON, ...RETENTION_FLAGS },
  gc: { ...COMMON, grace: str },
  unlock: { ...COMMON, all: bool, 'stale-after': str },
  check: { ...COMMON },
} satisfies Record<string, OptionSpecs>;

export type Command = keyof typeof COMMANDS;
export const isCommand = (s: string): s is Command => Object.hasOwn(COMMANDS, s);

/**
 * `--name value`, `--name=value`, `-h`; a boolean flag takes no value. A string flag takes the
 * next argument whatever it looks like (`--threads -3` is a bad thread count, not a puzzle),
 * unless that argument is itself one of the command's flags: then the value was forgotten.
 */
export function parseOptions(command: Command, args: string[]): OptionValues {
  const specs: OptionSpecs = COMMANDS[command];
  const byShort = new Map(Object.entries(specs).filter(([, s]) => s.short).map(([n, s]) => [s.short!, n]));
  const isFlag = (a: string) => (a.startsWith('--') && Object.hasOwn(specs, a.slice(2).split('=')[0]!)) || (/^-[a-z]$/i.test(a) && byShort.has(a[1]!));
  const values: OptionValues = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (/^-[a-z]$/i.test(arg) && byShort.has(arg[1]!)) {
      name = byShort.get(arg[1]!)!;
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (options are written --name value)`);
    }
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (spec.kind === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    if (inline !== undefined) {
      values[name] = inline;
      continue;
    }
    const next = args[i + 1];
    if (next === undefined || isFlag(next)) throw new UsageError(`--${name} needs a value`);
    values[name] = next;
    i++;
  }
  return values;
}

export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function required<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

export function wholeNumber(v: string | undefined, flag: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw new UsageError(`${flag} takes a whole number >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** A byte count with optional unit (see units.ts); a rate may end in "/s". */
export function bytesOption(v: string | undefined, flag: string, opts: { rate?: boolean } = {}): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseBytes(opts.rate ? v.replace(/\/s$/i, '') : v);
  } catch (e) {
    if (e instanceof UnitError) throw new UsageError(`${flag} takes ${e.message}`);
    throw e;
  }
}

/** A duration in milliseconds (see units.ts). */
export function durationOption(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseDuration(v);
  } catch (e) {
    if (e instanceof UnitError) throw new UsageError(`${flag} takes ${e.message}`);
    throw e;
  }
}

/**
 * A read-only open of one backup (`id`, else the latest valid one) reads only its manifest: in a
 * directory of many large backups, parsing all of them is most of an open's time and memory.
 */
export function oneBackup(id: number | undefined): Pick<EngineOpenOptions, 'onlyBackupIds' | 'maxValidBackupsToOpen'> {
  return id === undefined ? { maxValidBackupsToOpen: 1 } : { onlyBackupIds: [id] };
}
