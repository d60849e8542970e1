// Progress on stderr: a bar with rate and ETA for a person at a terminal, NDJSON events for a
// wrapper script (--progress json), or nothing (--quiet, or stderr not a terminal).
import type { ProgressEvent } from '../backup/engine.ts';
import { formatBytes, formatDuration } from './units.ts';

export type ProgressMode = 'auto' | 'bar' | 'json' | 'none';
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'bar', 'json', 'none'];

/**
 * Bytes per second, smoothed: an exponentially weighted average with a time constant of a few
 * seconds, so one slow file or a burst of small ones moves the ETA gently. Samples closer than
 * minInterval are folded into the next one (a burst of events carries no rate information).
 */
export class RateEstimator {
  private lastT: number | undefined;
  private lastBytes = 0;
  private startT: number | undefined;
  private smoothed: number | undefined;
  private readonly tauMs: number;
  private readonly minIntervalMs: number;
  constructor(tauMs = 5000, minIntervalMs = 500) {
    this.tauMs = tauMs;
    this.minIntervalMs = minIntervalMs;
  }

  /** Feeds bytes done so far at time nowMs; returns the current estimate (bytes/s), if any. */
  update(bytesDone: number, nowMs: number): number | undefined {
    if (this.lastT === undefined || this.startT === undefined) {
      this.startT = this.lastT = nowMs;
      this.lastBytes = bytesDone;
      return undefined;
    }
    const dt = nowMs - this.lastT;
    if (dt >= this.minIntervalMs) {
      const inst = ((bytesDone - this.lastBytes) * 1000) / dt;
      const alpha = 1 - Math.exp(-dt / this.tauMs);
      this.smoothed = this.smoothed === undefined ? inst : alpha * inst + (1 - alpha) * this.smoothed;
      this.lastT = nowMs;
      this.lastBytes = bytesDone;
    }
    return this.smoothed;
  }

  /** Seconds left for `remaining` bytes at the current estimate; undefined while unknown. */
  eta(remaining: number): number | undefined {
    if (remaining <= 0) return 0;
    return this.smoothed && this.smoothed > 0 ? remaining / this.smoothed : undefined;
  }
}

export interface ProgressReporter {
  /** Passed to the engine's onProgress (undefined: no progress wanted). */
  onProgress?: (ev: ProgressEvent) => void;
  start(): void;
  end(outcome: { exitCode: number; durationSeconds: number; error?: { code: string; message: string } }): void;
}

export interface ReporterOptions {
  mode: ProgressMode;
  command: string;
  backupDir?: string;
  /** Whether stderr is a terminal (auto draws the bar only then). */
  isTTY: boolean;
  write?: (s: string) => void;
  now?: () => number;
}

/** Tracks one operation's rate; a new operation (or backup, in a verify of several) starts afresh. */
function rateTracker(now: () => number) {
  let key = '';
  let est = new RateEstimator();
  let startedAt = now();
  return (ev: ProgressEvent) => {
    const k = `${ev.operation}:${ev.backupId}`;
    if (k !== key) {
      key = k;
      est = new RateEstimator();
      startedAt = now();
    }
    const t = now();
    const rate = est.update(ev.bytesDone, t);
    return { rate, eta: est.eta(ev.bytesTotal - ev.bytesDone), elapsed: (t - startedAt) / 1000 };
  };
}

function barReporter(write: (s: string) => void, now: () => number): ProgressReporter {
  let last = 0;
  let ended = false;
  let key = '';
  const track = rateTracker(now);
  return {
    start() {},
    end() {
      if (!ended && last !== 0) write('\n');
    },
    onProgress(ev) {
      const k = `${ev.operation}:${ev.backupId}`;
      if (k !== key) {
        key = k;
        ended = false;
      }
      const { rate, eta } = track(ev);
      const t = now();
      if (ended || (t - last < 100 && ev.filesDone !== ev.filesTotal)) return;
      last = t;
      const frac = ev.bytesTotal > 0 ? ev.bytesDone / ev.bytesTotal : 1;
      const width = 30;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const speed = rate === undefined ? '' : `  ${formatBytes(rate)}/s`;
      const left = ev.filesDone === ev.filesTotal ? '' : eta === undefined ? '  ETA --' : `  ETA ${formatDuration(eta)}`;
      const kept = ev.filesKept ? `, ${ev.filesKept} kept (${formatBytes(ev.bytesReused ?? 0)})` : '';
      write(`\r${ev.operation} ${ev.backupId} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(ev.bytesDone)}/${formatBytes(ev.bytesTotal)} ${ev.filesDone}/${ev.filesTotal} files${kept}${speed}${left}\x1b[K`);
      if (ev.filesDone === ev.filesTotal) {
        write('\n');
        ended = true;
      }
    },
  };
}

/**
 * One JSON object per line, each with `event` ("start", "progress", "end"), `command` and
 * `time` (ISO 8601). See the README for the fields.
 */
function jsonReporter(o: ReporterOptions, write: (s: string) => void, now: () => number): ProgressReporter {
  const emit = (event: string, fields: Record<string, unknown>) =>
    write(JSON.stringify({ event, command: o.command, time: new Date(now()).toISOString(), ...fields }) + '\n');
  const track = rateTracker(now);
  const round = (n: number | undefined, digits: number) => (n === undefined ? null : Number(n.toFixed(digits)));
  return {
    start: () => emit('start', { backupDir: o.backupDir ?? null, pid: process.pid }),
    end: (r) => emit('end', { ok: r.exitCode === 0, exitCode: r.exitCode, durationSeconds: round(r.durationSeconds, 3), ...(r.error ? { error: r.error } : {}) }),
    onProgress(ev) {
      const { rate, eta, elapsed } = track(ev);
      emit('progress', {
        operation: ev.operation, backupId: ev.backupId, file: ev.file ?? null,
        bytesDone: ev.bytesDone, bytesTotal: ev.bytesTotal, filesDone: ev.filesDone, filesTotal: ev.filesTotal,
        ...(ev.filesKept === undefined ? {} : { filesKept: ev.filesKept, bytesReused: ev.bytesReused ?? 0 }),
        bytesPerSecond: round(rate, 0), etaSeconds: round(eta, 1), elapsedSeconds: round(elapsed, 3),
      });
    },
  };
}

export function progressReporter(o: ReporterOptions): ProgressReporter {
  const write = o.write ?? ((s: string) => void process.stderr.write(s));
  const now = o.now ?? Date.now;
  if (o.mode === 'json') return jsonReporter(o, write, now);
  if (o.mode === 'bar' || (o.mode === 'auto' && o.isTTY)) return barReporter(write, now);
  return { start() {}, end() {} };
}
