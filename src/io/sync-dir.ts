// fsync of a directory: makes the names created, renamed or removed in it durable (a file's own
// fsync does not cover its directory entry).
import * as fsp from 'node:fs/promises';

export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
