// Runs one command under GNU time for wall time and peak RSS, with a timeout that kills its whole
// process group; a run killed by the timeout (or by the kernel's OOM killer) still gets a peak RSS,
// from polling the VmHWM of the processes under GNU time.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RunResult {
  ok: boolean;
  secs: number;
  rssMiB: number;
  exit: number | null;
  /** Why it failed: exit code, signal or timeout, with the last line of stderr. */
  error?: string;
  stdout: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  timeoutMs: number;
  /** Exit codes that count as success (default [0]). */
  okExits?: number[];
}

function descendantsHwmKiB(pid: number): number {
  let max = 0;
  const visit = (p: number) => {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) max = Math.max(max, Number(m[1]));
      for (const c of fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/)) if (c) visit(Number(c));
    } catch {
      // gone meanwhile
    }
  };
  visit(pid);
  return max;
}

/** With --json, cairn reports on stdout: an {"error"} document, or verify's results with failures. */
function jsonError(stdout: string): string {
  try {
    const j = JSON.parse(stdout) as { error?: { message?: string } } | { ok?: boolean; error?: string; problems?: { message: string }[] }[];
    if (!Array.isArray(j)) return j.error?.message ?? '';
    const bad = j.filter((r) => r.ok === false);
    const first = bad[0]?.error ?? bad[0]?.problems?.[0]?.message ?? '';
    return `${bad.length} of ${j.length} backups failed; first: ${first}`;
  } catch {
    return stdout.slice(-200).replace(/\s+/g, ' ');
  }
}

export async function timedRun(cmd: string, args: string[], o: RunOptions): Promise<RunResult> {
  const tf = path.join(os.tmpdir(), `cairn-bench-scale-${process.pid}.time`);
  fs.rmSync(tf, { force: true });
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-o', tf, '-f', '%e %M', cmd, ...args], { env: { ...process.env, ...o.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 64 << 20) stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-8192); });
  let polledKiB = 0;
  const poll = setInterval(() => { if (child.pid) polledKiB = Math.max(polledKiB, descendantsHwmKiB(child.pid)); }, 500);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
  }, o.timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('close', (c, s) => r([c, s])));
  clearTimeout(timer);
  clearInterval(poll);
  const wall = (performance.now() - t0) / 1000;
  let secs = wall;
  let rssMiB = polledKiB / 1024;
  const timeLine = fs.existsSync(tf) ? fs.readFileSync(tf, 'utf8').trim().split('\n') : [];
  const last = timeLine.at(-1)?.split(' ').map(Number);
  if (last && last.length === 2 && last.every(Number.isFinite)) {
    secs = last[0];
    rssMiB = Math.max(rssMiB, last[1] / 1024);
  }
  const killedBy = timeLine.find((l) => l.startsWith('Command terminated by signal'));
  fs.rmSync(tf, { force: true });
  // V8's out-of-memory abort ends with a native stack trace: its FATAL ERROR line says what happened.
  const fatal = /^.*FATAL ERROR:.*$/m.exec(stderr)?.[0];
  const lastErr = fatal || stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Command exited') && !l.startsWith('Command terminated')).slice(-1)[0] || jsonError(stdout);
  const okExits = o.okExits ?? [0];
  if (timedOut) return { ok: false, secs: wall, rssMiB, exit: null, error: `timed out after ${(o.timeoutMs / 1000).toFixed(0)} s (killed)`, stdout };
  if (killedBy || signal) return { ok: false, secs, rssMiB, exit: null, error: `${killedBy ?? `killed by ${signal}`}: ${lastErr}`.slice(0, 300), stdout };
  if (!okExits.includes(code ?? -1)) return { ok: false, secs, rssMiB, exit: code, error: `exit ${code}: ${lastErr}`.slice(0, 300), stdout };
  return { ok: true, secs, rssMiB, exit: code, stdout };
}
