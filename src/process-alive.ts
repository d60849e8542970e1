// Whether a process of this machine still runs: how cairn tells the leftovers (pin directories,
// writer locks) of a killed run from those of a live one.

/** True unless no process has this pid here (a process we may not signal counts as running). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
