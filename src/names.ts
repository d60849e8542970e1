// Validation of names inside a backup directory. Names come from manifests that may be corrupt or
// hostile, so every provider and the restore path refuse anything that could leave its root.
import { invalidArgument } from './errors.ts';

/** True for a relative '/'-separated name with no empty, '.' or '..' segment and no NUL/backslash. */
export function isSafeRelativeName(name: string): boolean {
  if (name.length === 0 || name.length > 1024) return false;
  if (name.includes('\0') || name.includes('\\')) return false;
  if (name.startsWith('/')) return false;
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return false;
  }
  return true;
}

export function assertSafeName(name: string): void {
  if (!isSafeRelativeName(name)) throw invalidArgument(`unsafe name in backup directory: ${JSON.stringify(name)}`, { file: name });
}

/** True for a plain file name (one path segment), as every file of a RocksDB DB directory is. */
export function isPlainFileName(name: string): boolean {
  return isSafeRelativeName(name) && !name.includes('/');
}
