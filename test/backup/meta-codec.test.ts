import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupMetaDecoder, MAX_META_FILE_SIZE, decodeBackupMeta, encodeBackupMeta, manifestOf, temperatureName, type BackupFileEntry } from '../../src/backup/meta-codec.ts';
import { isCairnError } from '../../src/errors.ts';

// meta/2 as written by RocksDB 7.8.3's `ldb backup` (shared/notes/rocksdb-backups.md)
const ROCKSDB_META = `1795548413
90000
5
shared_checksum/000024_sG725PNR8J58ZQGYQ9J09_6463030.sst crc32 660709375
shared_checksum/000013_sRVYCFU53V4D4QJ71FQTR_12925332.sst crc32 3198164866
private/2/MANIFEST-000026 crc32 3654142629
private/2/CURRENT crc32 3858178120
private/2/OPTIONS-000028 crc32 3679531975
`;

const corrupt = (text: string, re?: RegExp) => {
  assert.throws(() => decodeBackupMeta(Buffer.from(text), 'meta/9'), (e) => isCairnError(e, 'Corruption') && (!re || re.test(e.message)) && e.file === 'meta/9', JSON.stringify(text));
};

describe('backup meta codec', () => {
  it('reads a RocksDB-written schema-1 manifest and writes it back byte for byte', () => {
    const m = decodeBackupMeta(Buffer.from(ROCKSDB_META), 'meta/2');
    assert.equal(m.schemaVersion, '1');
    assert.equal(m.timestamp, 1795548413);
    assert.equal(m.sequence, 90000n);
    assert.equal(m.appMetadata.length, 0);
    assert.equal(m.files.length, 5);
    assert.deepEqual(m.files[1], { name: 'shared_checksum/000013_sRVYCFU53V4D4QJ71FQTR_12925332.sst', crc32c: 3198164866 });
    assert.equal(encodeBackupMeta(m).toString(), ROCKSDB_META);
  });

  it('app metadata: uppercase hex like RocksDB, any case read back, binary safe', () => {
    const meta = { timestamp: 1, sequence: 18446744073709551615n, appMetadata: Buffer.from([0, 0xab, 0x0a, 0x20]), files: [{ name: 'private/1/CURRENT', crc32c: 0xffffffff }] };
    const text = encodeBackupMeta(meta).toString();
    assert.equal(text, '1\n18446744073709551615\nmetadata 00AB0A20\n1\nprivate/1/CURRENT crc32 4294967295\n');
    const back = decodeBackupMeta(Buffer.from(text.replace('00AB0A20', '00ab0a20')), 'meta/1');
    assert.deepEqual(back.appMetadata, meta.appMetadata);
    assert.equal(back.sequence, meta.sequence);
  });

  it('reads schema 2.x: sizes, temperatures, ignorable fields, footer, excluded files', () => {
    const text = `schema_version 2.1
1700000000
42
metadata 6869
some_future_field whatever it says
2
shared_checksum/000007_s1_10.sst crc32 12 size 10 temp warm x.y ignored
private/1/CURRENT crc32 7 size 16
shared_checksum/000008_s1_10.sst ni::excluded true
// FOOTER
checksum 123
`;
    const m = decodeBackupMeta(Buffer.from(text), 'meta/1');
    assert.equal(m.schemaVersion, '2.1');
    assert.equal(m.appMetadata.toString(), 'hi');
    assert.deepEqual(m.files, [
      { name: 'shared_checksum/000007_s1_10.sst', crc32c: 12, size: 10, temperature: 'warm' },
      { name: 'private/1/CURRENT', crc32c: 7, size: 16 },
      { name: 'shared_checksum/000008_s1_10.sst', excluded: true },
    ]);
  });

  it('writes schema 2 as RocksDB\'s 2.1 with sizes and temperatures, and reads it back', () => {
    const header = { timestamp: 1700000000, sequence: 42n, appMetadata: Buffer.from('hi') };
    const entries = [
      { name: 'shared_checksum/000007_s1_10.sst', crc32c: 12, size: 10 },
      { name: 'shared_checksum/000009.blob', crc32c: 13, size: 11 },
      { name: 'private/1/CURRENT', crc32c: 7, size: 16 },
    ];
    const sources = [{ temperature: 0x08 }, { temperature: 0 }, {}];
    const v2 = manifestOf(2, header, entries, sources);
    const text = encodeBackupMeta(v2).toString();
    assert.equal(text, `schema_version 2.1
1700000000
42
metadata 6869
3
shared_checksum/000007_s1_10.sst crc32 12 size 10 temp kWarm
shared_checksum/000009.blob crc32 13 size 11
private/1/CURRENT crc32 7 size 16
`);
    const back = decodeBackupMeta(Buffer.from(text), 'meta/1');
    assert.equal(back.schemaVersion, '2.1');
    assert.deepEqual(back.files, v2.files);
    // schema 1: exactly what it always was, whatever the DB files say
    assert.equal(encodeBackupMeta(manifestOf(1, header, entries, sources)).toString(),
      '1700000000\n42\nmetadata 6869\n3\nshared_checksum/000007_s1_10.sst crc32 12\nshared_checksum/000009.blob crc32 13\nprivate/1/CURRENT crc32 7\n');
    assert.deepEqual([0, 0x04, 0x08, 0x0a, 0x0c, 0x10, 0x05, undefined].map(temperatureName), [undefined, 'kHot', 'kWarm', 'kCool', 'kCold', 'kIce', undefined, undefined]);
    assert.throws(() => encodeBackupMeta({ ...header, schemaVersion: '3', files: [] }), (e) => isCairnError(e, 'InvalidArgument'));
  });

  it('refuses what RocksDB refuses, and what it would misread', () => {
    corrupt('', /empty/);
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 5', /truncated/);
    corrupt('1\n2\n2\nprivate/1/CURRENT crc32 5\n', /says 2 files but lists 1/);
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 5\nprivate/1/X crc32 6\n', /says 1 files but lists 2/);
    corrupt('1\n2\n1\nprivate/1/CURRENT\n', /checksum missing/);
    corrupt('1\n2\n1\nprivate/1/CURRENT md5 5\n', /unknown checksum type/);
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 05\n', /bad checksum/);
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 4294967296\n', /exceeds 32 bits/);
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 -1\n');
    corrupt('1\n2\n1\nprivate/1/CURRENT crc32 5 size 3\n', /extra data/);
    corrupt('x1\n2\n0\n', /bad timestamp/);
    corrupt('1\n18446744073709551616\n0\n', /out of range/);
    corrupt('1\n2\nmetadata 0G\n0\n', /hex/);
    corrupt('1\n2\nmetadata 0\n0\n', /hex/);
    corrupt('1\n2\nfield value\n0\n', /expected number of files or "metadata"/);
    corrupt('1\n2\n\n0\n', /empty line/);
    corrupt('1\n2\n0\n\n', /empty line/);
    corrupt('1\n2\n99999999\n', /claims/);
    corrupt('1\n2\n0\u0000\n', /not a text file/);
  });

  it('unknown non-ignorable fields and schema versions are NotSupported (listed as corrupt)', () => {
    for (const text of ['schema_version 3\n1\n2\n0\n', 'schema_version 2\n1\n2\nni::future x\n0\n', 'schema_version 2\n1\n2\n1\nprivate/1/A crc32 1 ni::new y\n']) {
      assert.throws(() => decodeBackupMeta(Buffer.from(text), 'meta/1'), (e) => isCairnError(e, 'NotSupported'));
    }
  });

  it('caps the size of a manifest (streamed: the cap is only a guard against a runaway file)', () => {
    assert.throws(() => decodeBackupMeta({ length: MAX_META_FILE_SIZE + 1 } as Buffer, 'meta/1'), (e) => isCairnError(e, 'Corruption') && /larger than/.test((e as Error).message));
  });

  it('reads a manifest over 10 MiB, as a DB with ~160k table files writes (RocksDB reads them)', () => {
    const n = 160_000;
    const lines = Array.from({ length: n }, (_, i) => `shared_checksum/${String(i).padStart(6, '0')}_sABCDEFGHIJ0123456789_${1000 + i}.sst crc32 ${i}\n`);
    const text = Buffer.from(`1700000000\n42\n${n}\n${lines.join('')}`);
    assert.ok(text.length > 10 * 1024 * 1024);
    assert.equal(decodeBackupMeta(text, 'meta/1').files.length, n);
  });

  it('refuses to write names with white space and metadata over 1 MiB', () => {
    assert.throws(() => encodeBackupMeta({ timestamp: 1, sequence: 1n, appMetadata: Buffer.alloc(0), files: [{ name: 'private/1/a b', crc32c: 1 }] }));
    assert.throws(() => encodeBackupMeta({ timestamp: 1, sequence: 1n, appMetadata: Buffer.alloc(1024 * 1024 + 1), files: [] }));
  });

  it('the streaming decoder gives what decodeBackupMeta gives, however the bytes are cut into chunks', () => {
    const fixtures = path.join(import.meta.dirname, '../fixtures/rocksdb/backup-ldb/backups/meta');
    const texts: Buffer[] = [
      Buffer.from(ROCKSDB_META),
      ...fs.readdirSync(fixtures).map((n) => fs.readFileSync(path.join(fixtures, n))),
      Buffer.from('schema_version 2.1\n1700000000\n42\nmetadata 6869\nsome_future_field wörld ü 😀\n2\nshared_checksum/000007_s1_10.sst crc32 12 size 10 temp warm x.y ignored\nprivate/1/CURRENT crc32 7 size 16\nshared_checksum/000008_s1_10.sst ni::excluded true\n// FOOTER\nchecksum 123\n'),
      // faulty ones: the same error whatever the cuts
      Buffer.from('1\n2\n2\nprivate/1/CURRENT crc32 5\n'),
      Buffer.from('1\n2\n1\nprivate/1/CURRENT crc32 5'),
      Buffer.from('1\n2\n1\nprivate/1/CURRENT crc32 4294967296\n'),
      Buffer.from('1\n2\n99999999\n'),
      Buffer.from('1\n2\n1\nprivate/1/CURRENT crc32 5 size 3\n'),
      Buffer.from('schema_version 2\n1\n2\n1\nprivate/1/A crc32 1 ni::new y\n'),
      Buffer.from('1\n2\n0\n\u00e9'.replace('\u00e9', '\u00e9\n')).subarray(0, -2),
    ];
    const outcome = (f: () => unknown) => {
      try {
        return { ok: f() };
      } catch (e) {
        assert.ok(isCairnError(e), String(e));
        return { code: e.code, message: e.message };
      }
    };
    const streamed = (data: Buffer, cuts: number[]) => () => {
      const files: BackupFileEntry[] = [];
      const d = new BackupMetaDecoder('meta/9', (f) => files.push(f));
      let at = 0;
      for (const c of [...cuts, data.length]) {
        d.push(data.subarray(at, c));
        at = c;
      }
      return { ...d.end(), files };
    };
    for (const data of texts) {
      const whole = outcome(() => decodeBackupMeta(data, 'meta/9'));
      for (let i = 0; i <= data.length; i++) assert.deepEqual(outcome(streamed(data, [i])), whole, `${JSON.stringify(data.toString())} cut at ${i}`);
      const bytes = Array.from({ length: data.length }, (_, i) => i);
      assert.deepEqual(outcome(streamed(data, bytes)), whole, `${JSON.stringify(data.toString())} byte by byte`);
    }
  });
});
