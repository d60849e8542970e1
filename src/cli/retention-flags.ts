// purge's flags → a RetentionPolicy (src/backup/retention.ts). Counts are whole numbers or
// `unlimited`; durations are calendar durations (30d, 2w, 1y6m, 12h: m is months). --older-than
// keeps its own duration syntax (units.ts: 15m is minutes) and becomes keep-within, with
// --keep (default 1) as keep-last.
import { isCairnError } from '../errors.ts';
import { CALENDAR_RULES, parseRetentionDuration, type RetentionDuration, type RetentionPolicy } from '../backup/retention.ts';
import { durationOption, stringOption, UsageError, wholeNumber, type OptionValues } from './args.ts';

function count(values: OptionValues, flag: string): number | undefined {
  const v = stringOption(values, flag);
  if (v === 'unlimited') return Infinity;
  if (v !== undefined && !/^[0-9]+$/.test(v)) throw new UsageError(`--${flag} takes a whole number >= 0 or unlimited, got ${JSON.stringify(v)}`);
  return wholeNumber(v, `--${flag}`, 0);
}

function duration(values: OptionValues, flag: string): RetentionDuration | undefined {
  const v = stringOption(values, flag);
  if (v === undefined) return undefined;
  try {
    return parseRetentionDuration(v);
  } catch (e) {
    if (isCairnError(e, 'InvalidArgument')) throw new UsageError(`--${flag}: ${e.message}`);
    throw e;
  }
}

/** Milliseconds → whole days when exact, else hours rounded up (keeping a little more, never less). */
function fromMs(ms: number): RetentionDuration {
  const day = 86_400_000;
  return ms % day === 0 ? { years: 0, months: 0, days: ms / day, hours: 0 } : { years: 0, months: 0, days: 0, hours: Math.ceil(ms / 3_600_000) };
}

export function policyFromFlags(values: OptionValues): RetentionPolicy {
  const keep = count(values, 'keep');
  const last = count(values, 'keep-last');
  if (keep !== undefined && last !== undefined) throw new UsageError('--keep and --keep-last say the same thing: give one');
  const policy: RetentionPolicy = {};
  const setCount = (k: keyof RetentionPolicy & string, n: number | undefined) => { if (n !== undefined) (policy as Record<string, unknown>)[k] = n; };
  setCount('last', last ?? keep);
  for (const r of CALENDAR_RULES) setCount(r, count(values, `keep-${r}`));
  policy.within = duration(values, 'keep-within');
  for (const r of CALENDAR_RULES) {
    const d = duration(values, `keep-within-${r}`);
    if (d) (policy as Record<string, unknown>)[`within${r[0]!.toUpperCase()}${r.slice(1)}`] = d;
  }
  const olderThan = durationOption(stringOption(values, 'older-than'), '--older-than');
  if (olderThan !== undefined) {
    if (policy.within) throw new UsageError('--older-than and --keep-within say the same thing: give one');
    if (olderThan <= 0) throw new UsageError('--older-than takes a duration > 0');
    policy.within = fromMs(olderThan);
    // By age alone the newest backup is kept however old it is (--keep 1 unless told otherwise).
    policy.last ??= 1;
  }
  if (policy.within === undefined) delete policy.within;
  const counts = ['last', ...CALENDAR_RULES].map((r) => policy[r as 'last']).filter((n) => n !== undefined && n > 0);
  const durations = Object.keys(policy).filter((k) => k.startsWith('within'));
  if (counts.length === 0 && durations.length === 0) {
    throw new UsageError('a retention rule is required: --keep-last N (or --keep N), --keep-hourly/daily/weekly/monthly/yearly N, --keep-within DURATION or --older-than DURATION (a count of 0 keeps nothing by itself)');
  }
  return policy;
}
