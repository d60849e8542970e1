import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { isCairnError } from '../../src/errors.ts';
import { readLogRecords, type LogEnd, type LogReadOptions } from '../../src/rocksdb/log-reader.ts';
import { FileLogSource, type LogSource } from '../../src/rocksdb/log-source.ts';
import { prng } from '../support/prng.ts';
import { BLOCK, FIXTURES, fixed32, LogWriter, logOf } from './helpers.ts';

type ReadAll = (data: Buffer, opts?: LogReadOptions) => { records: Buffer[]; end: LogEnd };

function drain(data: Buffer | LogSource, opts?: LogReadOptions): { records: Buffer[]; end: LogEnd } {
  const records: Buffer[] = [];
  const gen = readLogRecords(data, opts);
  for (;;) {
    const r = gen.next();
    if (r.done) return { records, end: r.value };
    // A record read through a file window is valid only until the generator resumes.
    records.push(Buffer.from(r.value));
  }
}

const work = mkdtempSync(join(tmpdir(), 'cairn-log-reader-'));
after(() => rmSync(work, { recursive: true, force: true }));
let fileCount = 0;

/** The same log written to a file and read through a window of `windowBytes`. */
function viaFile(windowBytes: number): ReadAll {
  return (data, opts) => {
    const p = join(work, `log-${fileCount++}`);
    writeFileSync(p, data);
    const src = new FileLogSource(p, { windowBytes });
    try {
      const out = drain(src, opts);
      assert.ok(src.largestView <= BLOCK, 'no view beyond one block');
      assert.ok(src.windowBytes <= windowBytes);
      return out;
    } finally {
      src.close();
      rmSync(p);
    }
  };
}

// Every case runs on a whole Buffer and on files read through windows of one and two blocks, so
// that records, fragments and the zero look-ahead cross window edges.
const SOURCES: [string, ReadAll][] = [
  ['a Buffer', (data, opts) => drain(data, opts)],
  ['a file through a 1-block window', viaFile(BLOCK)],
  ['a file through a 2-block window', viaFile(2 * BLOCK)],
];

function assertCorruption(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e) => isCairnError(e, 'Corruption') && e.file === file && re.test(e.message), String(re));
}

const big = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
/** Bytes zstd cannot shrink, so that a compressed record is fragmented too. */
const noise = (n: number, seed: number): Buffer => {
  const next = prng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
};

for (const [label, readAll] of SOURCES) {
  const records = (data: Buffer, opts?: LogReadOptions): string[] => readAll(data, opts).records.map((r) => r.toString('latin1'));

  describe(`readLogRecords from ${label}`, () => {
    it('reads back records of every size, fragmented across blocks', () => {
      const input = [Buffer.from('a'), Buffer.alloc(0), big(BLOCK * 2 + 100, 1), Buffer.from('after'), big(BLOCK - 7, 2)];
      const data = logOf(input);
      assert.ok(data.length > 3 * BLOCK);
      const out = readAll(data).records;
      assert.equal(out.length, input.length);
      out.forEach((r, i) => assert.ok(r.equals(input[i]), `record ${i}`));
    });

    it('skips block trailers of every size below a header', () => {
      for (let trailer = 0; trailer <= 7; trailer++) {
        // First record leaves exactly `trailer` bytes in block 0.
        const first = Buffer.alloc(BLOCK - 7 - trailer, 0x61);
        const data = logOf([first, Buffer.from('second')]);
        const got = readAll(data).records;
        assert.equal(got.length, 2, `trailer ${trailer}`);
        assert.equal(got[1].toString(), 'second');
        // Padding below a header, or an empty FIRST when exactly a header fits: same size.
        assert.equal(data.length, BLOCK + 7 + 6);
      }
    });

    it('reports where the last complete record ends', () => {
      const data = logOf([Buffer.from('x'), Buffer.from('yy')]);
      assert.deepEqual(readAll(data).end, { validEnd: data.length });
    });

    it('tolerates a tail cut anywhere in the last record, and only there', () => {
      const input = [Buffer.from('one'), big(BLOCK + 500, 3), Buffer.from('three')];
      const full = logOf(input);
      const lastStart = logOf(input.slice(0, 2)).length;
      for (const cut of [lastStart + 1, lastStart + 6, lastStart + 7, lastStart + 10, full.length - 1]) {
        const { records: got, end } = readAll(full.subarray(0, cut), { file: 'MANIFEST-000001' });
        assert.equal(got.length, 2, `cut ${cut}`);
        assert.equal(end.validEnd, lastStart);
        assert.match(end.tail ?? '', /truncated/);
        assertCorruption(() => readAll(full.subarray(0, cut), { file: 'M', tolerateTail: false }), 'M', /truncated/);
      }
      // Cutting inside the fragmented record drops it whole.
      const secondStart = logOf(input.slice(0, 1)).length;
      for (const cut of [secondStart + 3, BLOCK, BLOCK + 3, BLOCK + 300]) {
        const { records: got, end } = readAll(full.subarray(0, cut));
        assert.deepEqual(got.map((r) => r.toString()), ['one'], `cut ${cut}`);
        assert.equal(end.validEnd, secondStart);
      }
    });

    it('treats zero fill after the last record as the end, in both modes', () => {
      const data = Buffer.concat([logOf([Buffer.from('r1'), Buffer.from('r2')]), Buffer.alloc(BLOCK * 2)]);
      assert.deepEqual(records(data), ['r1', 'r2']);
      assert.deepEqual(records(data, { tolerateTail: false }), ['r1', 'r2']);
      const short = Buffer.concat([logOf([Buffer.from('r1')]), Buffer.alloc(3)]);
      assert.deepEqual(records(short, { tolerateTail: false }), ['r1']);
    });

    it('treats a fragmented record followed only by zeros as a torn tail', () => {
      const w = new LogWriter();
      w.add(Buffer.from('kept'));
      w.physical(2, Buffer.from('first part'));
      const data = Buffer.concat([w.build(), Buffer.alloc(500)]);
      assert.deepEqual(records(data), ['kept']);
      assertCorruption(() => records(data, { file: 'f', tolerateTail: false }), 'f', /fragmented/);
      // Non-zero data after the zeros means the damage is in the middle.
      assertCorruption(() => records(Buffer.concat([w.build(), Buffer.alloc(7), Buffer.from([1, 2, 3])]), { file: 'g' }), 'g', /zero-filled/);
    });

    it('throws on a checksum mismatch, naming the file and offset', () => {
      const data = logOf([Buffer.from('alpha'), Buffer.from('beta'), Buffer.from('gamma')]);
      const bad = Buffer.from(data);
      bad[7 + 5 + 7 + 1] ^= 0x01; // a payload byte of "beta"
      assertCorruption(() => records(bad, { file: '/db/MANIFEST-000009' }), '/db/MANIFEST-000009', /checksum mismatch at offset 12/);
      // Even in the last record: the bytes are all there, so this is damage, not a torn write.
      const last = Buffer.from(data);
      last[last.length - 1] ^= 0x20;
      assertCorruption(() => records(last, { file: 'x' }), 'x', /checksum mismatch/);
      // The type byte is covered by the checksum too.
      const typ = Buffer.from(data);
      typ[6] = 2;
      assertCorruption(() => records(typ, { file: 'x' }), 'x', /checksum mismatch at offset 0/);
    });

    it('throws on malformed fragment sequences', () => {
      const w = new LogWriter();
      w.physical(3, Buffer.from('middle'));
      assertCorruption(() => records(w.build(), { file: 'a' }), 'a', /missing start/);
      const w2 = new LogWriter();
      w2.physical(4, Buffer.from('last'));
      assertCorruption(() => records(w2.build(), { file: 'a' }), 'a', /missing start/);
      const w3 = new LogWriter();
      w3.physical(2, Buffer.from('first'));
      w3.physical(1, Buffer.from('full'));
      assertCorruption(() => records(w3.build(), { file: 'a' }), 'a', /partial record without end/);
      // An empty FIRST before a new record is an old writer's quirk, accepted by RocksDB.
      const w4 = new LogWriter();
      w4.physical(2, Buffer.alloc(0));
      w4.physical(1, Buffer.from('full'));
      assert.deepEqual(records(w4.build()), ['full']);
    });

    it('throws on a record longer than its block, unless it is the end of the file', () => {
      const w = new LogWriter();
      w.add(Buffer.from('ok'));
      const header = Buffer.alloc(7);
      header.writeUInt16LE(BLOCK, 4); // cannot fit in any block
      header[6] = 1;
      const data = Buffer.concat([w.build(), header, Buffer.alloc(BLOCK, 1)]);
      assertCorruption(() => records(data, { file: 'a' }), 'a', /bad record length/);
      assert.deepEqual(records(data.subarray(0, 100)), ['ok']);
    });

    it('rejects unknown record types but skips those marked safe to ignore', () => {
      const w = new LogWriter();
      w.add(Buffer.from('a'));
      w.physical(0x85, Buffer.from('from the future'));
      w.physical(130, Buffer.from('predecessor info'));
      w.physical(10, Buffer.from('udt sizes'));
      w.add(Buffer.from('b'));
      assert.deepEqual(records(w.build()), ['a', 'b']);
      const u = new LogWriter();
      u.physical(20, Buffer.from('?'));
      assertCorruption(() => records(u.build(), { file: 'a' }), 'a', /unknown record type 20/);
    });

    it('reads recyclable records and stops at leftovers of the previous log', () => {
      const current = logOf([Buffer.from('new-1'), big(BLOCK, 9), Buffer.from('new-3')], 12);
      const old = logOf([Buffer.from('old-1'), Buffer.from('old-2'), Buffer.from('old-3'), Buffer.from('old-4')], 7);
      // A recycled file: the new log overwrote the start of the old one.
      const file = Buffer.concat([current, old.subarray(0, 2 * BLOCK + 40)]);
      const out = readAll(file, { file: '/db/000012.log' });
      assert.equal(out.records.length, 3);
      assert.equal(out.records[2].toString(), 'new-3');
      assert.match(out.end.tail ?? '', /older log 7/);
      assert.equal(readAll(file, { logNumber: 12 }).records.length, 3);
      // Without a name, the first record's log number is the current one.
      assert.equal(readAll(file).records.length, 3);
      // When told another number, even the first record is a leftover.
      assert.equal(readAll(file, { logNumber: 99 }).records.length, 0);
      // Only the low 32 bits are stored.
      assert.equal(readAll(logOf([Buffer.from('x')], 5), { logNumber: 2 ** 32 + 5 }).records.length, 1);
    });

    it('refuses a recyclable record after legacy ones', () => {
      const w = new LogWriter();
      w.add(Buffer.from('legacy'));
      w.physical(5, Buffer.from('recycled'), { logNumber: 3 });
      assertCorruption(() => records(w.build(), { file: 'a' }), 'a', /recyclable/);
    });

    it('decompresses a zstd-compressed WAL', () => {
      const w = new LogWriter();
      w.physical(9, fixed32(7));
      const plain = [Buffer.from('batch one'), big(70000, 5)];
      for (const p of plain) w.add(zstdCompressSync(p));
      const out = readAll(w.build()).records;
      assert.equal(out.length, 2);
      assert.ok(out[0].equals(plain[0]));
      assert.ok(out[1].equals(plain[1]));
      const bad = new LogWriter();
      bad.physical(9, fixed32(4));
      assertCorruption(() => records(bad.build(), { file: 'w' }), 'w', /compression type 4/);
      const late = new LogWriter();
      late.add(Buffer.from('x'));
      late.physical(9, fixed32(7));
      assertCorruption(() => records(late.build(), { file: 'w' }), 'w', /SetCompressionType/);
    });

    it('with recordPrefix, yields only the first bytes of each record and still checks every fragment', () => {
      const input = [big(BLOCK * 3 + 5, 4), Buffer.from('short'), big(40, 1), Buffer.alloc(0)];
      const data = logOf(input);
      const out = readAll(data, { recordPrefix: 12 });
      assert.deepEqual(out.records.map((r) => r.toString('hex')), input.map((r) => r.subarray(0, 12).toString('hex')));
      assert.deepEqual(out.end, { validEnd: data.length });
      // A flipped byte in the MIDDLE fragment at block 1, far past the prefix.
      const bad = Buffer.from(data);
      bad[BLOCK + 1000] ^= 0x01;
      assertCorruption(() => readAll(bad, { file: 'w', recordPrefix: 12 }), 'w', /checksum mismatch at offset 32768/);
      // A fragmented record cut short is dropped as without a prefix.
      const torn = readAll(data.subarray(0, 2 * BLOCK), { recordPrefix: 12 });
      assert.equal(torn.records.length, 0);
      assert.match(torn.end.tail ?? '', /fragmented record at offset 0/);
    });

    it('with recordPrefix, decompresses a compressed record whole before cutting it', () => {
      const w = new LogWriter();
      w.physical(9, fixed32(7));
      const plain = [noise(3 * BLOCK, 7), Buffer.from('batch two, longer than the prefix')];
      const compressed = plain.map((p) => zstdCompressSync(p));
      assert.ok(compressed[0].length > BLOCK, 'the first record is fragmented');
      for (const c of compressed) w.add(c);
      const out = readAll(w.build(), { recordPrefix: 12 }).records;
      assert.deepEqual(out.map((r) => r.toString('hex')), plain.map((p) => p.subarray(0, 12).toString('hex')));
    });

    it('reads the fixture MANIFEST into as many records as ldb shows edits', () => {
      for (const db of ['db-basic', 'db-blob', 'db-cf']) {
        const expected = JSON.parse(readFileSync(join(FIXTURES, `${db}.expected.json`), 'utf8'));
        const data = readFileSync(join(FIXTURES, db, expected.manifestFile));
        const { records: got, end } = readAll(data, { tolerateTail: false });
        assert.equal(got.length, expected.manifestDump.edits, db);
        assert.deepEqual(end, { validEnd: data.length });
      }
    });
  });
}

describe('FileLogSource', () => {
  const logFile = (data: Buffer): string => {
    const p = join(work, `log-${fileCount++}`);
    writeFileSync(p, data);
    return p;
  };

  it('reads no further than the size it is given, as a Buffer cut there would', () => {
    const input = [Buffer.from('one'), big(BLOCK + 500, 3), Buffer.from('three')];
    const full = logOf(input);
    const p = logFile(full);
    for (const cut of [0, 5, BLOCK, BLOCK + 600, full.length - 1, full.length, full.length + 100]) {
      const src = new FileLogSource(p, { size: cut, windowBytes: BLOCK });
      try {
        assert.equal(src.length, Math.min(cut, full.length));
        const got = drain(src);
        const want = drain(full.subarray(0, cut));
        assert.deepEqual(got.end, want.end, `cut ${cut}`);
        assert.deepEqual(got.records.map((r) => r.toString('hex')), want.records.map((r) => r.toString('hex')), `cut ${cut}`);
      } finally {
        src.close();
      }
    }
  });

  it('holds one window of whole blocks, never more than the log needs, and reads it window by window', () => {
    const data = logOf(Array.from({ length: 10 }, (_, i) => big(BLOCK - 7, i)));
    assert.equal(data.length, 10 * BLOCK);
    const src = new FileLogSource(logFile(data), { windowBytes: 4 * BLOCK });
    try {
      assert.equal(src.windowBytes, 4 * BLOCK);
      assert.equal(drain(src).records.length, 10);
      assert.equal(src.loads, 3, 'blocks 0-3, 4-7, 8-9');
      assert.equal(src.largestView, BLOCK);
    } finally {
      src.close();
    }
    const tiny = new FileLogSource(logFile(logOf([Buffer.from('x')])));
    tiny.close();
    assert.equal(tiny.windowBytes, BLOCK, 'a small log gets a one-block window, not the default 1 MiB');
    for (const windowBytes of [0, 1000, BLOCK + 1]) {
      assert.throws(() => new FileLogSource(logFile(data), { windowBytes }), RangeError);
    }
  });

  it('reports a missing file, and a file that shrinks while read, as I/O errors', () => {
    assert.throws(() => new FileLogSource(join(work, 'absent.log')), (e) => isCairnError(e, 'IOError') && /absent\.log/.test(e.message));
    const data = logOf(Array.from({ length: 4 }, (_, i) => big(BLOCK - 7, i)));
    const p = logFile(data);
    const src = new FileLogSource(p, { windowBytes: BLOCK });
    try {
      writeFileSync(p, data.subarray(0, BLOCK + 10));
      assert.throws(() => drain(src), (e) => isCairnError(e, 'IOError') && /shrank/.test(e.message));
    } finally {
      src.close();
    }
  });
});
