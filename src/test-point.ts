// Points where a crash test stops a real cairn process at an exact step (RocksDB's
// TEST_SYNC_POINT, reduced to what the tests need): with CAIRN_TEST_STOP_AT=<point>:<text> set,
// the process stops itself (SIGSTOP) the first time it reaches <point> for a name containing
// <text>, after saying so on stderr, for the test to SIGKILL it there. Some steps are too short
// to catch from outside (an fsync and a rename after a file's last byte). Unset, as it is outside
// tests, a point costs one lookup.
import { envValue } from './env-var.ts';

export const TEST_STOP_VAR = 'CAIRN_TEST_STOP_AT';

let stopped = false;

export function testPoint(point: string, name: string): void {
  const want = envValue(process.env, TEST_STOP_VAR);
  if (want === undefined || stopped) return;
  const colon = want.indexOf(':');
  if (colon < 0 || want.slice(0, colon) !== point || !name.includes(want.slice(colon + 1))) return;
  stopped = true;
  process.stderr.write(`cairn: stopped at test point ${point} (${name})\n`);
  process.kill(process.pid, 'SIGSTOP');
}
