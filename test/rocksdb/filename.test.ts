import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  blobFileName,
  manifestFileName,
  optionsFileName,
  parseDbFileName,
  tableFileName,
  walFileName,
} from '../../src/rocksdb/filename.ts';
import { FIXTURES } from './helpers.ts';

describe('parseDbFileName', () => {
  it('classifies every kind of DB file', () => {
    const cases: [string, string, number][] = [
      ['000012.sst', 'table', 12],
      ['000012.ldb', 'table', 12],
      ['1234567.sst', 'table', 1234567],
      ['000007.blob', 'blob', 7],
      ['000003.log', 'wal', 3],
      ['MANIFEST-000005', 'manifest', 5],
      ['CURRENT', 'current', 0],
      ['OPTIONS-000012', 'options', 12],
      ['OPTIONS-000012.dbtmp', 'optionsTemp', 12],
      ['000012.dbtmp', 'temp', 12],
      ['IDENTITY', 'identity', 0],
      ['LOCK', 'lock', 0],
      ['LOG', 'infoLog', 0],
      ['LOG.old', 'infoLog', 0],
      ['LOG.old.1795569889594132', 'infoLog', 1795569889594132],
      ['0.log', 'wal', 0],
    ];
    for (const [name, type, number] of cases) {
      assert.deepEqual(parseDbFileName(name), { type, number }, name);
    }
  });

  it('rejects what RocksDB would not create', () => {
    for (const name of [
      '',
      'foo',
      '.sst',
      '12.',
      '12',
      'abc.sst',
      '12.txt',
      '12.old.log',
      '-12.sst',
      '+12.sst',
      '1e3.sst',
      'MANIFEST-',
      'MANIFEST-12x',
      'MANIFEST-0x10',
      'OPTIONS-',
      'OPTIONS-12x',
      'OPTIONS-.dbtmp',
      'LOG.old.',
      'LOG.old.x',
      'LOGS',
      'current',
      'archive/000003.log', // basenames only
      'COMPACTION_PROGRESS-123', // a RocksDB 11 file kind outside DbFileType
      '9007199254740992.sst', // 2^53: not exactly representable
      '99999999999999999999999.log',
    ]) {
      assert.equal(parseDbFileName(name), undefined, name);
    }
  });

  it('accepts the largest safe number', () => {
    assert.deepEqual(parseDbFileName('9007199254740991.sst'), { type: 'table', number: Number.MAX_SAFE_INTEGER });
  });

  it('knows every file in the fixture DBs and backups', () => {
    for (const db of ['db-basic', 'db-blob', 'db-cf']) {
      for (const f of readdirSync(join(FIXTURES, db))) assert.notEqual(parseDbFileName(f), undefined, `${db}/${f}`);
    }
    for (const id of ['1', '2']) {
      for (const f of readdirSync(join(FIXTURES, 'backup-ldb', 'backups', 'private', id))) {
        assert.notEqual(parseDbFileName(f), undefined, f);
      }
    }
  });
});

describe('file name builders', () => {
  it('pad to six digits like RocksDB', () => {
    assert.equal(tableFileName(12), '000012.sst');
    assert.equal(blobFileName(7), '000007.blob');
    assert.equal(walFileName(12), '000012.log');
    assert.equal(manifestFileName(12), 'MANIFEST-000012');
    assert.equal(optionsFileName(12), 'OPTIONS-000012');
    assert.equal(tableFileName(0), '000000.sst');
  });

  it('never truncate longer numbers', () => {
    assert.equal(tableFileName(1234567), '1234567.sst');
    assert.equal(manifestFileName(123456), 'MANIFEST-123456');
  });

  it('round-trip through the parser', () => {
    for (const n of [0, 1, 999999, 1000000, Number.MAX_SAFE_INTEGER]) {
      assert.deepEqual(parseDbFileName(tableFileName(n)), { type: 'table', number: n });
      assert.deepEqual(parseDbFileName(blobFileName(n)), { type: 'blob', number: n });
      assert.deepEqual(parseDbFileName(walFileName(n)), { type: 'wal', number: n });
      assert.deepEqual(parseDbFileName(manifestFileName(n)), { type: 'manifest', number: n });
      assert.deepEqual(parseDbFileName(optionsFileName(n)), { type: 'options', number: n });
    }
  });

  it('refuse numbers that are not file numbers', () => {
    for (const n of [-1, 1.5, Number.NaN, 2 ** 53]) assert.throws(() => tableFileName(n), RangeError);
  });
});
