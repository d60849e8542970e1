// Which backups a retention policy keeps: restic's `forget` semantics over backup timestamps.
//
// Calendar rules (hourly .. yearly) keep the newest backup of each of the N newest hours / days /
// ISO weeks / months / years that have a backup, in the machine's local time zone (as restic
// does: an operator's "daily" is their day, and an hour repeated by a DST change is one hour).
// A rule with count left when it reaches the oldest backup keeps that one too ("oldest daily"),
// so a short history is not cut shorter. keep-within keeps everything newer than DURATION before
// the newest backup (not before now: backups that stopped a month ago must not all expire at
// once; `now` only decides which timestamps are in the future and cannot anchor the window).
// Rules are ORed. Pure: no I/O, no clock unless `now` is omitted.
import { invalidArgument } from '../errors.ts';

/** A calendar duration: years and months move the date, days move the local day, hours are 3600 s. */
export interface RetentionDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

const UNIT_NAMES = 'y (years), m (months), w (weeks), d (days), h (hours)';

/**
 * Parses `30d`, `2w`, `1y6m`, `12h`, `1y2m3d4h`: whole numbers each followed by a unit, each
 * unit at most once, largest first. `m` is months (as in restic); there are no minutes.
 */
export function parseRetentionDuration(text: string): RetentionDuration {
  const bad = (why: string) => invalidArgument(`invalid duration ${JSON.stringify(text)}: ${why}`);
  if (typeof text !== 'string' || text.length === 0) throw bad(`expected e.g. 30d, 2w, 1y6m or 12h; units ${UNIT_NAMES}`);
  const d: RetentionDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const order = 'ymwdh';
  let lastUnit = -1;
  const re = /([0-9]+)([a-zA-Z]*)/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw bad(`expected a number at ${JSON.stringify(text.slice(pos))}`);
    const [, digits, unit] = m;
    if (unit === '') throw bad(`no unit after ${digits}; units ${UNIT_NAMES}`);
    const idx = order.indexOf(unit!);
    if (unit!.length !== 1 || idx < 0) throw bad(`unknown unit ${JSON.stringify(unit)}; units ${UNIT_NAMES}`);
    if (idx <= lastUnit) throw bad(`unit ${unit} repeated or out of order (write the largest unit first, e.g. 1y6m)`);
    lastUnit = idx;
    const n = Number(digits);
    if (!Number.isSafeInteger(n) || n > 100_000) throw bad(`${digits} is too large`);
    if (unit === 'y') d.years = n;
    else if (unit === 'm') d.months = n;
    else if (unit === 'w') d.days += 7 * n;
    else if (unit === 'd') d.days += n;
    else d.hours = n;
    pos = re.lastIndex;
  }
  if (isZeroDuration(d)) throw bad('it is zero');
  return d;
}

export function isZeroDuration(d: RetentionDuration | undefined): boolean {
  return d === undefined || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

/** `1y6m14d`: the canonical spelling (weeks come back as days). */
export function formatRetentionDuration(d: RetentionDuration): string {
  const parts: [number, string][] = [[d.years, 'y'], [d.months, 'm'], [d.days, 'd'], [d.hours, 'h']];
  return parts.filter(([n]) => n !== 0).map(([n, u]) => `${n}${u}`).join('') || '0h';
}

/**
 * Moves `ms` (epoch milliseconds) by `sign` × d on the local calendar: years, months and days
 * keep the wall-clock time (a day across a DST change is 23 or 25 hours; Mar 31 - 1m normalises
 * to Mar 3 or 2, as Go's AddDate does), hours are then exact.
 */
export function shiftByDuration(ms: number, d: RetentionDuration, sign: 1 | -1): number {
  const t = new Date(ms);
  const moved = new Date(
    t.getFullYear() + sign * d.years,
    t.getMonth() + sign * d.months,
    t.getDate() + sign * d.days,
    t.getHours(),
    t.getMinutes(),
    t.getSeconds(),
    t.getMilliseconds(),
  );
  return moved.getTime() + sign * d.hours * 3_600_000;
}

// ------------------------------------------------------------------------------ policy

export type CalendarRule = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
export type CountRule = 'last' | CalendarRule;
export const CALENDAR_RULES: readonly CalendarRule[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

type WithinKey = `within${Capitalize<CalendarRule>}`;
const withinKey = (r: CalendarRule) => `within${r[0]!.toUpperCase()}${r.slice(1)}` as WithinKey;

/** Counts are whole numbers >= 0 or Infinity ("unlimited"); 0 or absent means the rule is off. */
export type RetentionPolicy = {
  [K in CountRule]?: number;
} & {
  /** Keep every backup newer than this before the newest backup. */
  within?: RetentionDuration;
} & {
  /** withinDaily: keep the newest backup of each day within this of the newest backup (restic's --keep-within-daily). */
  [K in WithinKey]?: RetentionDuration;
};

export interface RetentionCandidate {
  id: number;
  /** Seconds since the epoch (meta/<id>'s first line). */
  timestamp: number;
  /** The backup's meta file could not be read or names missing files. */
  corrupt?: boolean;
}

export type KeepReason =
  /** Among the N newest backups (`rank` 1 = newest). */
  | { rule: 'last'; rank: number }
  /** Newest backup of its local hour/day/ISO week/month/year (`bucket`: 2026-03-29T02, 2026-03-29, 2026-W13, 2026-03, 2026); `oldest`: kept as the oldest backup while the count had room. */
  | { rule: CalendarRule; bucket: string; oldest?: true }
  | { rule: 'within'; within: string }
  | { rule: `within-${CalendarRule}`; within: string; bucket: string; oldest?: true }
  /** The valid backup with the highest id (what restore restores by default) is never removed. */
  | { rule: 'newest' };

export interface RetentionPlan {
  /** Newest first (by timestamp, then id). */
  keep: { id: number; timestamp: number; reasons: KeepReason[] }[];
  /** Newest first. */
  remove: { id: number; timestamp: number }[];
  /** Corrupt backups: neither counted by any rule nor removed by the policy (delete them by id). */
  corrupt: { id: number; timestamp: number }[];
  /** The newest timestamp not in the future: the end of every keep-within window. */
  anchor?: number;
}

function validCount(rule: string, n: number | undefined): number {
  if (n === undefined) return 0;
  if (n === Infinity) return n;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`keep-${rule} must be a whole number >= 0 or unlimited, got ${n}`);
  return n;
}

function validDuration(name: string, d: RetentionDuration | undefined): RetentionDuration | undefined {
  if (d === undefined) return undefined;
  for (const k of ['years', 'months', 'days', 'hours'] as const) {
    if (!Number.isSafeInteger(d[k]) || d[k] < 0) throw invalidArgument(`${name}: ${k} must be a whole number >= 0, got ${d[k]}`);
  }
  return isZeroDuration(d) ? undefined : d;
}

/** The policy in words, for the dry-run header: "keep 7 daily, 4 weekly, everything within 30d of the newest". */
export function describeRetentionPolicy(p: RetentionPolicy): string {
  const parts: string[] = [];
  for (const r of ['last', ...CALENDAR_RULES] as const) {
    const n = p[r];
    if (n) parts.push(`${n === Infinity ? 'all' : n} ${r === 'last' ? 'last' : r}`);
  }
  for (const r of CALENDAR_RULES) {
    const d = p[withinKey(r)];
    if (!isZeroDuration(d)) parts.push(`${r} within ${formatRetentionDuration(d!)}`);
  }
  if (!isZeroDuration(p.within)) parts.push(`everything within ${formatRetentionDuration(p.within!)} of the newest`);
  return parts.length ? `keep ${parts.join(', ')}` : 'empty policy';
}

export function describeKeepReason(r: KeepReason): string {
  switch (r.rule) {
    case 'last':
      return `last #${r.rank}`;
    case 'within':
      return `within ${r.within}`;
    case 'newest':
      return 'newest backup';
    default:
      if ('within' in r) return `${r.oldest ? 'oldest ' : ''}${r.rule.slice('within-'.length)} ${r.bucket} within ${r.within}`;
      return `${r.oldest ? 'oldest ' : ''}${r.rule} ${r.bucket}`;
  }
}

// ------------------------------------------------------------------------------ buckets

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** ISO 8601 week of a calendar date: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(year: number, month0: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month0, day);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const thursday = new Date(date + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(isoYear, 0, 1)) / (7 * 86_400_000));
  return { year: isoYear, week };
}

/** Bucket labels of a timestamp (seconds) in the local time zone. */
export function localBuckets(timestamp: number): Record<CalendarRule, string> {
  const t = new Date(timestamp * 1000);
  const y = t.getFullYear();
  const ymd = `${pad(y, 4)}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
  const w = isoWeek(y, t.getMonth(), t.getDate());
  return {
    hourly: `${ymd}T${pad(t.getHours())}`,
    daily: ymd,
    weekly: `${pad(w.year, 4)}-W${pad(w.week)}`,
    monthly: `${pad(y, 4)}-${pad(t.getMonth() + 1)}`,
    yearly: pad(y, 4),
  };
}

// ------------------------------------------------------------------------------ apply

/**
 * Splits `backups` into kept (with every rule that keeps each one) and removed, per `policy`.
 * `now` (seconds, default the clock) marks timestamps in the future: they cannot be the anchor of
 * keep-within, and keep-within keeps them. Throws InvalidArgument for an empty policy (every
 * count 0, no duration), as restic does: an empty policy removing all but one backup is
 * never what was meant.
 */
export function applyRetentionPolicy(backups: readonly RetentionCandidate[], policy: RetentionPolicy, opts: { now?: number } = {}): RetentionPlan {
  const counts = new Map<CountRule, number>();
  for (const r of ['last', ...CALENDAR_RULES] as const) counts.set(r, validCount(r, policy[r]));
  const within = validDuration('keep-within', policy.within);
  const withins = new Map<CalendarRule, RetentionDuration>();
  for (const r of CALENDAR_RULES) {
    const d = validDuration(`keep-within-${r}`, policy[withinKey(r)]);
    if (d) withins.set(r, d);
  }
  if ([...counts.values()].every((n) => n === 0) && !within && withins.size === 0) {
    throw invalidArgument('empty retention policy: give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within');
  }
  const seen = new Set<number>();
  for (const b of backups) {
    if (!Number.isSafeInteger(b.id) || seen.has(b.id)) throw invalidArgument(`backup id ${b.id} is not a unique whole number`);
    if (!Number.isFinite(b.timestamp)) throw invalidArgument(`backup ${b.id} has no valid timestamp`);
    seen.add(b.id);
  }

  const byAge = (a: RetentionCandidate, b: RetentionCandidate) => b.timestamp - a.timestamp || b.id - a.id;
  const corrupt = backups.filter((b) => b.corrupt).sort(byAge).map(({ id, timestamp }) => ({ id, timestamp }));
  const list = backups.filter((b) => !b.corrupt).sort(byAge);
  const plan: RetentionPlan = { keep: [], remove: [], corrupt };
  if (list.length === 0) return plan;

  const nowMs = (opts.now ?? Date.now() / 1000) * 1000;
  const past = list.filter((b) => b.timestamp * 1000 < nowMs);
  if (past.length) plan.anchor = past[0]!.timestamp;
  // No backup in the past: restic's anchor is then the zero time, so every window holds everything.
  const windowStart = (d: RetentionDuration) => (plan.anchor === undefined ? -Infinity : shiftByDuration(plan.anchor * 1000, d, -1));
  const withinStart = within && windowStart(within);
  const withinStarts = new Map([...withins].map(([r, d]) => [r, windowStart(d)]));

  const lastBucket = new Map<string, string>();
  const newestId = Math.max(...list.map((b) => b.id));
  list.forEach((b, i) => {
    const reasons: KeepReason[] = [];
    const isOldest = i === list.length - 1;
    const ms = b.timestamp * 1000;
    const buckets = localBuckets(b.timestamp);
    if (within && ms > withinStart!) reasons.push({ rule: 'within', within: formatRetentionDuration(within) });
    const left = counts.get('last')!;
    if (left > 0) {
      reasons.push({ rule: 'last', rank: i + 1 });
      counts.set('last', left - 1);
    }
    for (const r of CALENDAR_RULES) {
      const n = counts.get(r)!;
      if (n === 0) continue;
      const same = lastBucket.get(r) === buckets[r];
      if (!same || isOldest) {
        reasons.push(same ? { rule: r, bucket: buckets[r], oldest: true } : { rule: r, bucket: buckets[r] });
        lastBucket.set(r, buckets[r]);
        counts.set(r, n - 1);
      }
    }
    for (const [r, d] of withins) {
      if (!(ms > withinStarts.get(r)!)) continue;
      const key = `within-${r}`;
      const same = lastBucket.get(key) === buckets[r];
      if (!same || isOldest) {
        const reason: KeepReason = { rule: `within-${r}`, within: formatRetentionDuration(d), bucket: buckets[r] };
        if (same) reason.oldest = true;
        reasons.push(reason);
        lastBucket.set(key, buckets[r]);
      }
    }
    if (reasons.length === 0 && b.id === newestId) reasons.push({ rule: 'newest' });
    if (reasons.length) plan.keep.push({ id: b.id, timestamp: b.timestamp, reasons });
    else plan.remove.push({ id: b.id, timestamp: b.timestamp });
  });
  return plan;
}

// ------------------------------------------------------------------------------ text

/** `2026-10-25 02:30:00 +01:00`: local time with its offset, so the two 02:30s of a DST change differ. */
export function formatLocalTime(timestamp: number): string {
  // A corrupt backup whose meta file does not even start with a timestamp.
  if (!Number.isFinite(timestamp)) return 'unknown time'.padEnd(25);
  const t = new Date(timestamp * 1000);
  const off = -t.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const ymd = `${pad(t.getFullYear(), 4)}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
  return `${ymd} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())} ${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

/** The dry-run report of `purge` (and its summary after a real run: `removed` instead of `remove`). */
export function formatRetentionPlan(plan: RetentionPlan, policy: RetentionPolicy, opts: { dryRun?: boolean } = {}): string {
  const width = Math.max(2, ...[...plan.keep, ...plan.remove, ...plan.corrupt].map((b) => String(b.id).length));
  const row = (b: { id: number; timestamp: number }, extra = '') => `  ${String(b.id).padStart(width)}  ${formatLocalTime(b.timestamp)}${extra ? `  ${extra}` : ''}`;
  const n = (k: number) => `${k} backup${k === 1 ? '' : 's'}`;
  const lines = [`policy: ${describeRetentionPolicy(policy)}`, `keep ${n(plan.keep.length)}:`];
  for (const k of plan.keep) lines.push(row(k, k.reasons.map(describeKeepReason).join(', ')));
  lines.push(`${opts.dryRun ? 'would remove' : 'removed'} ${n(plan.remove.length)}${plan.remove.length ? ':' : ''}`);
  for (const r of plan.remove) lines.push(row(r));
  if (plan.corrupt.length) {
    lines.push(`corrupt, not counted and not removed (cairn delete --id N removes one), ${n(plan.corrupt.length)}:`);
    for (const c of plan.corrupt) lines.push(row(c));
  }
  return `${lines.join('\n')}\n`;
}
