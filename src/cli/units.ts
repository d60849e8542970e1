// Byte sizes and durations as operators write them on a command line or in a unit file.
// Sizes: K, M, G, T (and KiB, MiB, GiB, TiB) are powers of 1024, as in dd, systemd and RocksDB's
// own tools; KB, MB, GB, TB are powers of 1000 for those who mean that. Case does not matter.

const BYTE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};

// A year is 365 days and there is no month: a retention of "30d" says exactly what it means.
const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000, sec: 1000,
  m: 60_000, min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/** Why a value was refused; the caller names the flag it came from. */
export class UnitError extends Error {}

/** `50MiB`, `1G`, `512k`, `1.5GB`, `1048576` → bytes (a whole number; fractions round down). */
export function parseBytes(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UnitError(`a size in bytes, with an optional unit (512k, 50MiB, 1G, 2TB), got ${JSON.stringify(text)}`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`${JSON.stringify(text)} is too large`);
  return bytes;
}

/**
 * `30d`, `2w`, `12h`, `90s`, `1y`, `1h30m`, `250ms` → milliseconds. A bare number is seconds
 * (as in systemd).
 */
export function parseDuration(text: string): number {
  const t = text.trim().toLowerCase();
  if (/^[0-9]+(?:\.[0-9]+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const part = /([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)/gy;
  let ms = 0;
  let end = 0;
  for (let m = part.exec(t); m; m = part.exec(t)) {
    const unit = DURATION_UNITS_MS[m[2]!];
    if (unit === undefined) break;
    ms += Number(m[1]) * unit;
    end = part.lastIndex;
  }
  if (t === '' || end !== t.length) throw new UnitError(`a duration such as 90s, 15m, 12h, 30d, 2w, 1y or 1h30m, got ${JSON.stringify(text)}`);
  if (!Number.isSafeInteger(Math.round(ms))) throw new UnitError(`${JSON.stringify(text)} is too long`);
  return Math.round(ms);
}

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB": for progress lines and messages. */
export function formatBytes(n: number): string {
  let i = 0;
  while (Math.abs(n) >= 1024 && i < BINARY.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${BINARY[i]}`;
}

/** Seconds → "45s", "3m05s", "2h07m": for an ETA. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 100 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d`;
}
