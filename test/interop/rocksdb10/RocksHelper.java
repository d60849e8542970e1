// Drives RocksDB (the Java binding org.rocksdb:rocksdbjni, RocksDB 10+) for the interop tests in
// test/interop/rocksdb10.test.ts: makes DBs with column families, blob files and a chosen table
// format_version, takes and restores backups with RocksDB's own BackupEngine, dumps a DB's
// contents, and writes without pause while cairn backs the DB up.
//
//   fill DB FROM COUNT [--cfs a,b] [--blob] [--format-version V] [--file-checksums] [--temperature T]
//       writes keys FROM..FROM+COUNT-1 into every column family, flushes, closes; --file-checksums
//       records each file's crc32c in the MANIFEST, --temperature (kHot, kWarm, kCold) each new
//       table file's temperature
//   backup DB BACKUP_DIR [METADATA]      BackupEngine.createNewBackupWithMetadata (no flush)
//   info BACKUP_DIR                      one JSON line per backup, then {"corrupted":[...]}
//   restore BACKUP_DIR OUT [ID]          restores backup ID (default: the latest)
//   dump DB                              "#cf<TAB>name", then "cf<TAB>key<TAB>value" for each entry, per column family
//   write DB                             (file checksums on) writes k, one atomic batch into "default" and "cf1" each,
//       up to a limit read from stdin ("limit N" lines); prints "written N" as it goes and
//       "closed" once stdin ends and the DB is closed
//
// Keys are "k" + 8 digits; the value of key i in column family cf is valueOf(cf, i).
import org.rocksdb.*;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class RocksHelper {
  static String key(long i) { return String.format("k%08d", i); }

  /** 120 bytes or more: above min_blob_size, so with --blob every value goes to a blob file. */
  static String valueOf(String cf, long i) {
    StringBuilder sb = new StringBuilder(cf).append(':').append(i).append(':');
    while (sb.length() < 120) sb.append((char) ('a' + (sb.length() * 7 + i) % 26));
    return sb.toString();
  }

  static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }

  static ColumnFamilyOptions cfOptions(boolean blob, int formatVersion, long writeBuffer) {
    return cfOptions(blob, formatVersion, writeBuffer, null);
  }

  static ColumnFamilyOptions cfOptions(boolean blob, int formatVersion, long writeBuffer, String temperature) {
    BlockBasedTableConfig t = new BlockBasedTableConfig();
    if (formatVersion > 0) t.setFormatVersion(formatVersion);
    ColumnFamilyOptions base = new ColumnFamilyOptions();
    if (temperature != null) {
      // No Java setter: the options string knows default_write_temperature (kHot, kWarm, kCold).
      Properties p = new Properties();
      p.setProperty("default_write_temperature", temperature);
      base = ColumnFamilyOptions.getColumnFamilyOptionsFromProps(new ConfigOptions(), p);
      if (base == null) throw new IllegalStateException("default_write_temperature not accepted");
    }
    ColumnFamilyOptions o = base
        .setTableFormatConfig(t)
        .setCompressionType(CompressionType.NO_COMPRESSION)
        .setWriteBufferSize(writeBuffer)
        .setTargetFileSizeBase(256 * 1024)
        .setMaxBytesForLevelBase(1024 * 1024)
        .setLevel0FileNumCompactionTrigger(2);
    if (blob) o.setEnableBlobFiles(true).setMinBlobSize(64).setBlobFileSize(256 * 1024)
        .setEnableBlobGarbageCollection(true).setBlobGarbageCollectionAgeCutoff(0.5);
    return o;
  }

  static DBOptions dbOptions(boolean fileChecksums) throws RocksDBException {
    DBOptions o;
    if (fileChecksums) {
      // Not in the Java API as a setter: the options string knows the built-in factory by name.
      Properties p = new Properties();
      p.setProperty("file_checksum_gen_factory", "FileChecksumGenCrc32cFactory");
      o = DBOptions.getDBOptionsFromProps(new ConfigOptions(), p);
      if (o == null) throw new IllegalStateException("file_checksum_gen_factory not accepted");
    } else {
      o = new DBOptions();
    }
    return o.setCreateIfMissing(true).setCreateMissingColumnFamilies(true).setMaxBackgroundJobs(2);
  }

  static final class Db implements AutoCloseable {
    final RocksDB db;
    final List<ColumnFamilyHandle> handles = new ArrayList<>();
    final List<String> names = new ArrayList<>();

    Db(String path, List<String> cfs, ColumnFamilyOptions cfo, DBOptions dbo, boolean readOnly) throws RocksDBException {
      List<ColumnFamilyDescriptor> d = new ArrayList<>();
      for (String n : cfs) {
        d.add(new ColumnFamilyDescriptor(b(n), cfo));
        names.add(n);
      }
      db = readOnly ? RocksDB.openReadOnly(dbo, path, d, handles) : RocksDB.open(dbo, path, d, handles);
    }

    ColumnFamilyHandle cf(String name) { return handles.get(names.indexOf(name)); }

    @Override public void close() {
      for (ColumnFamilyHandle h : handles) h.close();
      db.close();
    }
  }

  /** The column families a DB has (just "default" for a new one). */
  static List<String> existingCfs(String path) throws RocksDBException {
    try (Options o = new Options()) {
      List<String> out = new ArrayList<>();
      for (byte[] n : RocksDB.listColumnFamilies(o, path)) out.add(new String(n, StandardCharsets.UTF_8));
      if (out.isEmpty()) out.add("default");
      return out;
    }
  }

  public static void main(String[] a) throws Exception {
    RocksDB.loadLibrary();
    Map<String, String> flags = new HashMap<>();
    List<String> pos = new ArrayList<>();
    for (int i = 1; i < a.length; i++) {
      if (a[i].startsWith("--")) {
        boolean valued = a[i].equals("--cfs") || a[i].equals("--format-version") || a[i].equals("--temperature");
        flags.put(a[i], valued ? a[++i] : "true");
      } else pos.add(a[i]);
    }
    switch (a[0]) {
      case "version" -> System.out.println(RocksDB.rocksdbVersion());
      case "fill" -> fill(pos.get(0), Long.parseLong(pos.get(1)), Long.parseLong(pos.get(2)), flags);
      case "backup" -> backup(pos.get(0), pos.get(1), pos.size() > 2 ? pos.get(2) : "");
      case "info" -> info(pos.get(0));
      case "restore" -> restore(pos.get(0), pos.get(1), pos.size() > 2 ? Integer.parseInt(pos.get(2)) : -1);
      case "dump" -> dump(pos.get(0));
      case "write" -> write(pos.get(0));
      default -> throw new IllegalArgumentException("unknown command " + a[0]);
    }
  }

  static void fill(String path, long from, long count, Map<String, String> flags) throws RocksDBException {
    List<String> cfs = new ArrayList<>(List.of("default"));
    if (flags.containsKey("--cfs")) cfs.addAll(Arrays.asList(flags.get("--cfs").split(",")));
    int fv = Integer.parseInt(flags.getOrDefault("--format-version", "0"));
    try (ColumnFamilyOptions cfo = cfOptions(flags.containsKey("--blob"), fv, 64 * 1024, flags.get("--temperature"));
         DBOptions dbo = dbOptions(flags.containsKey("--file-checksums"));
         Db d = new Db(path, cfs, cfo, dbo, false);
         WriteOptions wo = new WriteOptions();
         FlushOptions fo = new FlushOptions().setWaitForFlush(true)) {
      for (long i = from; i < from + count; i++) {
        try (WriteBatch wb = new WriteBatch()) {
          for (String cf : cfs) wb.put(d.cf(cf), b(key(i)), b(valueOf(cf, i)));
          d.db.write(wo, wb);
        }
      }
      d.db.flush(fo, d.handles);
    }
  }

  static BackupEngine engine(String dir) throws RocksDBException {
    new java.io.File(dir).mkdirs(); // BackupEngineOptions wants the directory to exist
    return BackupEngine.open(Env.getDefault(), new BackupEngineOptions(dir));
  }

  static void backup(String path, String dir, String meta) throws RocksDBException {
    try (ColumnFamilyOptions cfo = cfOptions(false, 0, 64 * 1024); DBOptions dbo = dbOptions(false);
         Db d = new Db(path, existingCfs(path), cfo, dbo, false); BackupEngine e = engine(dir)) {
      e.createNewBackupWithMetadata(d.db, meta, false);
    }
    info(dir);
  }

  static void info(String dir) throws RocksDBException {
    try (BackupEngine e = engine(dir)) {
      for (BackupInfo i : e.getBackupInfo()) {
        System.out.printf("{\"id\":%d,\"timestamp\":%d,\"size\":%d,\"numFiles\":%d,\"appMetadata\":\"%s\"}%n",
            i.backupId(), i.timestamp(), i.size(), i.numberFiles(), i.appMetadata());
      }
      System.out.println("{\"corrupted\":" + Arrays.toString(e.getCorruptedBackups()) + "}");
    }
  }

  static void restore(String dir, String out, int id) throws RocksDBException {
    try (BackupEngine e = engine(dir); RestoreOptions ro = new RestoreOptions(false)) {
      if (id < 0) e.restoreDbFromLatestBackup(out, out, ro);
      else e.restoreDbFromBackup(id, out, out, ro);
    }
  }

  static void dump(String path) throws RocksDBException {
    StringBuilder sb = new StringBuilder();
    try (ColumnFamilyOptions cfo = cfOptions(false, 0, 64 * 1024); DBOptions dbo = dbOptions(false);
         Db d = new Db(path, existingCfs(path), cfo, dbo, false)) {
      for (String cf : d.names) {
        sb.append("#cf\t").append(cf).append('\n');
        try (RocksIterator it = d.db.newIterator(d.cf(cf))) {
          for (it.seekToFirst(); it.isValid(); it.next()) {
            sb.append(cf).append('\t').append(new String(it.key(), StandardCharsets.UTF_8)).append('\t')
              .append(new String(it.value(), StandardCharsets.UTF_8)).append('\n');
          }
          it.status();
        }
      }
    }
    System.out.print(sb);
  }

  static volatile long limit = 0;
  static volatile boolean inputEnded = false;

  static void write(String path) throws Exception {
    Thread reader = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
        for (String line; (line = r.readLine()) != null; ) {
          if (line.startsWith("limit ")) limit = Long.parseLong(line.substring(6).trim());
          synchronized (RocksHelper.class) { RocksHelper.class.notifyAll(); }
        }
      } catch (Exception e) {
        e.printStackTrace();
      }
      inputEnded = true;
      synchronized (RocksHelper.class) { RocksHelper.class.notifyAll(); }
    });
    reader.setDaemon(true);
    reader.start();
    List<String> cfs = List.of("default", "cf1");
    // tiny memtables and files: flushes, compactions and blob file rotation all the time
    // with file checksums: every table and blob file a hot backup copies is checked against them
    try (ColumnFamilyOptions cfo = cfOptions(true, 0, 32 * 1024); DBOptions dbo = dbOptions(true);
         Db d = new Db(path, cfs, cfo, dbo, false); WriteOptions wo = new WriteOptions()) {
      long i = 0;
      System.out.println("open");
      System.out.flush();
      while (true) {
        synchronized (RocksHelper.class) {
          while (i >= limit && !inputEnded) RocksHelper.class.wait();
        }
        if (i >= limit) break;
        try (WriteBatch wb = new WriteBatch()) {
          for (String cf : cfs) wb.put(d.cf(cf), b(key(i)), b(valueOf(cf, i)));
          d.db.write(wo, wb);
        }
        i++;
        if (i % 250 == 0 || i == limit) {
          System.out.println("written " + i);
          System.out.flush();
        }
      }
    }
    System.out.println("closed");
    System.out.flush();
  }
}
