import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cUpdate, Crc32c, maskCrc, unmaskCrc, crc32cToBase64, crc32cFromBase64, crc32cCombine } from '../../src/crc32c.ts';

describe('crc32c', () => {
  it('matches the standard check values', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 B.4
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  });
  it('is the same in one pass or in pieces', () => {
    const data = Buffer.from('the quick brown fox jumps over the lazy dog'.repeat(1000));
    const h = new Crc32c();
    for (let i = 0; i < data.length; i += 777) h.update(data.subarray(i, i + 777));
    assert.equal(h.value, crc32c(data));
    assert.equal(h.length, data.length);
    assert.equal(crc32cUpdate(crc32c(data.subarray(0, 5)), data.subarray(5)), crc32c(data));
  });
  it('combines the CRCs of consecutive pieces into the CRC of the whole', () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    for (const cut of [0, 1, 3, 4096, 65_537, 299_999, 300_000]) {
      const a = data.subarray(0, cut);
      const b = data.subarray(cut);
      assert.equal(crc32cCombine(crc32c(a), crc32c(b), b.length), crc32c(data), `cut at ${cut}`);
    }
    // Many ranges, folded in order, as a parallel ranged read does.
    let acc = 0;
    for (let i = 0; i < data.length; i += 7_777) {
      const r = data.subarray(i, i + 7_777);
      acc = crc32cCombine(acc, crc32c(r), r.length);
    }
    assert.equal(acc, crc32c(data));
    // Lengths past 2^32 bytes (the bit arithmetic must not wrap): shifting by m then by n
    // equals shifting by m + n.
    const big = 2 ** 33 + 12_345;
    const x = crc32c(Buffer.from('x'));
    assert.equal(crc32cCombine(crc32cCombine(x, 0, 2 ** 32), 0, big - 2 ** 32), crc32cCombine(x, 0, big));
    assert.throws(() => crc32cCombine(1, 2, -1), RangeError);
  });
  it('masks like RocksDB and encodes like S3/GCS', () => {
    for (const v of [0, 1, 0xe3069283, 0xffffffff]) assert.equal(unmaskCrc(maskCrc(v)), v);
    assert.equal(crc32cToBase64(0xe3069283), '4waSgw==');
    assert.equal(crc32cFromBase64('4waSgw=='), 0xe3069283);
    assert.equal(crc32cFromBase64('AAAA'), undefined);
  });
});
