// How the benchmarks start cairn's CLI: the way bin/cairn does (the built dist/ with the V8 flags
// of bin/node-flags), minus bin/cairn's start-up checks, which would add tens of ms to the short
// runs. A checkout without bin/node-flags (an older baseline) runs with none, as it did then.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The V8 flags of a checkout's bin/node-flags (none if it has no such file). */
export function nodeFlags(checkout: string): string[] {
  const file = path.join(checkout, 'bin', 'node-flags');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Node's arguments before cairn's own: the flags, then the built CLI of `checkout`. */
export function cairnCli(checkout: string): string[] {
  return [...nodeFlags(checkout), '--disable-warning=ExperimentalWarning', path.join(checkout, 'dist', 'src', 'cli', 'cairn.js')];
}
