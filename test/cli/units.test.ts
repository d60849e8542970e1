import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, parseBytes, parseDuration, UnitError } from '../../src/cli/units.ts';

describe('parseBytes', () => {
  it('reads plain bytes and binary and decimal units, in any case', () => {
    const cases: [string, number][] = [
      ['0', 0], ['1048576', 1048576], ['512k', 512 * 1024], ['512K', 512 * 1024], ['512KiB', 512 * 1024],
      ['50MiB', 50 * 1024 ** 2], ['50m', 50 * 1024 ** 2], ['1G', 1024 ** 3], ['1gib', 1024 ** 3],
      ['2TB', 2e12], ['10MB', 10_000_000], ['1.5G', 1.5 * 1024 ** 3], ['100b', 100], [' 7 MiB ', 7 * 1024 ** 2],
      ['1.5', 1], // fractions of a byte round down
    ];
    for (const [text, bytes] of cases) assert.equal(parseBytes(text), bytes, text);
  });
  it('refuses what is not a size', () => {
    for (const bad of ['', '-1', '-3M', 'many', '1X', '1 G B', 'G', '1e3', '0x10', '1..2k', '99999999999T']) {
      assert.throws(() => parseBytes(bad), UnitError, bad);
    }
  });
});

describe('parseDuration', () => {
  it('reads units from ms to years, compounds, and bare seconds', () => {
    const cases: [string, number][] = [
      ['90s', 90_000], ['15m', 900_000], ['12h', 12 * 3_600_000], ['30d', 30 * 86_400_000], ['2w', 14 * 86_400_000],
      ['1y', 365 * 86_400_000], ['1h30m', 5_400_000], ['250ms', 250], ['45', 45_000], ['1.5h', 5_400_000], ['30D', 30 * 86_400_000],
      ['2min', 120_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });
  it('refuses what is not a duration', () => {
    for (const bad of ['', '-1d', 'd', '30 days', '1mo', '3x', '1h-30m', 'soon', '1e9y']) {
      assert.throws(() => parseDuration(bad), UnitError, bad);
    }
  });
});

describe('formatting', () => {
  it('formats sizes and durations for people', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(50 * 1024 ** 2), '50.0 MiB');
    assert.equal(formatBytes(300 * 1024 ** 3), '300 GiB');
    assert.equal(formatDuration(45), '45s');
    assert.equal(formatDuration(185), '3m05s');
    assert.equal(formatDuration(7620), '2h07m');
    assert.equal(formatDuration(400 * 3600), '16d');
  });
});
