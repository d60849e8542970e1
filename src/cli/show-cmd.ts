// `cairn show --id N [--files]`: one backup in detail, as RocksDB's GetBackupInfo(id,
// include_file_details) gives it: id, time, size, number of files, sequence number, app metadata
// and, with --files, every file with its size, crc32c, whether it is shared with other backups
// and how many of them use it.
import { isSharedName } from '../backup/layout.ts';
import { oneBackup, required, stringOption, wholeNumber } from './args.ts';
import type { CommandContext, CommandResult } from './commands.ts';
import { EXIT, printResult } from './output.ts';
import { formatBytes } from './units.ts';

export interface ShownFile {
  name: string;
  size: number;
  crc32c: number | null;
  /** In shared/ or shared_checksum/: one stored copy that any backup of the DB may use. */
  shared: boolean;
  /** How many valid backups in the directory use this stored file. */
  backups: number;
}

export async function show(ctx: CommandContext): Promise<CommandResult> {
  const id = required(wholeNumber(stringOption(ctx.values, 'id'), '--id', 1), '--id');
  const withFiles = ctx.values.files === true;
  // --files says how many backups use each file: every manifest is needed then.
  const engine = await ctx.openEngine({ readOnly: true, ...(withFiles ? {} : oneBackup(id)), signal: ctx.signal });
  // Unknown: NotFound (exit 4); corrupt: its Corruption error (exit 3).
  const info = engine.getBackupInfo(id, { includeFileDetails: withFiles });
  const doc = {
    id: info.id,
    timestamp: info.timestamp,
    size: info.size,
    numFiles: info.numFiles,
    sequence: info.sequence,
    appMetadata: info.appMetadata.toString('utf8'),
    ...(withFiles ? { files: (info.files ?? []).map((f): ShownFile => ({ name: f.name, size: f.size, crc32c: f.crc32c ?? null, shared: isSharedName(f.name), backups: f.usedBy ?? 1 })) } : {}),
  };
  const lines = [
    `backup ${doc.id}`,
    `  created   ${new Date(doc.timestamp * 1000).toISOString()} (${doc.timestamp})`,
    `  size      ${doc.size} bytes (${formatBytes(doc.size)})`,
    `  files     ${doc.numFiles}`,
    `  sequence  ${doc.sequence}`,
    `  metadata  ${doc.appMetadata === '' ? '(none)' : JSON.stringify(doc.appMetadata)}`,
  ];
  if (doc.files) {
    const width = Math.max(4, ...doc.files.map((f) => String(f.size).length));
    lines.push('', `  ${'size'.padStart(width)}  ${'crc32c'.padStart(10)}  shared  backups  name`);
    for (const f of doc.files) {
      lines.push(`  ${String(f.size).padStart(width)}  ${String(f.crc32c ?? '-').padStart(10)}  ${(f.shared ? 'yes' : 'no').padEnd(6)}  ${String(f.backups).padStart(7)}  ${f.name}`);
    }
  }
  printResult(ctx, doc, lines.join('\n'));
  return { code: EXIT.ok, stats: {} };
}
