// Runs the CLI as a separate process, as a user or a timer would.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const mainTs = path.join(root, 'src/cli/main.ts');

export interface Run { code: number; stdout: string; stderr: string }

export function cairn(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--disable-warning=ExperimentalWarning', mainTs, ...args], { cwd: opts.cwd ?? root, env: { ...process.env, CAIRN_HEARTBEAT_URL: '', ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
