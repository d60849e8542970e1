// Child processes in tests, and waiting for the condition a test needs instead of a fixed
// sleep: the suite runs on busy machines where any fixed delay is sometimes too short.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { TestContext } from 'node:test';

export interface Child {
  child: ChildProcess;
  /** Everything written to stderr / stdout so far (when piped). */
  stderr(): string;
  stdout(): string;
  /** Resolves with the exit code (null when ended by a signal), never rejects. */
  exited: Promise<number | null>;
  /** Resolves once `cond()` holds, checked whenever the process writes; rejects if it exits first. */
  until(cond: () => boolean, what: string): Promise<void>;
  /** SIGKILLs it unless it has exited (SIGCONT first, in case it was stopped), then waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Spawns a process that is SIGKILLed and waited for when test `t` ends, whether it passed or
 * failed: a failed test must not leave a writer behind holding a DB or a port the next one needs.
 */
export function spawnChild(t: TestContext, cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let err = '';
  let out = '';
  const waiters = new Set<() => void>();
  child.stderr?.on('data', (d) => {
    err += d;
    for (const w of [...waiters]) w();
  });
  child.stdout?.on('data', (d) => {
    out += d;
    for (const w of [...waiters]) w();
  });
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve(code);
    });
    child.once('error', () => {
      done = true;
      resolve(null);
    });
  });
  const c: Child = {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    until: (cond, what) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (cond()) {
            waiters.delete(check);
            resolve();
          } else if (done) {
            waiters.delete(check);
            reject(new Error(`${cmd} exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr:\n${err.slice(-4000)}`));
          }
        };
        waiters.add(check);
        check();
      }),
    kill: async () => {
      if (!done && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
  t.after(() => c.kill());
  return c;
}

/**
 * Resolves once `probe()` returns a value other than undefined, probing on every turn of the
 * event loop with a short pause (no deadline: the test's own timeout bounds the wait, and says
 * which test hung). `what` names the condition in the error if `stop` aborts the wait.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, stop?: Promise<unknown>): Promise<T> {
  let stopped = false;
  void stop?.then(() => { stopped = true; }, () => { stopped = true; });
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (stopped) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
