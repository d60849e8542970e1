// --checkpoint-cmd: the user's command makes the checkpoint that is backed up.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

/** Runs the user's checkpoint command with CAIRN_DB_DIR and CAIRN_CHECKPOINT_DIR set. */
export function runCheckpointCmd(cmd: string, dbDir: string, checkpointDir: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', cmd], {
      env: { ...process.env, CAIRN_DB_DIR: path.resolve(dbDir), CAIRN_CHECKPOINT_DIR: checkpointDir },
      stdio: ['ignore', 'ignore', 'pipe'],
      signal,
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      if (code === 0) resolve();
      else reject(new Error(`--checkpoint-cmd exited ${code ?? sig}: ${stderr.trim()}`));
    });
  });
}
