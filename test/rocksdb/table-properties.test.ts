import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCairnError } from '../../src/errors.ts';
import { parseDbFileName } from '../../src/rocksdb/filename.ts';
import { parseTableProperties, readTableProperties, type TableProperties } from '../../src/rocksdb/table-properties.ts';
import { FIXTURES, fixed64, syntheticSst, varint } from './helpers.ts';

const fromBuffer = (data: Buffer, file = 'test.sst'): Promise<TableProperties> =>
  parseTableProperties(async (offset, length) => data.subarray(offset, offset + length), data.length, file);

async function assertCorrupt(data: Buffer, re: RegExp, file = '/db/000042.sst'): Promise<void> {
  await assert.rejects(fromBuffer(data, file), (e) => isCairnError(e, 'Corruption') && e.file === file && re.test(e.message), String(re));
}

const varintValue = (b: Buffer | undefined): number => {
  assert.ok(b);
  let v = 0;
  for (let i = 0, shift = 1; i < b.length; i++, shift *= 128) {
    v += (b[i] & 0x7f) * shift;
    if ((b[i] & 0x80) === 0) break;
  }
  return v;
};

interface SstExpectation {
  formatVersionAsWritten: number;
  formatVersionFromSstDump: number;
  checksumType: number;
  size: number;
  dbId: string;
  dbSessionId: string;
  origFileNumber: number;
}

const sstExpected: Record<string, SstExpectation> = JSON.parse(readFileSync(join(FIXTURES, 'sst', 'expected.json'), 'utf8')).files;

describe('readTableProperties on tables written by RocksDB 7.8.3', () => {
  it('covers format versions 0 to 5', () => {
    assert.deepEqual(Object.keys(sstExpected).sort(), ['fv0.sst', 'fv1.sst', 'fv2.sst', 'fv3.sst', 'fv4.sst', 'fv5.sst']);
  });

  for (const [name, x] of Object.entries(sstExpected)) {
    it(`${name}: same identity as sst_dump`, async () => {
      const p = await readTableProperties(join(FIXTURES, 'sst', name));
      assert.equal(p.formatVersion, x.formatVersionFromSstDump);
      assert.equal(p.formatVersion, x.formatVersionAsWritten);
      assert.equal(p.dbId, x.dbId);
      assert.equal(p.dbSessionId, x.dbSessionId);
      assert.match(p.dbSessionId ?? '', /^[0-9A-Z]{20}$/);
      assert.equal(p.origFileNumber, x.origFileNumber);
      // db_bench wrote 8 keys of 16 bytes (+8 internal bytes) and 16-byte values.
      assert.equal(varintValue(p.raw.get('rocksdb.num.entries')), 8);
      assert.equal(varintValue(p.raw.get('rocksdb.raw.key.size')), 8 * 24);
      assert.equal(varintValue(p.raw.get('rocksdb.raw.value.size')), 8 * 16);
      assert.equal(p.raw.get('rocksdb.column.family.name')?.toString(), 'default');
    });
  }

  for (const db of ['db-basic', 'db-blob', 'db-cf']) {
    it(`${db}: every table matches sst_dump`, async () => {
      const x = JSON.parse(readFileSync(join(FIXTURES, `${db}.expected.json`), 'utf8'));
      const names = readdirSync(join(FIXTURES, db)).filter((f) => parseDbFileName(f)?.type === 'table');
      assert.deepEqual(names.sort(), Object.keys(x.tableProperties).sort());
      for (const name of names) {
        const p = await readTableProperties(join(FIXTURES, db, name));
        const { dbId, dbSessionId, origFileNumber } = p;
        assert.deepEqual({ dbId, dbSessionId, origFileNumber }, x.tableProperties[name], name);
        assert.equal(p.formatVersion, 5);
      }
    });
  }

  it('backup-ldb: shared_checksum names carry the session id, number and size read back here', async () => {
    const dir = join(FIXTURES, 'backup-ldb', 'backups', 'shared_checksum');
    const names = readdirSync(dir);
    assert.equal(names.length, 2);
    for (const name of names) {
      const m = name.match(/^(\d+)_s([0-9A-Z]+)_(\d+)\.sst$/);
      assert.ok(m, name);
      const p = await readTableProperties(join(dir, name));
      assert.equal(p.dbSessionId, m[2]);
      assert.equal(p.origFileNumber, Number(m[1]));
      assert.equal(readFileSync(join(dir, name)).length, Number(m[3]));
    }
  });
});

describe('format_version >= 6 footers (built from the spec)', () => {
  const props: [string, Buffer][] = [
    ['rocksdb.creating.db.identity', Buffer.from('db-id-6')],
    ['rocksdb.creating.session.identity', Buffer.from('SESSION6SESSION6SESS')],
    ['rocksdb.num.entries', varint(3)],
    ['rocksdb.original.file.number', varint(123456789)],
  ];

  it('finds the metaindex from its size and checks the footer checksum', async () => {
    for (const fv of [6, 7]) {
      const p = await fromBuffer(syntheticSst(props, { formatVersion: fv }));
      assert.equal(p.formatVersion, fv);
      assert.equal(p.dbId, 'db-id-6');
      assert.equal(p.dbSessionId, 'SESSION6SESSION6SESS');
      assert.equal(p.origFileNumber, 123456789);
      assert.equal(p.raw.size, 4);
    }
    // Same content as format_version 5, for comparison.
    assert.equal((await fromBuffer(syntheticSst(props, { formatVersion: 5 }))).origFileNumber, 123456789);
  });

  it('rejects a bad footer checksum, a zero context, a bad extended magic and future features', async () => {
    const good = syntheticSst(props);
    const f = good.length - 53;
    const badSum = Buffer.from(good);
    badSum[f + 5] ^= 1;
    await assertCorrupt(badSum, /footer at \d+ checksum mismatch/);
    const badMagic = Buffer.from(good);
    badMagic[f + 2] = 1;
    await assertCorrupt(badMagic, /extended magic/);
    await assertCorrupt(syntheticSst(props, { base: 0 }), /base context checksum/);
    await assert.rejects(fromBuffer(syntheticSst(props, { reserved: 1 })), (e) => isCairnError(e, 'NotSupported'));
  });

  it('verifies block checksums with the offset mixed in', async () => {
    const good = syntheticSst(props);
    const flipped = Buffer.from(good);
    flipped[30] ^= 0x04; // inside the properties block
    await assertCorrupt(flipped, /properties block checksum mismatch/);
  });
});

describe('properties block details', () => {
  it('accepts the pre-3.x name of the properties block', async () => {
    const p = await fromBuffer(syntheticSst([['rocksdb.creating.session.identity', Buffer.from('OLD')]], { formatVersion: 2, propertiesBlockName: 'rocksdb.stats' }));
    assert.equal(p.dbSessionId, 'OLD');
  });

  it('retries the checksum with the global seqno of an ingested file zeroed, as RocksDB does', async () => {
    const props: [string, Buffer][] = [
      ['rocksdb.creating.session.identity', Buffer.from('INGESTED')],
      ['rocksdb.external_sst_file.global_seqno', fixed64(0)],
      ['rocksdb.external_sst_file.version', Buffer.from([2, 0, 0, 0])],
    ];
    const sst = syntheticSst(props, { formatVersion: 5 });
    const at = sst.indexOf(Buffer.from('global_seqno')) + 'global_seqno'.length;
    sst.writeBigUInt64LE(4242n, at); // rewritten in place at ingestion
    assert.equal((await fromBuffer(sst)).raw.get('rocksdb.external_sst_file.global_seqno')?.readBigUInt64LE(0), 4242n);
    const other = Buffer.from(sst);
    other[sst.indexOf(Buffer.from('INGESTED'))] = 0x4a;
    await assertCorrupt(other, /properties block checksum mismatch/);
  });

  it('refuses unsorted properties and a missing properties block', async () => {
    await assertCorrupt(
      syntheticSst([
        ['rocksdb.b', Buffer.from('1')],
        ['rocksdb.a', Buffer.from('2')],
      ]),
      /properties unsorted/,
    );
    await assertCorrupt(syntheticSst([['x', Buffer.from('1')]], { propertiesBlockName: 'rocksdb.other' }), /cannot find the properties meta block/);
  });
});

describe('damaged or foreign tables', () => {
  const fv2 = readFileSync(join(FIXTURES, 'sst', 'fv2.sst'));
  const fv0 = readFileSync(join(FIXTURES, 'sst', 'fv0.sst'));
  const fv5 = readFileSync(join(FIXTURES, 'sst', 'fv5.sst'));

  it('an SST truncated to 40 bytes is a corruption naming the file', async () => {
    await assertCorrupt(fv2.subarray(0, 40), /too short/);
    await assertCorrupt(Buffer.alloc(0), /too short/);
  });

  it('any truncation or extension is a corruption, never a crash', async () => {
    for (const sst of [fv0, fv2, fv5]) {
      for (let n = 0; n < sst.length; n++) {
        await assert.rejects(fromBuffer(sst.subarray(0, n), 't.sst'), (e) => isCairnError(e) && e.file === 't.sst', `length ${n}`);
      }
      await assertCorrupt(Buffer.concat([sst, Buffer.from([0])]), /magic/);
    }
  });

  it('random bytes in place of metadata are a corruption, never a crash', async () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
    for (const sst of [fv2, fv5, fv0]) {
      for (let i = 0; i < 300; i++) {
        const bad = Buffer.from(sst);
        // Damage somewhere in the last 400 bytes: properties, metaindex, index or footer.
        const at = bad.length - 1 - (rnd() * 256 + rnd()) % 400;
        bad[at] ^= 1 + (rnd() % 255);
        try {
          await fromBuffer(bad, 'r.sst');
        } catch (e) {
          assert.ok(isCairnError(e) && e.file === 'r.sst', `byte ${at}: ${String(e)}`);
        }
      }
    }
  });

  it('detects a flipped byte through the crc32c block checksums', async () => {
    const p = await fromBuffer(fv2);
    const session = fv2.indexOf(Buffer.from(p.dbSessionId!));
    const bad = Buffer.from(fv2);
    bad[session] ^= 0x01;
    await assertCorrupt(bad, /properties block checksum mismatch/);
    const metaindex = fv2.lastIndexOf(Buffer.from('rocksdb.properties'));
    const badMeta = Buffer.from(fv2);
    badMeta[metaindex + 3] ^= 0x01;
    await assertCorrupt(badMeta, /metaindex block checksum mismatch/);
  });

  it('names plain and cuckoo tables as not block-based', async () => {
    const withMagic = (magic: bigint) => {
      const b = Buffer.from(fv2);
      b.writeBigUInt64LE(magic, b.length - 8);
      return b;
    };
    await assertCorrupt(withMagic(0x8242229663bf9564n), /plain table/);
    await assertCorrupt(withMagic(0x4f3418eb7a8f13b8n), /plain table/);
    await assertCorrupt(withMagic(0x926789d0c5f17873n), /cuckoo table/);
    await assertCorrupt(withMagic(0x0123456789abcdefn), /bad table magic number/);
    const fv = Buffer.from(fv2);
    fv.writeUInt32LE(99, fv.length - 12);
    await assertCorrupt(fv, /format_version 99/);
  });

  it('reports a missing file as NotFound', async () => {
    await assert.rejects(readTableProperties(join(FIXTURES, 'sst', 'nope.sst')), (e) => isCairnError(e, 'NotFound'));
  });
});
