// The DB's own file checksums. A DB opened with a file checksum generator
// (options.file_checksum_gen_factory = FileChecksumGenCrc32cFactory) records in its MANIFEST,
// for every table and blob file it writes, the generator's name and the checksum of the whole
// file. RocksDB's BackupEngine compares that with the crc32c of what it copied and fails the
// backup on a mismatch ("Checksum mismatch after copying"): a file damaged on disk after RocksDB
// wrote it is not stored as if it were good. cairn does the same, in the same pass as the copy.
//
// FileChecksumGenCrc32c (util/file_checksum_helper.h) is the plain, unmasked crc32c of the
// file's bytes, stored as 4 raw bytes, big-endian. Other generators (a user's own) cannot be
// recomputed here and are passed over, as RocksDB's BackupEngine passes them over.
import { corruption } from '../errors.ts';
import { Crc32c } from '../crc32c.ts';
import type { WriteSource } from '../env.ts';
import type { FileChecksum } from '../rocksdb/manifest.ts';

export const CRC32C_FUNC_NAME = 'FileChecksumCrc32c';

/** The crc32c the DB recorded for `file`, or undefined when it recorded none cairn can check. */
export function dbCrc32c(checksum: FileChecksum | undefined, file: string, manifest: string): number | undefined {
  if (checksum?.funcName !== CRC32C_FUNC_NAME) return undefined;
  if (checksum.value.length !== 4) {
    throw corruption(`${manifest} records a ${checksum.value.length}-byte ${CRC32C_FUNC_NAME} checksum for ${file} (4 bytes expected)`, { file });
  }
  return checksum.value.readUInt32BE(0);
}

const hex = (crc: number) => crc.toString(16).padStart(8, '0');

function mismatch(file: string, recorded: number, found: number, what: string, backupId: number) {
  return corruption(
    `${file}: ${what} has crc32c ${hex(found)}, but the DB's MANIFEST records ${hex(recorded)} (${CRC32C_FUNC_NAME}): ` +
      'the file changed or was damaged on disk after RocksDB wrote it; the backup is not published',
    { file, backupId },
  );
}

/**
 * A stored copy shared with earlier backups stands for this DB file: its recorded crc32c must be
 * the DB's (RocksDB's "Checksum mismatch for existing backup file").
 */
export function checkSharedAgainstDb(file: string, stored: string, recorded: number | undefined, storedCrc: number | undefined, backupId: number): void {
  if (recorded !== undefined && storedCrc !== undefined && recorded !== storedCrc) {
    throw mismatch(file, recorded, storedCrc, `the copy already in the backup directory (${stored})`, backupId);
  }
}

/**
 * `source` unchanged, except that after its last chunk it throws Corruption when the bytes it
 * delivered are not what the DB recorded: the write fails before anything is published.
 */
export function checkedAgainstDb(source: WriteSource, file: string, recorded: number | undefined, backupId: number): WriteSource {
  if (recorded === undefined) return source;
  return (async function* () {
    const crc = new Crc32c();
    for await (const chunk of source) {
      crc.update(chunk);
      yield chunk;
    }
    if (crc.value !== recorded) throw mismatch(file, recorded, crc.value, `the copy of ${crc.length} bytes read from the DB`, backupId);
  })();
}
