import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dbFileNameOf, sharedChecksumName, validateBackupFileName, parseBackupId } from '../../src/backup/layout.ts';
import { isCairnError } from '../../src/errors.ts';

describe('backup directory names', () => {
  it('maps backup files back to RocksDB names as RocksDB does', () => {
    assert.equal(dbFileNameOf('shared_checksum/000013_sRVYCFU53V4D4QJ71FQTR_12925332.sst'), '000013.sst');
    assert.equal(dbFileNameOf('shared_checksum/000009_3786171802_251838.blob'), '000009.blob');
    assert.equal(dbFileNameOf('shared_checksum/000013_sABC.sst'), '000013.sst');
    assert.equal(dbFileNameOf('shared/000013.sst'), '000013.sst');
    assert.equal(dbFileNameOf('private/3/MANIFEST-000026'), 'MANIFEST-000026');
  });

  it('names shared files by session id (with or without size) or crc32c and size', () => {
    assert.equal(sharedChecksumName('000013.sst', 12925332, { sessionId: 'RVYCFU53V4D4QJ71FQTR', includeSize: true, naming: 'session-id' }), 'shared_checksum/000013_sRVYCFU53V4D4QJ71FQTR_12925332.sst');
    assert.equal(sharedChecksumName('000013.sst', 5, { sessionId: 'X', includeSize: false, naming: 'session-id' }), 'shared_checksum/000013_sX.sst');
    assert.equal(sharedChecksumName('000013.sst', 5, { sessionId: 'X', crc32c: 77, includeSize: true, naming: 'legacy-crc32c-size' }), 'shared_checksum/000013_77_5.sst');
    assert.equal(sharedChecksumName('000009.blob', 251838, { crc32c: 3786171802, includeSize: true, naming: 'session-id' }), 'shared_checksum/000009_3786171802_251838.blob');
  });

  it('accepts only files a backup may reference', () => {
    for (const ok of ['shared_checksum/000013_sX_1.sst', 'shared/000013.sst', 'private/4/CURRENT', 'private/4/000012.log', 'private/4/OPTIONS-000005']) {
      validateBackupFileName(ok, 4, 'meta/4');
    }
    for (const bad of ['private/3/CURRENT', 'private/4/../../etc/passwd', 'private/4/sub/CURRENT', '/etc/passwd', 'shared_checksum/../x.sst', 'meta/4', 'private/4/notes.txt', 'shared_checksum/abc', 'private/4/']) {
      assert.throws(() => validateBackupFileName(bad, 4, 'meta/4'), (e) => isCairnError(e, 'Corruption'), bad);
    }
  });

  it('parses backup ids like RocksDB writes them', () => {
    assert.equal(parseBackupId('12'), 12);
    for (const bad of ['0', '012', '-1', '1.tmp', '.1.tmp', '4294967296', '']) assert.equal(parseBackupId(bad), undefined, bad);
  });
});
