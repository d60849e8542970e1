// Reads the VersionEdit dumps in `ldb manifest_dump --verbose --hex` output (kept in
// test/fixtures/rocksdb/tool-output/) into the numbers a decoder must reproduce.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './helpers.ts';

export interface DumpedEdit {
  comparator?: string;
  logNumber?: number;
  prevLogNumber?: number;
  nextFileNumber?: number;
  lastSequence?: number;
  minLogNumberToKeep?: number;
  maxColumnFamily?: number;
  columnFamily: number;
  columnFamilyAdd?: string;
  columnFamilyDrop?: boolean;
  deletedFiles: { level: number; number: number }[];
  newFiles: { level: number; number: number; size: number; oldestBlobFileNumber?: number }[];
  blobFileAdditions: { number: number; totalCount: number; totalBytes: number }[];
  blobFileGarbage: { number: number; garbageCount: number; garbageBytes: number }[];
}

export function dumpedEdits(db: string): DumpedEdit[] {
  const text = readFileSync(join(FIXTURES, 'tool-output', db, 'manifest_dump.txt'), 'latin1');
  const edits: DumpedEdit[] = [];
  let e: DumpedEdit | undefined;
  for (const line of text.split('\n')) {
    let m: RegExpMatchArray | null;
    if (line === 'VersionEdit {') {
      e = { columnFamily: -1, deletedFiles: [], newFiles: [], blobFileAdditions: [], blobFileGarbage: [] };
      edits.push(e);
    } else if (line === '}') e = undefined;
    else if (!e) continue;
    else if ((m = line.match(/^ {2}Comparator: (.*)$/))) e.comparator = m[1];
    else if ((m = line.match(/^ {2}LogNumber: (\d+)$/))) e.logNumber = Number(m[1]);
    else if ((m = line.match(/^ {2}PrevLogNumber: (\d+)$/))) e.prevLogNumber = Number(m[1]);
    else if ((m = line.match(/^ {2}NextFileNumber: (\d+)$/))) e.nextFileNumber = Number(m[1]);
    else if ((m = line.match(/^ {2}LastSeq: (\d+)$/))) e.lastSequence = Number(m[1]);
    else if ((m = line.match(/^ {2}MinLogNumberToKeep: (\d+)$/))) e.minLogNumberToKeep = Number(m[1]);
    else if ((m = line.match(/^ {2}MaxColumnFamily: (\d+)$/))) e.maxColumnFamily = Number(m[1]);
    else if ((m = line.match(/^ {2}ColumnFamily: (\d+)$/))) e.columnFamily = Number(m[1]);
    else if ((m = line.match(/^ {2}ColumnFamilyAdd: (.*)$/))) e.columnFamilyAdd = m[1];
    else if (line === '  ColumnFamilyDrop') e.columnFamilyDrop = true;
    else if ((m = line.match(/^ {2}DeleteFile: (\d+) (\d+)$/))) e.deletedFiles.push({ level: Number(m[1]), number: Number(m[2]) });
    else if ((m = line.match(/^ {2}AddFile: (\d+) (\d+) (\d+) .*?( blob_file:(\d+))? oldest_ancester_time/))) {
      const f: DumpedEdit['newFiles'][number] = { level: Number(m[1]), number: Number(m[2]), size: Number(m[3]) };
      if (m[5] !== undefined) f.oldestBlobFileNumber = Number(m[5]);
      e.newFiles.push(f);
    } else if ((m = line.match(/^ {2}BlobFileAddition: blob_file_number: (\d+) total_blob_count: (\d+) total_blob_bytes: (\d+)/))) {
      e.blobFileAdditions.push({ number: Number(m[1]), totalCount: Number(m[2]), totalBytes: Number(m[3]) });
    } else if ((m = line.match(/^ {2}BlobFileGarbage: blob_file_number: (\d+) garbage_blob_count: (\d+) garbage_blob_bytes: (\d+)/))) {
      e.blobFileGarbage.push({ number: Number(m[1]), garbageCount: Number(m[2]), garbageBytes: Number(m[3]) });
    } else throw new Error(`${db}: unexpected manifest_dump line: ${line}`);
  }
  return edits;
}
