import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCairnError } from '../../src/errors.ts';
import { blobFileName, parseDbFileName, tableFileName } from '../../src/rocksdb/filename.ts';
import { readManifest, replayManifest } from '../../src/rocksdb/manifest.ts';
import { readLogRecords } from '../../src/rocksdb/log-reader.ts';
import { edit, fixed64, FIXTURES, lengthPrefixed, logOf, newDbEdits, varint } from './helpers.ts';

const replay = (edits: Buffer[]) => replayManifest(logOf([...newDbEdits(), ...edits]), 'MANIFEST-000001');

function assertCorrupt(edits: Buffer[], re: RegExp): void {
  assert.throws(
    () => replay(edits),
    (e) => isCairnError(e, 'Corruption') && e.file === 'MANIFEST-000001' && re.test(e.message),
    String(re),
  );
}

interface Expected {
  manifestFile: string;
  files: { name: string; size: number }[];
  manifestDump: {
    nextFileNumber: number;
    lastSequence: number;
    prevLogNumber: number;
    maxColumnFamily: number;
    minLogNumberToKeep: number;
    columnFamilies: {
      id: number;
      name: string;
      logNumber: number;
      comparator: string;
      tables: { number: number; size: number; level: number }[];
      blobs: { number: number; totalBytes: number }[];
    }[];
  };
  liveFiles: { tables: { name: string }[]; blobs: string[]; wals: string[] };
}

const expectedOf = (db: string): Expected => JSON.parse(readFileSync(join(FIXTURES, `${db}.expected.json`), 'utf8'));

describe('replayManifest against ldb', () => {
  for (const db of ['db-basic', 'db-blob', 'db-cf']) {
    it(`${db}: same state as manifest_dump and dump_live_files`, async () => {
      const x = expectedOf(db);
      const m = await readManifest(join(FIXTURES, db, x.manifestFile));
      const d = x.manifestDump;
      // RocksDB adds one to the recorded next file number when it opens the MANIFEST.
      assert.equal(m.nextFileNumber + 1, d.nextFileNumber);
      assert.equal(m.lastSequence, d.lastSequence);
      assert.equal(m.prevLogNumber, d.prevLogNumber);
      assert.equal(m.maxColumnFamily, d.maxColumnFamily);
      assert.equal(m.minLogNumberToKeep, d.minLogNumberToKeep);
      assert.equal(m.comparator, 'leveldb.BytewiseComparator');
      assert.deepEqual(
        m.columnFamilies,
        d.columnFamilies.map(({ id, name, logNumber }) => ({ id, name, logNumber })),
      );
      const byLevel = (a: { level: number; number: number }, b: { level: number; number: number }) => a.level - b.level || a.number - b.number;
      assert.deepEqual(
        m.tableFiles,
        d.columnFamilies.flatMap((cf) => cf.tables.map((t) => ({ number: t.number, size: t.size, columnFamily: cf.id, level: t.level })).sort(byLevel)),
      );
      assert.deepEqual(
        m.blobFiles,
        d.columnFamilies.flatMap((cf) => cf.blobs.map((b) => ({ number: b.number, totalBytes: b.totalBytes, columnFamily: cf.id }))),
      );
      assert.deepEqual(m.tableFiles.map((t) => tableFileName(t.number)).sort(), x.liveFiles.tables.map((t) => t.name).sort());
      assert.deepEqual(m.blobFiles.map((b) => blobFileName(b.number)).sort(), [...x.liveFiles.blobs].sort());
      // The WALs ldb reports live are exactly the directory's WALs at or above minLogNumber.
      const wals = readdirSync(join(FIXTURES, db)).filter((f) => {
        const p = parseDbFileName(f);
        return p?.type === 'wal' && p.number >= m.minLogNumber;
      });
      assert.deepEqual(wals.sort(), [...x.liveFiles.wals].sort());
      assert.ok(wals.length > 0);
      // Sizes recorded in the MANIFEST are the files' sizes on disk.
      for (const t of m.tableFiles) {
        assert.equal(x.files.find((f) => f.name === tableFileName(t.number))?.size, t.size);
      }
    });
  }

  it('db-cf: the dropped family and its table are gone, the others keep their log numbers', async () => {
    const m = await readManifest(join(FIXTURES, 'db-cf', expectedOf('db-cf').manifestFile));
    assert.deepEqual(m.columnFamilies.map((c) => c.name), ['default', 'cf1', 'cf3']);
    assert.equal(m.maxColumnFamily, 3);
    assert.equal(m.minLogNumber, Math.min(...m.columnFamilies.map((c) => c.logNumber)));
    assert.ok(new Set(m.columnFamilies.map((c) => c.logNumber)).size > 1, 'fixture should have differing log numbers');
  });

  it('db-blob: keeps an unlinked blob file that still has live blobs, drops a fully garbage one', async () => {
    const m = await readManifest(join(FIXTURES, 'db-blob', expectedOf('db-blob').manifestFile));
    const added = readFileSync(join(FIXTURES, 'tool-output', 'db-blob', 'manifest_dump.txt'), 'latin1').match(/BlobFileAddition: blob_file_number: \d+/g)!;
    assert.ok(added.length > m.blobFiles.length, 'some blob file must have been dropped');
    for (const b of m.blobFiles) assert.ok(readdirSync(join(FIXTURES, 'db-blob')).includes(blobFileName(b.number)));
  });
});

describe('replayManifest rules', () => {
  it('applies column family additions, drops and selection', () => {
    const m = replay([
      edit().columnFamily(1).addColumnFamily('one').logNumber(3).build(),
      edit().columnFamily(2).addColumnFamily('two').logNumber(3).build(),
      edit().columnFamily(1).newFile4(0, 10, 100).logNumber(5).build(),
      edit().columnFamily(2).newFile4(0, 11, 110).logNumber(6).build(),
      edit().newFile4(1, 12, 120).logNumber(7).nextFile(13).lastSequence(44).build(),
      edit().columnFamily(2).dropColumnFamily().maxColumnFamily(2).build(),
    ]);
    assert.deepEqual(m.columnFamilies, [
      { id: 0, name: 'default', logNumber: 7 },
      { id: 1, name: 'one', logNumber: 5 },
    ]);
    assert.deepEqual(m.tableFiles, [
      { number: 12, size: 120, columnFamily: 0, level: 1 },
      { number: 10, size: 100, columnFamily: 1, level: 0 },
    ]);
    assert.equal(m.minLogNumber, 5);
    assert.equal(m.nextFileNumber, 13);
    assert.equal(m.lastSequence, 44);
    assert.equal(m.maxColumnFamily, 2);
  });

  it('refuses inconsistent column family operations', () => {
    assertCorrupt([edit().columnFamily(0).addColumnFamily('default').build()], /same column family twice/);
    assertCorrupt([edit().columnFamily(5).dropColumnFamily().build()], /dropping non-existing column family 5/);
    assertCorrupt([edit().columnFamily(5).newFile4(0, 10, 1).build()], /unknown column family 5/);
    assertCorrupt(
      [edit().columnFamily(1).addColumnFamily('a').build(), edit().columnFamily(1).dropColumnFamily().build(), edit().columnFamily(1).logNumber(9).build()],
      /unknown column family 1/,
    );
  });

  it('ignores a log number that goes backwards, like RocksDB', () => {
    const m = replay([edit().logNumber(9).build(), edit().logNumber(4).build()]);
    assert.equal(m.columnFamilies[0].logNumber, 9);
    assert.equal(m.minLogNumber, 9);
  });

  it('lowers minLogNumber to a smaller min_log_number_to_keep (2PC)', () => {
    const m = replay([edit().logNumber(9).minLogNumberToKeep(6).build()]);
    assert.equal(m.minLogNumber, 6);
    assert.equal(m.minLogNumberToKeep, 6);
    // Through the NewFile4 hack field too, and only ever raised.
    const h = replay([edit().newFile4(0, 5, 1, [[3, fixed64(8)]]).logNumber(9).build(), edit().minLogNumberToKeep(7).build()]);
    assert.equal(h.minLogNumberToKeep, 8);
    assert.equal(h.minLogNumber, 8);
    assert.equal(replay([edit().logNumber(9).minLogNumberToKeep(12).build()]).minLogNumber, 9);
  });

  it('moves, deletes and refuses impossible table changes', () => {
    const m = replay([edit().newFile4(0, 5, 50).newFile4(0, 6, 60).build(), edit().deleteFile(0, 5).newFile4(1, 5, 50).deleteFile(0, 6).build()]);
    assert.deepEqual(m.tableFiles, [{ number: 5, size: 50, columnFamily: 0, level: 1 }]);
    assertCorrupt([edit().deleteFile(0, 5).build()], /#5 from level 0 since it is not in the LSM tree/);
    assertCorrupt([edit().newFile4(2, 5, 50).build(), edit().deleteFile(1, 5).build()], /since it is on level 2/);
    assertCorrupt([edit().newFile4(2, 5, 50).build(), edit().newFile4(3, 5, 50).build()], /already on level 2/);
  });

  it('applies atomic groups only when complete', () => {
    const group = [
      edit().newFile4(0, 20, 1).atomicGroup(2).build(),
      edit().newFile4(0, 21, 1).atomicGroup(1).build(),
      edit().newFile4(0, 22, 1).lastSequence(99).atomicGroup(0).build(),
    ];
    assert.deepEqual(replay(group).tableFiles.map((t) => t.number), [20, 21, 22]);
    assert.equal(replay(group).lastSequence, 99);
    // A group cut short by the end of the MANIFEST is ignored whole.
    const partial = replay(group.slice(0, 2));
    assert.deepEqual(partial.tableFiles, []);
    assert.equal(partial.lastSequence, 0);
    assertCorrupt([group[0], edit().newFile4(0, 30, 1).build()], /corrupted atomic group/);
    assertCorrupt([group[0], group[2]], /corrupted atomic group/);
  });

  it('keeps blob files exactly as VersionBuilder does', () => {
    const blob = (n: number) => [[4, varint(n)]] as [number, Buffer][];
    const m = replay([
      // 30: linked, all garbage -> kept (a table still points at it)
      // 31: unlinked, partly garbage, above the oldest linked -> kept
      // 32: unlinked, all garbage -> dropped
      // 29: unlinked, partly garbage, below the oldest linked -> dropped
      edit().blobAddition(29, 10, 1000).blobAddition(30, 10, 1000).blobAddition(31, 10, 1000).blobAddition(32, 10, 1000).build(),
      edit().newFile4(0, 40, 1, blob(30)).blobGarbage(30, 10, 1000).blobGarbage(31, 4, 400).blobGarbage(32, 10, 1000).blobGarbage(29, 1, 1).build(),
    ]);
    assert.deepEqual(m.blobFiles, [
      { number: 30, totalBytes: 1000, columnFamily: 0 },
      { number: 31, totalBytes: 1000, columnFamily: 0 },
    ]);
    // Once no table links any blob file, none is live.
    const none = replay([edit().blobAddition(30, 10, 1000).newFile4(0, 40, 1, blob(30)).build(), edit().deleteFile(0, 40).build()]);
    assert.deepEqual(none.blobFiles, []);
    assertCorrupt([edit().blobGarbage(77, 1, 1).build()], /blob file #77 not found/);
    assertCorrupt([edit().blobAddition(30, 1, 1).build(), edit().blobAddition(30, 1, 1).build()], /#30 already added/);
    assertCorrupt([edit().blobAddition(30, 1, 1).build(), edit().blobGarbage(30, 2, 1).build()], /garbage overflow/);
  });

  it('tracks WALs recorded in the MANIFEST', () => {
    const add = (n: number, size?: number) => {
      const body = size === undefined ? [varint(n), varint(1)] : [varint(n), varint(2), varint(size), varint(1)];
      return edit().tag(8199).raw(lengthPrefixed(Buffer.concat(body))).build();
    };
    const m = replay([add(10), add(11, 100), add(11, 50), edit().tag(8200).raw(lengthPrefixed(varint(11))).build()]);
    assert.deepEqual(m.trackedWals, [{ number: 11, syncedSize: 100 }]);
  });

  it('requires the log number, next file number and last sequence', () => {
    assert.throws(
      () => replayManifest(logOf([edit().comparator('c').build()]), 'M'),
      (e) => isCairnError(e, 'Corruption') && /no log_file_number, next_file_number, last_sequence entry/.test(e.message),
    );
    assert.throws(() => replayManifest(Buffer.alloc(0), 'M'), (e) => isCairnError(e, 'Corruption'));
  });

  it('carries the DB id', () => {
    assert.equal(replay([edit().dbId('abc').build()]).dbId, 'abc');
  });
});

describe('damaged MANIFESTs', () => {
  const x = expectedOf('db-basic');
  const path = join(FIXTURES, 'db-basic', x.manifestFile);
  const data = readFileSync(path);

  it('a flipped byte in a record is a corruption naming the file', () => {
    const bad = Buffer.from(data);
    bad[20] ^= 0x40; // inside the second record, well before the end
    assert.throws(() => replayManifest(bad, path), (e) => isCairnError(e, 'Corruption') && e.file === path && /checksum mismatch/.test(e.message));
  });

  it('a truncated tail is tolerated: the state is that of the complete records', async () => {
    const whole = replayManifest(data, path);
    const gen = readLogRecords(data.subarray(0, data.length - 1), { file: path });
    let r = gen.next();
    while (!r.done) r = gen.next();
    const lastStart = r.value.validEnd;
    assert.ok(lastStart > 0 && lastStart < data.length);
    const before = replayManifest(data.subarray(0, lastStart), path);
    for (let cut = lastStart; cut < data.length; cut++) {
      assert.deepEqual(replayManifest(data.subarray(0, cut), path), before, `cut at ${cut}`);
    }
    // Zeros where the tail should be (preallocated space after a crash) are a torn tail too.
    const zeroed = Buffer.from(data);
    zeroed.fill(0, lastStart + 3);
    assert.deepEqual(replayManifest(zeroed, path), before);
    const dir = mkdtempSync(join(tmpdir(), 'cairn-manifest-'));
    try {
      const grown = join(dir, x.manifestFile);
      // A MANIFEST still being written: the backup recorded an earlier size.
      writeFileSync(grown, Buffer.concat([data, logOf([edit().lastSequence(987654).build()])]));
      assert.equal((await readManifest(grown)).lastSequence, 987654);
      assert.deepEqual(await readManifest(grown, data.length), whole);
      assert.deepEqual(await readManifest(grown, data.length + 5), whole);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
