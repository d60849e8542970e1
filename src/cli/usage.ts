// What `cairn help`, `cairn help CMD` and `cairn CMD --help` print.
import type { Command } from './args.ts';

const COMMON_FLAGS = `common options:
  --backup-dir URL      a path, file://PATH, s3://bucket/prefix or gs://bucket/prefix
                        (CAIRN_BACKUP_DIR stands for it; a .env file in the working directory is read)
  --json                print one JSON document on stdout
  --progress MODE       auto (a bar when stderr is a terminal), bar, json (NDJSON events on
                        stderr), none
  -q, --quiet           no progress and no report on success (errors and --json output stay)
  --metrics-file PATH   write Prometheus metrics for node_exporter's textfile collector
  -h, --help            this text
SIZE: bytes, or with a unit: 512k, 50MiB, 1G (powers of 1024), 10MB, 2TB (powers of 1000).
DURATION: 90s, 15m, 12h, 30d, 2w, 1y, 1h30m (a bare number is seconds).`;

const EXIT_CODES = `exit codes: 0 ok, 1 error, 2 usage, 3 corruption or checksum mismatch, 4 not found,
5 locked by another writer (or, for delete, under retention), 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM, nothing published`;

const COMMAND_HELP: Record<Command, { synopsis: string; about: string; flags: string }> = {
  backup: {
    synopsis: `cairn backup  --db DIR --backup-dir URL [--wal-dir DIR] [--metadata STR] [--threads N] [--rate-limit SIZE]
                [--no-share-table-files] [--naming session-id|legacy] [--[no-]backup-log-files]
                [--checkpoint-cmd CMD] [--no-sync] [--schema-version 1|2] [--retain DURATION]
                [--memory SIZE]`,
    about: 'Backs up the RocksDB database in DIR (a running one too) as a new backup. Run again after\n' +
      'it was stopped or killed, it reuses the table files it had stored (their size and crc32c checked).',
    flags: `  --db DIR                  the database directory
  --wal-dir DIR             where its WAL files are, when not in DIR
  --metadata STR            application metadata stored with the backup
  --threads N               files copied at once (default 4)
  --rate-limit SIZE         bytes per second at most (e.g. 50MiB or 50MiB/s; 0: no limit)
  --no-share-table-files    copy every table file into the backup's private directory
  --naming MODE             shared file names: session-id (default) or legacy (crc32c and size)
  --no-backup-log-files     leave out the live WAL files (unflushed writes are then not backed up)
  --checkpoint-cmd CMD      run CMD to make a checkpoint (CAIRN_DB_DIR, CAIRN_CHECKPOINT_DIR set)
                            and back that up
  --no-sync                 skip fsync (faster; a power cut right after may lose the backup)
  --schema-version V        manifest format: 1 (default; every RocksDB reads it) or 2 (RocksDB's
                            schema 2.1: file sizes and temperatures too; newer RocksDB only)
  --retain DURATION         keep every file of the backup under S3 Object Lock until now + DURATION
                            (shared files already stored: extended, never shortened); the bucket
                            needs Object Lock. Mode: CAIRN_S3_OBJECT_LOCK_MODE=GOVERNANCE (default)
                            or COMPLIANCE. delete, purge and gc keep what is still retained

  --memory SIZE             upload buffers all files in flight share, S3 and GCS (default 32MiB;
                            CAIRN_MEMORY_BUDGET stands for it); less is slower, never fails`,
  },
  restore: {
    synopsis: `cairn restore --backup-dir URL --db DIR [--wal-dir DIR] [--id N] [--keep-log-files] [--threads N]
                [--rate-limit SIZE] [--no-sync] [--no-space-check] [--mode MODE]`,
    about: 'Restores a backup (default: the newest) into DIR, replacing the database there.',
    flags: `  --db DIR                  the database directory to restore into
  --wal-dir DIR             where the WAL files go, when not in DIR
  --id N                    the backup to restore (default: the newest)
  --keep-log-files          keep WAL files already in DIR (RocksDB's keep_log_files)
  --threads N               files restored at once (default 4)
  --rate-limit SIZE         bytes per second at most (0: no limit)
  --no-sync                 skip fsync
  --no-space-check          do not refuse a backup larger than the free space
  --mode MODE               files already in DIR: keep-latest-session-files (default; keeps table
                            and blob files whose size and DB session id, or crc32c, match),
                            verify-checksum (keeps those whose crc32c matches) or purge-all
                            (deletes them all and downloads everything)`,
  },
  list: {
    synopsis: 'cairn list    --backup-dir URL [--locks]',
    about: 'Lists the backups (corrupted ones flagged) and any reader or writer at work.',
    flags: `  --locks                   also every lock holder, stale ones included (kind, host, pid, backups,
                            age); with --json the output becomes {"backups": [...], "locks": [...]}`,
  },
  show: {
    synopsis: 'cairn show    --backup-dir URL --id N [--files]',
    about: 'Shows one backup: time, size, number of files, sequence number, app metadata.',
    flags: `  --id N                    the backup to show
  --files                   also each file: size, crc32c, whether it is shared, and how many
                            backups use it`,
  },
  verify: {
    synopsis: 'cairn verify  --backup-dir URL [--id N] [--checksum | --server-checksum] [--threads N]',
    about: 'Checks that every file of a backup (default: every backup) is there with its size.',
    flags: `  --id N                    verify this backup only
  --checksum                download every file and check its CRC32C
  --server-checksum         compare the store's own CRC32C instead (no download)
  --threads N               files checked at once (default 4)`,
  },
  delete: {
    synopsis: 'cairn delete  --backup-dir URL --id N',
    about: 'Deletes one backup and the files no other backup needs; refuses (exit 5, nothing deleted) while\nfiles its deletion would remove are under retention (backup --retain).',
    flags: '  --id N                    the backup to delete',
  },
  purge: {
    synopsis: `cairn purge   --backup-dir URL [--keep-last N] [--keep-hourly|daily|weekly|monthly|yearly N]
[--keep-within D] [--keep-within-hourly|daily|weekly|monthly|yearly D] [--keep N]
[--older-than DURATION] [--dry-run]`,
    about: `Deletes the backups no retention rule keeps (restic's forget rules; docs/retention.md).
Rules combine: a backup any rule keeps stays. The newest valid backup is never removed; corrupt
backups are reported and kept (cairn delete --id N removes one).`,
    flags: `  --keep-last N             keep the newest N backups (--keep N is the same)
  --keep-hourly N           keep the newest backup of each of the N newest local hours that have
                            one; likewise --keep-daily, --keep-weekly (ISO weeks), --keep-monthly,
                            --keep-yearly. N may be unlimited
  --keep-within D           keep every backup within D of the newest backup (D: 30d, 2w, 1y6m,
                            12h; m is months, there are no minutes)
  --keep-within-daily D     keep the newest backup of each day within D of the newest backup;
                            likewise -hourly, -weekly, -monthly, -yearly
  --older-than DURATION     --keep-within DURATION (DURATION as below) plus --keep-last 1 (or --keep N)
  --dry-run                 delete nothing: list what would go and the rules that keep the rest`,
  },
  gc: {
    synopsis: 'cairn gc      --backup-dir URL [--grace DURATION]',
    about: 'Removes files no backup refers to and leftovers of interrupted uploads.',
    flags: `  --grace DURATION          keep unreferenced shared files written less than DURATION ago, for a
                            stopped backup run again to reuse (default 24h; 0 removes them now)`,
  },
  unlock: {
    synopsis: 'cairn unlock  --backup-dir URL [--all] [--stale-after DURATION]',
    about: 'Removes stale writer locks (left by a writer that is gone).',
    flags: `  --all                     remove every lock, live ones too (only if their writer is really gone)
  --stale-after DURATION    a lock not refreshed for this long is stale (default 30m)`,
  },
  check: {
    synopsis: 'cairn check   --backup-dir URL [--json]',
    about: `Checks that cairn can work in URL: lists, writes, reads back and deletes a small file under
probe/, and reports what the store supports (on S3: full-object CRC32C, If-None-Match, Content-MD5,
ETags, multipart listings, probed with a few requests) and what cairn does about each gap (docs/s3.md).
Exits non-zero when an access fails (wrong credentials, missing bucket, missing permission).`,
    flags: `  S3: CAIRN_S3_CHECKSUM=auto|crc32c|md5 chooses the write path (auto: from the probe)`,
  },
};

/** Continuation lines of a synopsis, aligned under the command's first flag. */
const indentSynopsis = (synopsis: string, column: number) => synopsis.replace(/\n\s*/g, '\n' + ' '.repeat(column));

/** The overview: every command's synopsis. */
export function generalUsage(): string {
  return `usage:
${Object.values(COMMAND_HELP).map((h) => '  ' + indentSynopsis(h.synopsis, 16)).join('\n')}
  cairn help [COMMAND] | cairn COMMAND --help | cairn --version

${COMMON_FLAGS}
Writing commands (backup, delete, purge, gc) hold the directory's writer lock (locks/) while
they run; a lock not refreshed for 30 minutes is stale and removed by the next writer.
${EXIT_CODES}`;
}

/** One command's help: what it does, its synopsis and flags. */
export function commandUsage(command: Command): string {
  const h = COMMAND_HELP[command];
  return `usage: ${indentSynopsis(h.synopsis, 21)}

${h.about}
${h.flags ? `\n${h.flags}\n` : ''}
${COMMON_FLAGS}
${EXIT_CODES}`;
}
