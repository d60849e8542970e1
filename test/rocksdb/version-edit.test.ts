import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCairnError } from '../../src/errors.ts';
import { readLogRecords } from '../../src/rocksdb/log-reader.ts';
import { decodeVersionEdit } from '../../src/rocksdb/version-edit.ts';
import { edit, FIXTURES, fixed64, ikey, lengthPrefixed, varint } from './helpers.ts';
import { dumpedEdits } from './ldb-text.ts';

function assertCorrupt(record: Buffer, re: RegExp): void {
  assert.throws(
    () => decodeVersionEdit(record, '/db/MANIFEST-000001'),
    (e) => isCairnError(e, 'Corruption') && e.file === '/db/MANIFEST-000001' && re.test(e.message),
    String(re),
  );
}

describe('decodeVersionEdit', () => {
  it('decodes the scalar fields', () => {
    const e = decodeVersionEdit(
      edit()
        .comparator('leveldb.BytewiseComparator')
        .logNumber(31)
        .prevLogNumber(30)
        .nextFile(40)
        .tag(203)
        .raw(varint(5))
        .minLogNumberToKeep(29)
        .lastSequence(2 ** 40 + 3)
        .dbId('1f123ab4-85a4-4143-8d22-64fedd39364b')
        .columnFamily(3)
        .build(),
    );
    assert.equal(e.comparator, 'leveldb.BytewiseComparator');
    assert.equal(e.logNumber, 31);
    assert.equal(e.prevLogNumber, 30);
    assert.equal(e.nextFileNumber, 40);
    assert.equal(e.maxColumnFamily, 5);
    assert.equal(e.minLogNumberToKeep, 29);
    assert.equal(e.lastSequence, 2 ** 40 + 3);
    assert.equal(e.dbId, '1f123ab4-85a4-4143-8d22-64fedd39364b');
    assert.equal(e.columnFamily, 3);
    assert.deepEqual(e.newFiles, []);
    assert.equal(e.columnFamilyAdd, undefined);
    assert.equal(e.atomicGroupRemaining, undefined);
  });

  it('decodes all four new-file encodings', () => {
    const rec = edit()
      .tag(7)
      .raw(varint(2), varint(11), varint(1000), lengthPrefixed(ikey('a')), lengthPrefixed(ikey('b')))
      .tag(100)
      .raw(varint(3), varint(12), varint(2000), lengthPrefixed(ikey('c')), lengthPrefixed(ikey('d')), varint(5), varint(9))
      .tag(102)
      .raw(varint(4), varint(13), varint(2), varint(3000), lengthPrefixed(ikey('e')), lengthPrefixed(ikey('f')), varint(6), varint(8))
      .newFile4(5, 14, 4000)
      .build();
    const e = decodeVersionEdit(rec);
    assert.deepEqual(
      e.newFiles.map((f) => [f.level, f.number, f.size, f.pathId, f.smallestSeqno, f.largestSeqno]),
      [
        [2, 11, 1000, 0, undefined, undefined],
        [3, 12, 2000, 0, 5, 9],
        [4, 13, 3000, 2, 6, 8],
        [5, 14, 4000, 0, 1, 9],
      ],
    );
    assert.equal(e.newFiles[0].smallestKey.toString('latin1', 0, 1), 'a');
    assert.equal(e.newFiles[3].epochNumber, 1);
  });

  it('decodes NewFile4 custom fields and skips unknown safe ones', () => {
    const rec = edit()
      .newFile4(1, 20, 500, [
        [4, varint(17)], // oldest blob file
        [7, Buffer.from([1, 2, 3, 4])], // file checksum
        [8, Buffer.from('FileChecksumCrc32c')],
        [65, Buffer.from([1])], // path id (non-safe-ignore bit set, but known)
        [2, Buffer.from([1])], // marked for compaction
        [9, Buffer.from([2])], // temperature
        [3, fixed64(27)], // min log number to keep, fixed64
        [12, Buffer.alloc(16, 7)], // unique id: known to RocksDB, ignorable here
        [17, Buffer.from('meta')], // file open metadata
        [63, Buffer.from('future, safe to ignore')],
      ])
      .build();
    const e = decodeVersionEdit(rec);
    const f = e.newFiles[0];
    assert.equal(f.oldestBlobFileNumber, 17);
    assert.deepEqual([...f.fileChecksum!], [1, 2, 3, 4]);
    assert.equal(f.fileChecksumFuncName, 'FileChecksumCrc32c');
    assert.equal(f.pathId, 1);
    assert.equal(f.markedForCompaction, true);
    assert.equal(f.temperature, 2);
    assert.equal(e.minLogNumberToKeep, 27);
  });

  it('refuses an unknown NewFile4 field that is marked as not safe to ignore', () => {
    assertCorrupt(edit().newFile4(1, 20, 500, [[66, Buffer.from('x')]]).build(), /custom field 66/);
    assertCorrupt(edit().newFile4(1, 20, 500, [[65, Buffer.from([4])]]).build(), /path id/);
  });

  it('deduplicates deleted files like the std::set RocksDB keeps them in', () => {
    const e = decodeVersionEdit(edit().deleteFile(0, 9).deleteFile(0, 12).deleteFile(0, 9).deleteFile(1, 9).build());
    assert.deepEqual(e.deletedFiles, [
      { level: 0, number: 9 },
      { level: 0, number: 12 },
      { level: 1, number: 9 },
    ]);
  });

  it('decodes compact cursors, column family operations and atomic groups', () => {
    const e = decodeVersionEdit(
      edit().tag(5).raw(varint(2), lengthPrefixed(ikey('m'))).columnFamily(4).addColumnFamily('cf4').atomicGroup(2).build(),
    );
    assert.equal(e.compactCursors.length, 1);
    assert.equal(e.compactCursors[0].level, 2);
    assert.equal(e.columnFamily, 4);
    assert.equal(e.columnFamilyAdd, 'cf4');
    assert.equal(e.atomicGroupRemaining, 2);
    assert.equal(decodeVersionEdit(edit().columnFamily(4).dropColumnFamily().build()).columnFamilyDrop, true);
  });

  it('decodes blob file additions and garbage, including the deprecated tags', () => {
    const rec = edit()
      .blobAddition(10, 100, 14800)
      .blobGarbage(10, 40, 5920)
      .tag(8194) // deprecated addition: same encoding, no length prefix
      .raw(varint(11), varint(5), varint(50), lengthPrefixed('crc32c'), lengthPrefixed(Buffer.from([9, 9])), varint(3), lengthPrefixed('x'), varint(0))
      .tag(8195)
      .raw(varint(11), varint(1), varint(10), varint(0))
      .build();
    const e = decodeVersionEdit(rec);
    assert.deepEqual(
      e.blobFileAdditions.map((b) => [b.number, b.totalCount, b.totalBytes, b.checksumMethod]),
      [
        [10, 100, 14800, ''],
        [11, 5, 50, 'crc32c'],
      ],
    );
    assert.deepEqual(e.blobFileGarbage, [
      { number: 10, garbageCount: 40, garbageBytes: 5920 },
      { number: 11, garbageCount: 1, garbageBytes: 10 },
    ]);
    assertCorrupt(edit().tag(400).raw(varint(1), varint(1), varint(1), lengthPrefixed(''), lengthPrefixed(''), varint(64), lengthPrefixed('')).build(), /forward incompatible/);
  });

  it('decodes WAL additions and deletions in both encodings', () => {
    const addition = Buffer.concat([varint(21), varint(2), varint(4096), varint(1)]);
    const e = decodeVersionEdit(
      edit()
        .tag(8196)
        .raw(addition) // old encoding: inline
        .tag(8199)
        .raw(lengthPrefixed(Buffer.concat([varint(22), varint(1)])))
        .tag(8200)
        .raw(lengthPrefixed(varint(20)))
        .build(),
    );
    assert.deepEqual(e.walAdditions, [{ number: 21, syncedSize: 4096 }, { number: 22 }]);
    assert.equal(e.walDeletionBefore, 20);
    assert.equal(decodeVersionEdit(edit().tag(8197).raw(varint(19)).build()).walDeletionBefore, 19);
    assertCorrupt(edit().tag(8196).raw(varint(21), varint(7), varint(1)).build(), /WalAddition tag 7/);
  });

  it('decodes the other forward-compatible fields and skips unknown ones', () => {
    const e = decodeVersionEdit(
      edit()
        .tag(8198)
        .raw(lengthPrefixed(Buffer.from([0, 0, 0, 0, 0, 0, 0, 5])))
        .tag(8201)
        .raw(lengthPrefixed(Buffer.from([0])))
        .tag(8202)
        .raw(lengthPrefixed('progress'))
        .tag(8203)
        .raw(lengthPrefixed(varint(123456)))
        .tag(8300)
        .raw(lengthPrefixed('unknown but ignorable'))
        .tag((1 << 13) | (1 << 20))
        .raw(lengthPrefixed(''))
        .logNumber(7)
        .build(),
    );
    assert.equal(e.fullHistoryTsLow?.length, 8);
    assert.equal(e.persistUserDefinedTimestamps, false);
    assert.equal(e.subcompactionProgress?.toString(), 'progress');
    assert.equal(e.lastCompactedManifestFileSize, 123456);
    assert.equal(e.logNumber, 7);
  });

  it('refuses unknown tags below the safe-ignore mask and malformed fields', () => {
    assertCorrupt(edit().tag(8).raw(varint(1)).build(), /tag 8 \(unknown\)/);
    assertCorrupt(edit().tag(1 << 14).raw(lengthPrefixed('')).build(), /unknown/);
    assertCorrupt(edit().tag(8300).raw(varint(10), Buffer.from('short')).build(), /ignorable tag 8300/);
    assertCorrupt(edit().logNumber(5).build().subarray(0, 1), /log number/);
    assertCorrupt(Buffer.from([0x80]), /tag/);
    assertCorrupt(edit().tag(2).raw(varint(2n ** 60n)).build(), /beyond 2\^53/);
    assertCorrupt(edit().tag(7).raw(varint(0), varint(1), varint(1), lengthPrefixed('short'), lengthPrefixed(ikey('b'))).build(), /smallest key/);
    assertCorrupt(edit().tag(8198).raw(lengthPrefixed('')).build(), /full_history_ts_low/);
    assertCorrupt(edit().comparator('xyz').build().subarray(0, 3), /comparator/);
  });

  it('matches ldb manifest_dump on every edit of the fixture MANIFESTs', () => {
    for (const db of ['db-basic', 'db-blob', 'db-cf']) {
      const expected = JSON.parse(readFileSync(join(FIXTURES, `${db}.expected.json`), 'utf8'));
      const file = join(FIXTURES, db, expected.manifestFile);
      const decoded = [...readLogRecords(readFileSync(file), { file })].map((r) => decodeVersionEdit(r, file));
      const dumped = dumpedEdits(db);
      assert.equal(decoded.length, dumped.length, db);
      assert.ok(dumped.length >= 9);
      decoded.forEach((e, i) => {
        const d = dumped[i];
        const where = `${db} edit ${i}`;
        assert.equal(e.columnFamily ?? 0, d.columnFamily, where);
        for (const k of ['comparator', 'logNumber', 'prevLogNumber', 'nextFileNumber', 'lastSequence', 'minLogNumberToKeep', 'maxColumnFamily', 'columnFamilyAdd', 'columnFamilyDrop'] as const) {
          assert.equal(e[k], d[k], `${where} ${k}`);
        }
        assert.deepEqual(e.deletedFiles, d.deletedFiles, where);
        assert.deepEqual(
          e.newFiles.map((f) => ({ level: f.level, number: f.number, size: f.size, ...(f.oldestBlobFileNumber ? { oldestBlobFileNumber: f.oldestBlobFileNumber } : {}) })),
          d.newFiles,
          where,
        );
        assert.deepEqual(e.blobFileAdditions.map(({ number, totalCount, totalBytes }) => ({ number, totalCount, totalBytes })), d.blobFileAdditions, where);
        assert.deepEqual(e.blobFileGarbage, d.blobFileGarbage, where);
      });
    }
  });
});
