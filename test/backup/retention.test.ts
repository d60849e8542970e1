// Retention policy over synthetic timestamps: local-time buckets across DST changes (Berlin, New
// York) and year ends (ISO week 53), restic's documented examples, and cairn's own rules (newest
// backup never removed, corrupt backups reported, not counted). restic's golden results are
// compared in retention-restic.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyRetentionPolicy,
  describeKeepReason,
  describeRetentionPolicy,
  formatLocalTime,
  formatRetentionDuration,
  formatRetentionPlan,
  isoWeek,
  localBuckets,
  parseRetentionDuration,
  shiftByDuration,
  type RetentionCandidate,
  type RetentionPlan,
} from '../../src/backup/retention.ts';
import { isCairnError } from '../../src/errors.ts';

// Offsets on 2026-01-15 (winter everywhere here), to prove the zone took effect at run time.
const WINTER_OFFSET: Record<string, number> = { UTC: 0, 'Europe/Berlin': -60, 'America/New_York': 300 };

/** Runs fn with process.env.TZ = tz, after checking that Node applies it to Date at once. */
function inTZ<T>(tz: string, fn: () => T): T {
  const prev = process.env.TZ;
  process.env.TZ = tz;
  try {
    assert.equal(new Date(Date.UTC(2026, 0, 15, 12)).getTimezoneOffset(), WINTER_OFFSET[tz], `Node did not honour TZ=${tz}`);
    return fn();
  } finally {
    if (prev === undefined) delete process.env.TZ;
    else process.env.TZ = prev;
  }
}

const sec = (iso: string) => Date.parse(iso) / 1000;
/** Backups with ids 1, 2, … in the order given (give them oldest first). */
const series = (isoTimes: string[]): RetentionCandidate[] => isoTimes.map((t, i) => ({ id: i + 1, timestamp: sec(t) }));
const FAR_FUTURE = sec('2100-01-01T00:00:00Z');
const ids = (plan: RetentionPlan) => ({ keep: plan.keep.map((k) => k.id), remove: plan.remove.map((r) => r.id) });
const why = (plan: RetentionPlan, id: number) => plan.keep.find((k) => k.id === id)?.reasons.map(describeKeepReason);

describe('parseRetentionDuration', () => {
  it('reads years, months, weeks, days and hours', () => {
    assert.deepEqual(parseRetentionDuration('30d'), { years: 0, months: 0, days: 30, hours: 0 });
    assert.deepEqual(parseRetentionDuration('2w'), { years: 0, months: 0, days: 14, hours: 0 });
    assert.deepEqual(parseRetentionDuration('1y6m'), { years: 1, months: 6, days: 0, hours: 0 });
    assert.deepEqual(parseRetentionDuration('12h'), { years: 0, months: 0, days: 0, hours: 12 });
    assert.deepEqual(parseRetentionDuration('1y2m1w3d4h'), { years: 1, months: 2, days: 10, hours: 4 });
    for (const [text, canonical] of [['1y1m1d', '1y1m1d'], ['2w', '14d'], ['13d23h', '13d23h'], ['0y5h', '5h']]) {
      assert.equal(formatRetentionDuration(parseRetentionDuration(text)), canonical);
    }
  });

  it('refuses anything else with an InvalidArgument naming the text', () => {
    for (const bad of ['', '30', 'd', '30x', '30M', '30min', '1m1y', '1d1d', '0d', '0y0h', '-1d', ' 30d', '30d ', '1.5d', '1e3d', '999999999d']) {
      assert.throws(
        () => parseRetentionDuration(bad),
        (e) => isCairnError(e, 'InvalidArgument') && e.message.includes(JSON.stringify(bad)),
        bad,
      );
    }
  });

  it('moves along the local calendar: a day across a DST change is 23 or 25 hours', () => {
    inTZ('Europe/Berlin', () => {
      const oneDay = parseRetentionDuration('1d');
      assert.equal((sec('2026-03-29T10:00:00Z') * 1000 - shiftByDuration(sec('2026-03-29T10:00:00Z') * 1000, oneDay, -1)) / 3_600_000, 23);
      assert.equal((sec('2026-10-25T11:00:00Z') * 1000 - shiftByDuration(sec('2026-10-25T11:00:00Z') * 1000, oneDay, -1)) / 3_600_000, 25);
      assert.equal((shiftByDuration(sec('2026-03-28T10:00:00Z') * 1000, parseRetentionDuration('24h'), 1) - sec('2026-03-28T10:00:00Z') * 1000) / 3_600_000, 24);
    });
  });
});

describe('ISO weeks and local buckets', () => {
  it('numbers weeks as ISO 8601 does at year ends', () => {
    const cases: [number, number, number, string][] = [
      [2026, 11, 31, '2026-53'], [2027, 0, 1, '2026-53'], [2027, 0, 3, '2026-53'], [2027, 0, 4, '2027-1'],
      [2025, 11, 29, '2026-1'], [2026, 0, 1, '2026-1'], [2020, 11, 31, '2020-53'], [2021, 0, 3, '2020-53'],
      [2021, 0, 4, '2021-1'], [2024, 11, 30, '2025-1'], [2016, 0, 3, '2015-53'], [2010, 0, 3, '2009-53'],
    ];
    for (const [y, m, d, want] of cases) {
      const w = isoWeek(y, m, d);
      assert.equal(`${w.year}-${w.week}`, want, `${y}-${m + 1}-${d}`);
    }
  });

  it('agrees with counting Mondays from a known week 1, day by day over 40 years', () => {
    // 2001-01-01 is a Monday of week 1. Each Monday starts the next week, or week 1 of the next
    // ISO year when that Monday's Thursday falls in January.
    let year = 2001;
    let week = 1;
    for (let t = Date.UTC(2001, 0, 1); t < Date.UTC(2041, 0, 1); t += 86_400_000) {
      const day = new Date(t);
      if (day.getUTCDay() === 1 && t > Date.UTC(2001, 0, 1)) {
        const thursday = new Date(t + 3 * 86_400_000);
        if (thursday.getUTCMonth() === 0 && thursday.getUTCDate() <= 7) [year, week] = [thursday.getUTCFullYear(), 1];
        else week++;
      }
      const w = isoWeek(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate());
      assert.deepEqual(w, { year, week }, day.toISOString());
    }
  });

  it('buckets by local time, not UTC', () => {
    const t = sec('2027-01-01T04:30:00Z'); // 2026-12-31 23:30 in New York
    assert.deepEqual(inTZ('America/New_York', () => localBuckets(t)), { hourly: '2026-12-31T23', daily: '2026-12-31', weekly: '2026-W53', monthly: '2026-12', yearly: '2026' });
    assert.deepEqual(inTZ('UTC', () => localBuckets(t)), { hourly: '2027-01-01T04', daily: '2027-01-01', weekly: '2026-W53', monthly: '2027-01', yearly: '2027' });
    assert.equal(inTZ('America/New_York', () => formatLocalTime(t)), '2026-12-31 23:30:00 -05:00');
  });
});

describe('retention across DST changes', () => {
  it('Berlin, autumn: the repeated hour 02:00-03:00 is one hourly bucket', () => {
    const backups = series(['2026-10-24T23:30:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z', '2026-10-25T02:30:00Z']);
    inTZ('Europe/Berlin', () => {
      assert.deepEqual(backups.map((b) => formatLocalTime(b.timestamp)), ['2026-10-25 01:30:00 +02:00', '2026-10-25 02:30:00 +02:00', '2026-10-25 02:30:00 +01:00', '2026-10-25 03:30:00 +01:00']);
      const plan = applyRetentionPolicy(backups, { hourly: 10 }, { now: FAR_FUTURE });
      assert.deepEqual(ids(plan), { keep: [4, 3, 1], remove: [2] });
      assert.deepEqual(why(plan, 3), ['hourly 2026-10-25T02']);
    });
    assert.deepEqual(inTZ('UTC', () => ids(applyRetentionPolicy(backups, { hourly: 10 }, { now: FAR_FUTURE }))), { keep: [4, 3, 2, 1], remove: [] });
  });

  it('Berlin, spring: 01:59:59 and 03:00:00 are consecutive seconds in two hourly buckets', () => {
    inTZ('Europe/Berlin', () => {
      assert.equal(localBuckets(sec('2026-03-29T00:59:59Z')).hourly, '2026-03-29T01');
      assert.equal(localBuckets(sec('2026-03-29T01:00:00Z')).hourly, '2026-03-29T03');
      const plan = applyRetentionPolicy(series(['2026-03-29T00:59:59Z', '2026-03-29T01:00:00Z']), { hourly: 2 }, { now: FAR_FUTURE });
      assert.deepEqual(ids(plan), { keep: [2, 1], remove: [] });
    });
  });

  it('Berlin: a day is the local day (00:30 CET belongs to the day UTC still calls yesterday)', () => {
    const backups = series(['2026-03-27T12:00:00Z', '2026-03-28T23:30:00Z', '2026-03-29T21:30:00Z']);
    const berlin = inTZ('Europe/Berlin', () => applyRetentionPolicy(backups, { daily: 2 }, { now: FAR_FUTURE }));
    assert.deepEqual(ids(berlin), { keep: [3, 1], remove: [2] });
    assert.deepEqual(why(berlin, 1), ['daily 2026-03-27']);
    assert.deepEqual(inTZ('UTC', () => ids(applyRetentionPolicy(backups, { daily: 2 }, { now: FAR_FUTURE }))), { keep: [3, 2], remove: [1] });
  });

  it('Berlin: keep-within 1d reaches back 23 hours over the spring change and 25 over the autumn one', () => {
    const spring = series(['2026-03-28T10:30:00Z', '2026-03-28T11:30:00Z', '2026-03-29T10:00:00Z']);
    assert.deepEqual(inTZ('Europe/Berlin', () => ids(applyRetentionPolicy(spring, { within: parseRetentionDuration('1d') }, { now: FAR_FUTURE }))), { keep: [3, 2], remove: [1] });
    assert.deepEqual(inTZ('UTC', () => ids(applyRetentionPolicy(spring, { within: parseRetentionDuration('1d') }, { now: FAR_FUTURE }))), { keep: [3, 2, 1], remove: [] });
    const autumn = series(['2026-10-24T09:30:00Z', '2026-10-24T10:30:00Z', '2026-10-25T11:00:00Z']);
    const plan = inTZ('Europe/Berlin', () => applyRetentionPolicy(autumn, { within: parseRetentionDuration('1d') }, { now: FAR_FUTURE }));
    assert.deepEqual(ids(plan), { keep: [3, 2], remove: [1] });
    assert.deepEqual(why(plan, 2), ['within 1d']);
  });

  it('New York: 01:30 EDT and 01:30 EST share an hour; a Sunday 23:30 EST is still in its ISO week', () => {
    inTZ('America/New_York', () => {
      const hour = applyRetentionPolicy(series(['2026-11-01T04:30:00Z', '2026-11-01T05:30:00Z', '2026-11-01T06:30:00Z']), { hourly: 5 }, { now: FAR_FUTURE });
      assert.deepEqual(ids(hour), { keep: [3, 1], remove: [2] });
      assert.deepEqual(why(hour, 3), ['hourly 2026-11-01T01']);
      assert.deepEqual(why(hour, 1), ['hourly 2026-11-01T00']);
    });
    const weekly = series(['2026-10-31T16:00:00Z', '2026-11-02T04:30:00Z', '2026-11-03T17:00:00Z']);
    const ny = inTZ('America/New_York', () => applyRetentionPolicy(weekly, { weekly: 2 }, { now: FAR_FUTURE }));
    assert.deepEqual(ids(ny), { keep: [3, 2], remove: [1] });
    assert.deepEqual(why(ny, 2), ['weekly 2026-W44']);
    assert.deepEqual(inTZ('UTC', () => ids(applyRetentionPolicy(weekly, { weekly: 2 }, { now: FAR_FUTURE }))), { keep: [3, 1], remove: [2] });
  });
});

describe('retention across year ends', () => {
  // One backup a day at noon in New York, Mon 2026-12-28 .. Tue 2027-01-05: ISO week 2026-W53
  // runs Dec 28 .. Jan 3, so Jan 1-3 are in 2026's last week but 2027's first year and month.
  const days = ['2026-12-28', '2026-12-29', '2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02', '2027-01-03', '2027-01-04', '2027-01-05'];
  const backups = series(days.map((d) => `${d}T17:00:00Z`));
  const run = (policy: Parameters<typeof applyRetentionPolicy>[1]) => inTZ('America/New_York', () => applyRetentionPolicy(backups, policy, { now: FAR_FUTURE }));

  it('weekly keeps Sunday Jan 3 for week 53; yearly keeps Dec 31 for 2026', () => {
    const plan = run({ weekly: 2, yearly: 2 });
    assert.deepEqual(ids(plan), { keep: [9, 7, 4], remove: [8, 6, 5, 3, 2, 1] });
    assert.deepEqual(why(plan, 9), ['weekly 2027-W01', 'yearly 2027']);
    assert.deepEqual(why(plan, 7), ['weekly 2026-W53']);
    assert.deepEqual(why(plan, 4), ['yearly 2026']);
  });

  it('a count with room left keeps the oldest backup too', () => {
    const plan = run({ monthly: 3 });
    assert.deepEqual(ids(plan), { keep: [9, 4, 1], remove: [8, 7, 6, 5, 3, 2] });
    assert.deepEqual(why(plan, 1), ['oldest monthly 2026-12']);
    assert.deepEqual(plan.keep[2]!.reasons, [{ rule: 'monthly', bucket: '2026-12', oldest: true }]);
  });
});

describe("restic's documented examples (doc/060_forget.rst)", () => {
  it('one backup every Sunday for 12 weeks, --keep-daily 4: the last four Sundays stay', () => {
    const plan = inTZ('Europe/Berlin', () => {
      const sundays = Array.from({ length: 12 }, (_, i) => new Date(2019, 8, 1 + 7 * i, 11).toISOString()); // 11:00 local, CEST then CET
      return applyRetentionPolicy(series(sundays), { daily: 4 }, { now: FAR_FUTURE });
    });
    assert.deepEqual(ids(plan), { keep: [12, 11, 10, 9], remove: [8, 7, 6, 5, 4, 3, 2, 1] });
    assert.deepEqual(
      plan.keep.map((k) => inTZ('Europe/Berlin', () => formatLocalTime(k.timestamp)).slice(0, 19)),
      ['2019-11-17 11:00:00', '2019-11-10 11:00:00', '2019-11-03 11:00:00', '2019-10-27 11:00:00'],
    );
    assert.ok(plan.keep.every((k) => k.reasons.length === 1 && k.reasons[0]!.rule === 'daily'));
  });

  it('a daily backup for 100 years, --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75', () => {
    // Ends on Sunday 2026-12-27, so the docs' count holds: 7 dailies + 4 more weeklies + 11 more
    // monthlies + 74 more yearlies (a newest backup on a Sunday in November would make Dec 31
    // of the year before both a monthly and a yearly: 95).
    const end = Date.UTC(2026, 11, 27, 12);
    const start = Date.UTC(1926, 11, 28, 12);
    const backups: RetentionCandidate[] = [];
    for (let t = start, id = 1; t <= end; t += 86_400_000, id++) backups.push({ id, timestamp: t / 1000 });
    const plan = inTZ('UTC', () => applyRetentionPolicy(backups, { daily: 7, weekly: 5, monthly: 12, yearly: 75 }, { now: FAR_FUTURE }));
    assert.equal(plan.keep.length, 7 + 4 + 11 + 74);
    assert.equal(plan.keep.length + plan.remove.length, backups.length);
    const withRule = (rule: string) => plan.keep.filter((k) => k.reasons.some((r) => r.rule === rule)).map((k) => new Date(k.timestamp * 1000));
    assert.equal(withRule('daily').length, 7);
    assert.equal(withRule('weekly').length, 5);
    assert.equal(withRule('monthly').length, 12);
    assert.equal(withRule('yearly').length, 75);
    assert.ok(withRule('weekly').every((d) => d.getUTCDay() === 0), 'weeklies are Sundays');
    assert.ok(withRule('monthly').slice(1).every((d) => new Date(d.getTime() + 86_400_000).getUTCDate() === 1), 'monthlies are month ends');
    assert.ok(withRule('yearly').slice(1).every((d) => d.getUTCMonth() === 11 && d.getUTCDate() === 31), 'yearlies are Dec 31');
    assert.equal(withRule('yearly').at(-1)!.getUTCFullYear(), 1952);
  });
});

describe("cairn's rules on top of restic's", () => {
  const ten = series(Array.from({ length: 10 }, (_, i) => new Date(Date.UTC(2026, 0, 1 + i, 3)).toISOString()));

  it('--keep N is --keep-last N: the N newest stay', () => {
    const plan = applyRetentionPolicy(ten, { last: 3 }, { now: FAR_FUTURE });
    assert.deepEqual(ids(plan), { keep: [10, 9, 8], remove: [7, 6, 5, 4, 3, 2, 1] });
    assert.deepEqual(plan.keep.map((k) => k.reasons), [[{ rule: 'last', rank: 1 }], [{ rule: 'last', rank: 2 }], [{ rule: 'last', rank: 3 }]]);
  });

  it('a corrupt backup is reported, neither counted nor removed', () => {
    const backups = ten.map((b) => (b.id === 10 || b.id === 2 ? { ...b, corrupt: true } : b));
    const plan = applyRetentionPolicy(backups, { last: 2 }, { now: FAR_FUTURE });
    assert.deepEqual(ids(plan), { keep: [9, 8], remove: [7, 6, 5, 4, 3, 1] });
    assert.deepEqual(plan.corrupt, [{ id: 10, timestamp: ten[9]!.timestamp }, { id: 2, timestamp: ten[1]!.timestamp }]);
  });

  it('the valid backup with the highest id is never removed, even with an older timestamp', () => {
    // The clock went back a day before backup 11 was taken.
    const backups = [...ten, { id: 11, timestamp: ten[8]!.timestamp - 3600 }];
    const plan = applyRetentionPolicy(backups, { last: 1 }, { now: FAR_FUTURE });
    assert.deepEqual(ids(plan), { keep: [10, 11], remove: [9, 8, 7, 6, 5, 4, 3, 2, 1] });
    assert.deepEqual(why(plan, 11), ['newest backup']);
  });

  it('keep-within counts back from the newest backup, not from now; future timestamps cannot anchor it', () => {
    const now = sec('2026-03-01T00:00:00Z'); // seven weeks after the last backup
    const plan = applyRetentionPolicy(ten, { within: parseRetentionDuration('3d') }, { now });
    assert.equal(plan.anchor, ten[9]!.timestamp);
    assert.deepEqual(ids(plan), { keep: [10, 9, 8], remove: [7, 6, 5, 4, 3, 2, 1] });
    const future = [...ten, { id: 11, timestamp: sec('2027-01-01T00:00:00Z') }];
    const withFuture = applyRetentionPolicy(future, { within: parseRetentionDuration('3d') }, { now });
    assert.equal(withFuture.anchor, ten[9]!.timestamp);
    assert.deepEqual(ids(withFuture), { keep: [11, 10, 9, 8], remove: [7, 6, 5, 4, 3, 2, 1] });
  });

  it('refuses an empty policy and bad counts or ids; an empty list gives an empty plan', () => {
    for (const policy of [{}, { last: 0 }, { within: { years: 0, months: 0, days: 0, hours: 0 } }, { last: -1 }, { daily: 1.5 }, { weekly: NaN }]) {
      assert.throws(() => applyRetentionPolicy(ten, policy, { now: FAR_FUTURE }), (e) => isCairnError(e, 'InvalidArgument'), JSON.stringify(policy));
    }
    assert.throws(() => applyRetentionPolicy([...ten, ten[0]!], { last: 1 }), (e) => isCairnError(e, 'InvalidArgument'));
    assert.deepEqual(applyRetentionPolicy([], { last: 1 }), { keep: [], remove: [], corrupt: [] });
  });

  it('describes policy, reasons and plan for the dry run', () => {
    const policy = { last: 1, daily: 2, weekly: Infinity, within: parseRetentionDuration('2w'), withinMonthly: parseRetentionDuration('1y') };
    assert.equal(describeRetentionPolicy(policy), 'keep 1 last, 2 daily, all weekly, monthly within 1y, everything within 14d of the newest');
    const backups = [...series(['2026-10-24T09:30:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z']), { id: 4, timestamp: sec('2026-10-25T02:00:00Z'), corrupt: true }];
    const text = inTZ('Europe/Berlin', () => formatRetentionPlan(applyRetentionPolicy(backups, { hourly: 1, daily: 2 }, { now: FAR_FUTURE }), { hourly: 1, daily: 2 }, { dryRun: true }));
    assert.equal(
      text,
      [
        'policy: keep 1 hourly, 2 daily',
        'keep 2 backups:',
        '   3  2026-10-25 02:30:00 +01:00  hourly 2026-10-25T02, daily 2026-10-25',
        '   1  2026-10-24 11:30:00 +02:00  daily 2026-10-24',
        'would remove 1 backup:',
        '   2  2026-10-25 02:30:00 +02:00',
        'corrupt, not counted and not removed (cairn delete --id N removes one), 1 backup:',
        '   4  2026-10-25 03:00:00 +01:00',
        '',
      ].join('\n'),
    );
  });
});
