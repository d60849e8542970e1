// RocksDB's OPTIONS-<n> files (options/options_parser.cc): an INI-like text of `[Section "name"]`
// headers and `key=value` lines, `#` comments. cairn reads only a few DBOptions from it.

/** The value of `key` in the first section whose header starts with `section`, or undefined. */
export function optionValue(text: string, section: string, key: string): string | undefined {
  let inSection = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    if (line.startsWith('[')) {
      inSection = line === `[${section}]` || line.startsWith(`[${section} `);
      continue;
    }
    if (!inSection) continue;
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq).trim() === key) return line.slice(eq + 1).trim();
  }
  return undefined;
}
