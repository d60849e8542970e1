// The per-manifest check that no two entries restore to one DB file name: its numeric keys must
// agree with dbFileNameOf exactly (equal key <=> equal restored name), whatever the names.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dbFileNameOf } from '../../src/backup/layout.ts';
import { RestoreNameCheck, numericRestoreKey } from '../../src/backup/restore-names.ts';

const NAMES = [
  'shared_checksum/000010_sSESSIONA_100.sst', 'shared_checksum/000010_sSESSIONB_100.sst', 'shared_checksum/10_sS_1.sst',
  'shared_checksum/000010_123_456.blob', 'shared_checksum/000010.sst', 'shared_checksum/000010_x.SST', 'shared_checksum/000011_s_1.sst',
  'shared/000010.sst', 'shared/000010.ldb', 'shared/000010.log', 'shared/0000000000000000010.sst', 'shared/000010_a.sst',
  'private/3/000010.log', 'private/3/MANIFEST-000005', 'private/3/CURRENT', 'private/3/OPTIONS-000007', 'private/3/000010.sst',
  'private/3/IDENTITY', 'shared_checksum/9007199254740_s_1.sst', 'shared_checksum/000010_s.x_1.sst', 'private/4/.sst', 'shared/a.sst',
];

describe('restore names', () => {
  it('numeric keys are equal exactly when the restored names are', () => {
    for (const a of NAMES) {
      for (const b of NAMES) {
        const ka = numericRestoreKey(a);
        const kb = numericRestoreKey(b);
        if (ka >= 0 && kb >= 0) assert.equal(ka === kb, dbFileNameOf(a) === dbFileNameOf(b), `${a} / ${b}`);
        if (ka >= 0) assert.match(dbFileNameOf(a), /^[0-9]{1,15}\.(sst|ldb|log|blob)$/, a);
      }
    }
  });

  it('finds the entry restoring to the same name in this manifest only, over many entries', () => {
    const check = new RestoreNameCheck();
    for (let manifest = 0; manifest < 3; manifest++) {
      check.begin();
      for (let n = 0; n < 20_000; n++) assert.equal(check.add(`shared_checksum/${String(n).padStart(6, '0')}_sA_${n}.sst`, n), -1);
      assert.equal(check.add('shared_checksum/000123_sB_5.sst', 99_999), 123);
      assert.equal(check.add('private/1/MANIFEST-000005', 1), -1);
      assert.equal(check.add('shared/MANIFEST-000005', 2), 1);
      assert.equal(check.add('shared/000123.log', 3), -1, 'another extension, another name');
      assert.equal(check.add('shared/0123.sst', 4), -1, 'another number of digits, another name');
    }
  });
});
