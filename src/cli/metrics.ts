// --metrics-file: the outcome of a run in Prometheus' text format, for node_exporter's textfile
// collector. The file is replaced atomically (tmp + rename in its directory), so the collector
// never reads half of it. Series of other commands or backup dirs found in the file are kept, and
// across runs the last success time and the counters carry over: a failed run leaves the last
// success time as it was, which is what a staleness alert looks at.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface RunStats {
  bytesCopied?: number;
  bytesReused?: number;
  bytesChecked?: number;
  files?: number;
  backupsDeleted?: number;
}

export interface RunOutcome {
  command: string;
  backupDir: string;
  /** Unix time the run ended, in seconds. */
  endedAt: number;
  durationSeconds: number;
  exitCode: number;
  /** The error's code (CairnError code, "Usage", "Error") when the run failed. */
  errorCode?: string;
  stats: RunStats;
  /** Requests the store received, by verb (GET, PUT, …), when the env counts them. */
  requests?: Record<string, number>;
}

interface Sample { name: string; labels: Record<string, string>; value: number }

const METRICS: Record<string, { type: 'gauge' | 'counter'; help: string }> = {
  cairn_last_success_timestamp_seconds: { type: 'gauge', help: 'Unix time of the last successful run (0: none yet).' },
  cairn_last_run_timestamp_seconds: { type: 'gauge', help: 'Unix time the last run ended.' },
  cairn_last_run_success: { type: 'gauge', help: '1 if the last run succeeded, else 0.' },
  cairn_last_run_exit_code: { type: 'gauge', help: 'Exit code of the last run.' },
  cairn_last_run_duration_seconds: { type: 'gauge', help: 'How long the last run took.' },
  cairn_last_run_bytes_copied: { type: 'gauge', help: 'Bytes the last run copied (backup: uploaded; restore: written).' },
  cairn_last_run_bytes_reused: { type: 'gauge', help: 'Bytes of shared files the last backup reused instead of copying.' },
  cairn_last_run_bytes_checked: { type: 'gauge', help: 'Bytes the last verify checked.' },
  cairn_last_run_files: { type: 'gauge', help: 'Files the last run handled (backed up, restored, checked or removed).' },
  cairn_last_run_backups_deleted: { type: 'gauge', help: 'Backups the last run deleted.' },
  cairn_last_run_requests: { type: 'gauge', help: 'Requests the last run sent to the store, by verb.' },
  cairn_runs_total: { type: 'counter', help: 'Runs, successful or not.' },
  cairn_errors_total: { type: 'counter', help: 'Failed runs, by error code.' },
};

const STAT_METRICS: [keyof RunStats, string][] = [
  ['bytesCopied', 'cairn_last_run_bytes_copied'],
  ['bytesReused', 'cairn_last_run_bytes_reused'],
  ['bytesChecked', 'cairn_last_run_bytes_checked'],
  ['files', 'cairn_last_run_files'],
  ['backupsDeleted', 'cairn_last_run_backups_deleted'],
];

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const unescapeLabel = (v: string) => v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));

/** The samples of a text-format file (comments and malformed lines are skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = unescapeLabel(l[2]!);
    const value = Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export function formatMetrics(samples: Sample[]): string {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  let text = '';
  for (const [name, list] of byName) {
    const meta = METRICS[name];
    if (meta) text += `# HELP ${name} ${meta.help}\n# TYPE ${name} ${meta.type}\n`;
    for (const s of list) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
      text += `${name}${labels ? `{${labels}}` : ''} ${s.value}\n`;
    }
  }
  return text;
}

/** The file's new samples: this run's, merged with what the previous file held. */
export function mergeRun(previous: Sample[], run: RunOutcome): Sample[] {
  const base = { command: run.command, backup_dir: run.backupDir };
  const ours = (s: Sample) => s.labels.command === run.command && s.labels.backup_dir === run.backupDir;
  const prev = previous.filter(ours);
  const prevValue = (name: string, extra: Record<string, string> = {}) =>
    prev.find((s) => s.name === name && Object.entries(extra).every(([k, v]) => s.labels[k] === v))?.value ?? 0;
  const ok = run.exitCode === 0;
  const samples: Sample[] = previous.filter((s) => !ours(s));
  const add = (name: string, value: number, extra: Record<string, string> = {}) => samples.push({ name, labels: { ...base, ...extra }, value });
  add('cairn_last_success_timestamp_seconds', ok ? run.endedAt : prevValue('cairn_last_success_timestamp_seconds'));
  add('cairn_last_run_timestamp_seconds', run.endedAt);
  add('cairn_last_run_success', ok ? 1 : 0);
  add('cairn_last_run_exit_code', run.exitCode);
  add('cairn_last_run_duration_seconds', Number(run.durationSeconds.toFixed(3)));
  for (const [key, name] of STAT_METRICS) {
    const v = run.stats[key];
    if (v !== undefined) add(name, v);
  }
  for (const [verb, n] of Object.entries(run.requests ?? {}).sort()) add('cairn_last_run_requests', n, { verb });
  add('cairn_runs_total', prevValue('cairn_runs_total') + 1);
  const codes = new Set(prev.filter((s) => s.name === 'cairn_errors_total').map((s) => s.labels.code ?? ''));
  if (!ok) codes.add(run.errorCode ?? 'Error');
  for (const code of [...codes].sort()) {
    add('cairn_errors_total', prevValue('cairn_errors_total', { code }) + (!ok && code === (run.errorCode ?? 'Error') ? 1 : 0), { code });
  }
  return samples;
}

/** Reads the previous file (if any), merges this run in and replaces the file atomically. */
export async function writeMetricsFile(file: string, run: RunOutcome): Promise<void> {
  const previous = await fsp.readFile(file, 'utf8').then(parseMetrics, (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  // The collector reads only *.prom files: a dot-file tmp in the same directory is never read.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fsp.writeFile(tmp, formatMetrics(mergeRun(previous, run)), { mode: 0o644 });
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
