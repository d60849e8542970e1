// Table-driven comparison with restic's own expectations: restic's TestApplyPolicy applies 40
// policies to one list of 103 snapshot times (UTC) and pins what it keeps, and why, in golden
// files (restic internal/data/testdata/policy_keep_snapshots_<N>). Below: that input list and,
// for every policy cairn has (all but the tag rules and the empty policy), the kept snapshots as
// indices into the list, newest first, each with restic's reasons abbreviated:
// L last, H/D/W/M/Y hourly .. yearly, w within, wH .. wY within-hourly .. within-yearly, o oldest.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyRetentionPolicy, describeRetentionPolicy, parseRetentionDuration, type KeepReason, type RetentionPolicy } from '../../src/backup/retention.ts';

const d = parseRetentionDuration;

const RESTIC_INPUT = [
  '2014-09-01 10:20:30', '2014-09-02 10:20:30', '2014-09-05 10:20:30', '2014-09-06 10:20:30', '2014-09-08 10:20:30',
  '2014-09-09 10:20:30', '2014-09-10 10:20:30', '2014-09-11 10:20:30', '2014-09-20 10:20:30', '2014-09-22 10:20:30',
  '2014-08-08 10:20:30', '2014-08-10 10:20:30', '2014-08-12 10:20:30', '2014-08-13 10:20:30', '2014-08-13 10:20:30.1',
  '2014-08-15 10:20:30', '2014-08-18 10:20:30', '2014-08-20 10:20:30', '2014-08-21 10:20:30', '2014-08-22 10:20:30',
  '2014-10-01 10:20:30', '2014-10-02 10:20:30', '2014-10-05 10:20:30', '2014-10-06 10:20:30', '2014-10-08 10:20:30',
  '2014-10-09 10:20:30', '2014-10-10 10:20:30', '2014-10-11 10:20:30', '2014-10-20 10:20:30', '2014-10-22 10:20:30',
  '2014-11-08 10:20:30', '2014-11-10 10:20:30', '2014-11-12 10:20:30', '2014-11-13 10:20:30', '2014-11-13 10:20:30.1',
  '2014-11-15 10:20:30', '2014-11-18 10:20:30', '2014-11-20 10:20:30', '2014-11-21 10:20:30', '2014-11-22 10:20:30',
  '2015-09-01 10:20:30', '2015-09-02 10:20:30', '2015-09-05 10:20:30', '2015-09-06 10:20:30', '2015-09-08 10:20:30',
  '2015-09-09 10:20:30', '2015-09-10 10:20:30', '2015-09-11 10:20:30', '2015-09-20 10:20:30', '2015-09-22 10:20:30',
  '2015-08-08 10:20:30', '2015-08-10 10:20:30', '2015-08-12 10:20:30', '2015-08-13 10:20:30', '2015-08-13 10:20:30.1',
  '2015-08-15 10:20:30', '2015-08-18 10:20:30', '2015-08-20 10:20:30', '2015-08-21 10:20:30', '2015-08-22 10:20:30',
  '2015-10-01 10:20:30', '2015-10-02 10:20:30', '2015-10-05 10:20:30', '2015-10-06 10:20:30', '2015-10-08 10:20:30',
  '2015-10-09 10:20:30', '2015-10-10 10:20:30', '2015-10-11 10:20:30', '2015-10-20 10:20:30', '2015-10-22 10:20:30',
  '2015-10-22 10:20:30', '2015-10-22 10:20:30', '2015-10-22 10:20:30', '2015-10-22 10:20:30', '2015-11-08 10:20:30',
  '2015-11-10 10:20:30', '2015-11-12 10:20:30', '2015-11-13 10:20:30', '2015-11-13 10:20:30.1', '2015-11-15 10:20:30',
  '2015-11-18 10:20:30', '2015-11-20 10:20:30', '2015-11-21 10:20:30', '2015-11-22 10:20:30', '2016-01-01 01:02:03',
  '2016-01-01 01:03:03', '2016-01-01 07:08:03', '2016-01-03 07:02:03', '2016-01-04 10:23:03', '2016-01-04 11:23:03',
  '2016-01-04 12:23:03', '2016-01-04 12:24:03', '2016-01-04 12:28:03', '2016-01-04 12:30:03', '2016-01-04 16:23:03',
  '2016-01-05 09:02:03', '2016-01-06 08:02:03', '2016-01-07 10:02:03', '2016-01-08 20:02:03', '2016-01-09 21:02:03',
  '2016-01-12 21:02:03', '2016-01-12 21:08:03', '2016-01-18 12:02:03',
];

// [restic's test index, policy, expected]
const CASES: [number, RetentionPolicy, string][] = [
  [1, { last: 10 }, '102:L 101:L 100:L 99:L 98:L 97:L 96:L 95:L 94:L 93:L'],
  [2, { last: 15 }, '102:L 101:L 100:L 99:L 98:L 97:L 96:L 95:L 94:L 93:L 92:L 91:L 90:L 89:L 88:L'],
  [3, { last: 99 }, '102:L 101:L 100:L 99:L 98:L 97:L 96:L 95:L 94:L 93:L 92:L 91:L 90:L 89:L 88:L 87:L 86:L 85:L 84:L 83:L 82:L 81:L 80:L 79:L 78:L 77:L 76:L 75:L 74:L 69:L 70:L 71:L 72:L 73:L 68:L 67:L 66:L 65:L 64:L 63:L 62:L 61:L 60:L 49:L 48:L 47:L 46:L 45:L 44:L 43:L 42:L 41:L 40:L 59:L 58:L 57:L 56:L 55:L 54:L 53:L 52:L 51:L 50:L 39:L 38:L 37:L 36:L 35:L 34:L 33:L 32:L 31:L 30:L 29:L 28:L 27:L 26:L 25:L 24:L 23:L 22:L 21:L 20:L 9:L 8:L 7:L 6:L 5:L 4:L 3:L 2:L 1:L 0:L 19:L 18:L 17:L 16:L 15:L 14:L'],
  [4, { last: 200 }, '102:L 101:L 100:L 99:L 98:L 97:L 96:L 95:L 94:L 93:L 92:L 91:L 90:L 89:L 88:L 87:L 86:L 85:L 84:L 83:L 82:L 81:L 80:L 79:L 78:L 77:L 76:L 75:L 74:L 69:L 70:L 71:L 72:L 73:L 68:L 67:L 66:L 65:L 64:L 63:L 62:L 61:L 60:L 49:L 48:L 47:L 46:L 45:L 44:L 43:L 42:L 41:L 40:L 59:L 58:L 57:L 56:L 55:L 54:L 53:L 52:L 51:L 50:L 39:L 38:L 37:L 36:L 35:L 34:L 33:L 32:L 31:L 30:L 29:L 28:L 27:L 26:L 25:L 24:L 23:L 22:L 21:L 20:L 9:L 8:L 7:L 6:L 5:L 4:L 3:L 2:L 1:L 0:L 19:L 18:L 17:L 16:L 15:L 14:L 13:L 12:L 11:L 10:L'],
  [5, { hourly: 20 }, '102:H 101:H 99:H 98:H 97:H 96:H 95:H 94:H 93:H 89:H 88:H 87:H 86:H 85:H 83:H 82:H 81:H 80:H 79:H 78:H'],
  [6, { daily: 3 }, '102:D 101:D 99:D'],
  [7, { daily: 10 }, '102:D 101:D 99:D 98:D 97:D 96:D 95:D 94:D 87:D 86:D'],
  [8, { daily: 30 }, '102:D 101:D 99:D 98:D 97:D 96:D 95:D 94:D 87:D 86:D 83:D 82:D 81:D 80:D 79:D 78:D 76:D 75:D 74:D 69:D 68:D 67:D 66:D 65:D 64:D 63:D 62:D 61:D 60:D 49:D'],
  [9, { last: 5, daily: 5 }, '102:L+D 101:L+D 100:L 99:L+D 98:L+D 97:D'],
  [10, { last: 2, daily: 10 }, '102:L+D 101:L+D 99:D 98:D 97:D 96:D 95:D 94:D 87:D 86:D'],
  [11, { weekly: 2 }, '102:W 101:W'],
  [12, { weekly: 4 }, '102:W 101:W 99:W 87:W'],
  [13, { daily: 3, weekly: 4 }, '102:D+W 101:D+W 99:D+W 87:W'],
  [14, { monthly: 6 }, '102:M 83:M 69:M 49:M 59:M 39:M'],
  [15, { daily: 2, weekly: 2, monthly: 6 }, '102:D+W+M 101:D+W 83:M 69:M 49:M 59:M 39:M'],
  [16, { yearly: 10 }, '102:Y 83:Y 39:Y 10:oY'],
  [17, { daily: 7, weekly: 2, monthly: 3, yearly: 10 }, '102:D+W+M+Y 101:D+W 99:D 98:D 97:D 96:D 95:D 83:M+Y 69:M 39:Y 10:oY'],
  [21, { within: d('1d') }, '102:w'],
  [22, { within: d('2d') }, '102:w'],
  [23, { within: d('7d') }, '102:w 101:w 100:w'],
  [24, { within: d('1m') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w 93:w 92:w 91:w 90:w 89:w 88:w 87:w 86:w 85:w 84:w'],
  [25, { within: d('1m14d') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w 93:w 92:w 91:w 90:w 89:w 88:w 87:w 86:w 85:w 84:w'],
  [26, { within: d('1y1m1d') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w 93:w 92:w 91:w 90:w 89:w 88:w 87:w 86:w 85:w 84:w 83:w 82:w 81:w 80:w 79:w 78:w 77:w 76:w 75:w 74:w 69:w 70:w 71:w 72:w 73:w 68:w 67:w 66:w 65:w 64:w 63:w 62:w 61:w 60:w 49:w 48:w 47:w 46:w 45:w 44:w 43:w 42:w 41:w 40:w 59:w 58:w 57:w 56:w 55:w 54:w 53:w 52:w 51:w 50:w'],
  [27, { within: d('13d23h') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w'],
  [28, { within: d('2m2h') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w 93:w 92:w 91:w 90:w 89:w 88:w 87:w 86:w 85:w 84:w 83:w 82:w 81:w 80:w'],
  [29, { within: d('1y2m3d3h') }, '102:w 101:w 100:w 99:w 98:w 97:w 96:w 95:w 94:w 93:w 92:w 91:w 90:w 89:w 88:w 87:w 86:w 85:w 84:w 83:w 82:w 81:w 80:w 79:w 78:w 77:w 76:w 75:w 74:w 69:w 70:w 71:w 72:w 73:w 68:w 67:w 66:w 65:w 64:w 63:w 62:w 61:w 60:w 49:w 48:w 47:w 46:w 45:w 44:w 43:w 42:w 41:w 40:w 59:w 58:w 57:w 56:w 55:w 54:w 53:w 52:w 51:w 50:w 39:w 38:w 37:w 36:w 35:w'],
  [30, { withinHourly: d('1y2m3d3h') }, '102:wH 101:wH 99:wH 98:wH 97:wH 96:wH 95:wH 94:wH 93:wH 89:wH 88:wH 87:wH 86:wH 85:wH 83:wH 82:wH 81:wH 80:wH 79:wH 78:wH 76:wH 75:wH 74:wH 69:wH 68:wH 67:wH 66:wH 65:wH 64:wH 63:wH 62:wH 61:wH 60:wH 49:wH 48:wH 47:wH 46:wH 45:wH 44:wH 43:wH 42:wH 41:wH 40:wH 59:wH 58:wH 57:wH 56:wH 55:wH 54:wH 52:wH 51:wH 50:wH 39:wH 38:wH 37:wH 36:wH 35:wH'],
  [31, { withinDaily: d('1y2m3d3h') }, '102:wD 101:wD 99:wD 98:wD 97:wD 96:wD 95:wD 94:wD 87:wD 86:wD 83:wD 82:wD 81:wD 80:wD 79:wD 78:wD 76:wD 75:wD 74:wD 69:wD 68:wD 67:wD 66:wD 65:wD 64:wD 63:wD 62:wD 61:wD 60:wD 49:wD 48:wD 47:wD 46:wD 45:wD 44:wD 43:wD 42:wD 41:wD 40:wD 59:wD 58:wD 57:wD 56:wD 55:wD 54:wD 52:wD 51:wD 50:wD 39:wD 38:wD 37:wD 36:wD 35:wD'],
  [32, { withinWeekly: d('1y2m3d3h') }, '102:wW 101:wW 99:wW 87:wW 83:wW 79:wW 74:wW 69:wW 67:wW 61:wW 49:wW 48:wW 47:wW 43:wW 59:wW 55:wW 50:wW 39:wW 35:wW'],
  [33, { withinMonthly: d('1y2m3d3h') }, '102:wM 83:wM 69:wM 49:wM 59:wM 39:wM'],
  [34, { withinYearly: d('1y2m3d3h') }, '102:wY 83:wY 39:wY'],
  [35, { within: d('1h'), withinHourly: d('1d'), withinDaily: d('7d'), withinWeekly: d('1m'), withinMonthly: d('1y'), withinYearly: d('9999y') }, '102:w+wH+wD+wW+wM+wY 101:wD+wW 99:wW 87:wW 83:wM+wY 69:wM 49:wM 59:wM 39:wY 10:owY'],
  [36, { last: Infinity }, '102:L 101:L 100:L 99:L 98:L 97:L 96:L 95:L 94:L 93:L 92:L 91:L 90:L 89:L 88:L 87:L 86:L 85:L 84:L 83:L 82:L 81:L 80:L 79:L 78:L 77:L 76:L 75:L 74:L 69:L 70:L 71:L 72:L 73:L 68:L 67:L 66:L 65:L 64:L 63:L 62:L 61:L 60:L 49:L 48:L 47:L 46:L 45:L 44:L 43:L 42:L 41:L 40:L 59:L 58:L 57:L 56:L 55:L 54:L 53:L 52:L 51:L 50:L 39:L 38:L 37:L 36:L 35:L 34:L 33:L 32:L 31:L 30:L 29:L 28:L 27:L 26:L 25:L 24:L 23:L 22:L 21:L 20:L 9:L 8:L 7:L 6:L 5:L 4:L 3:L 2:L 1:L 0:L 19:L 18:L 17:L 16:L 15:L 14:L 13:L 12:L 11:L 10:L'],
  [37, { last: Infinity, hourly: Infinity }, '102:L+H 101:L+H 100:L 99:L+H 98:L+H 97:L+H 96:L+H 95:L+H 94:L+H 93:L+H 92:L 91:L 90:L 89:L+H 88:L+H 87:L+H 86:L+H 85:L+H 84:L 83:L+H 82:L+H 81:L+H 80:L+H 79:L+H 78:L+H 77:L 76:L+H 75:L+H 74:L+H 69:L+H 70:L 71:L 72:L 73:L 68:L+H 67:L+H 66:L+H 65:L+H 64:L+H 63:L+H 62:L+H 61:L+H 60:L+H 49:L+H 48:L+H 47:L+H 46:L+H 45:L+H 44:L+H 43:L+H 42:L+H 41:L+H 40:L+H 59:L+H 58:L+H 57:L+H 56:L+H 55:L+H 54:L+H 53:L 52:L+H 51:L+H 50:L+H 39:L+H 38:L+H 37:L+H 36:L+H 35:L+H 34:L+H 33:L 32:L+H 31:L+H 30:L+H 29:L+H 28:L+H 27:L+H 26:L+H 25:L+H 24:L+H 23:L+H 22:L+H 21:L+H 20:L+H 9:L+H 8:L+H 7:L+H 6:L+H 5:L+H 4:L+H 3:L+H 2:L+H 1:L+H 0:L+H 19:L+H 18:L+H 17:L+H 16:L+H 15:L+H 14:L+H 13:L 12:L+H 11:L+H 10:L+H'],
  [38, { hourly: Infinity }, '102:H 101:H 99:H 98:H 97:H 96:H 95:H 94:H 93:H 89:H 88:H 87:H 86:H 85:H 83:H 82:H 81:H 80:H 79:H 78:H 76:H 75:H 74:H 69:H 68:H 67:H 66:H 65:H 64:H 63:H 62:H 61:H 60:H 49:H 48:H 47:H 46:H 45:H 44:H 43:H 42:H 41:H 40:H 59:H 58:H 57:H 56:H 55:H 54:H 52:H 51:H 50:H 39:H 38:H 37:H 36:H 35:H 34:H 32:H 31:H 30:H 29:H 28:H 27:H 26:H 25:H 24:H 23:H 22:H 21:H 20:H 9:H 8:H 7:H 6:H 5:H 4:H 3:H 2:H 1:H 0:H 19:H 18:H 17:H 16:H 15:H 14:H 12:H 11:H 10:H'],
  [39, { daily: 3, weekly: 2, monthly: Infinity, yearly: Infinity }, '102:D+W+M+Y 101:D+W 99:D 83:M+Y 69:M 49:M 59:M 39:M+Y 29:M 9:M 19:M 10:oM+oY'],
];

const ABBREVIATION: Record<string, string> = { last: 'L', hourly: 'H', daily: 'D', weekly: 'W', monthly: 'M', yearly: 'Y' };

function abbreviate(r: KeepReason): string {
  if (r.rule === 'within') return 'w';
  if (r.rule === 'newest') return 'NEWEST';
  const oldest = 'oldest' in r && r.oldest ? 'o' : '';
  if (r.rule.startsWith('within-')) return `${oldest}w${ABBREVIATION[r.rule.slice('within-'.length)]}`;
  return `${oldest}${ABBREVIATION[r.rule]}`;
}

describe("restic's golden policy results", () => {
  const prevTZ = process.env.TZ;
  const toSeconds = (t: string) => Date.parse(`${t.replace(' ', 'T')}Z`) / 1000;
  // restic sorts newest first, stably: of equal times the earlier in the list counts as newer.
  // Ids rise with time, as backup ids do.
  const order = RESTIC_INPUT.map((_, i) => i).sort((a, b) => toSeconds(RESTIC_INPUT[b]!) - toSeconds(RESTIC_INPUT[a]!) || a - b);
  const idOf = new Map(order.map((inputIndex, rank) => [inputIndex, RESTIC_INPUT.length - rank]));
  const indexOf = new Map([...idOf].map(([i, id]) => [id, i]));
  const backups = RESTIC_INPUT.map((t, i) => ({ id: idOf.get(i)!, timestamp: toSeconds(t) }));

  for (const [n, policy, expected] of CASES) {
    it(`policy_keep_snapshots_${n}: ${describeRetentionPolicy(policy)}`, () => {
      process.env.TZ = 'UTC'; // restic's test times are UTC, and so are its buckets
      try {
        assert.equal(new Date(2020, 6, 1).getTimezoneOffset(), 0, 'TZ=UTC not honoured');
        const plan = applyRetentionPolicy(backups, policy, { now: toSeconds('2020-01-01 00:00:00') });
        const got = plan.keep.map((k) => `${indexOf.get(k.id)}:${k.reasons.map(abbreviate).join('+')}`).join(' ');
        assert.equal(got, expected);
        assert.equal(plan.keep.length + plan.remove.length, RESTIC_INPUT.length);
        assert.deepEqual(plan.corrupt, []);
      } finally {
        if (prevTZ === undefined) delete process.env.TZ;
        else process.env.TZ = prevTZ;
      }
    });
  }
});
