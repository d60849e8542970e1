// The engine suite (engine-suite.ts), restore and verify: what restore replaces, parallel ranges,
// checking each shared file once.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BackupEngine, type VerifyOptions } from '../../src/backup/engine.ts';
import type { BackupEnv } from '../../src/env.ts';
import { isCairnError } from '../../src/errors.ts';
import { writeFakeDb, table, type FakeDbSpec } from './fake-db.ts';
import { chunked, readAll } from './env-conformance.ts';
import type { EngineCase } from './engine-suite.ts';
import { expectedFiles, dirContents, assertSameFiles } from './engine-suite-helpers.ts';

export function restoreTests(c: EngineCase): void {
  const { open, restoreDir, spec1 } = c;
  /** Two backups of spec1(), then one byte flipped in the stored copy of table 7, which both use. */
  const twoBackupsOneDamaged = async () => {
    const { dbDir, sub } = c.now();
    await writeFakeDb(dbDir, spec1());
    const e = await open();
    const b1 = await e.createBackup(dbDir);
    const b2 = await e.createBackup(dbDir);
    const sst = e.getBackupInfo(b2.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
    await e.close();
    const bytes = await readAll(sub, sst.name);
    bytes[777] ^= 0x10;
    await sub.write(sst.name, chunked(bytes));
    return { b1, b2, sst };
  };
  it('restore replaces RocksDB files only, keeps WALs on request, restores any id', async () => {
    const { dbDir } = c.now();
    const spec = spec1();
    await writeFakeDb(dbDir, spec);
    const e = await open();
    await e.createBackup(dbDir);
    const out = restoreDir();
    await fsp.mkdir(out, { recursive: true });
    await fsp.writeFile(path.join(out, '000077.sst'), 'stale table');
    await fsp.writeFile(path.join(out, '000078.log'), 'newer wal');
    await fsp.writeFile(path.join(out, 'notes.txt'), 'not RocksDB: left alone');
    await e.restore({ dbDir: out, keepLogFiles: true });
    const got = await dirContents(out);
    assert.ok(!got.has('000077.sst'));
    assert.equal(got.get('000078.log')!.toString(), 'newer wal');
    assert.equal(got.get('notes.txt')!.toString(), 'not RocksDB: left alone');
    await e.restore({ dbDir: out });
    const got2 = await dirContents(out);
    assert.ok(!got2.has('000078.log'));
    got2.delete('notes.txt');
    assertSameFiles(got2, await expectedFiles(dbDir, spec), 'restore without keeping logs');
    // separate WAL dir
    const walOut = restoreDir();
    const out3 = restoreDir();
    await e.restore({ dbDir: out3, walDir: walOut });
    assert.deepEqual(await fsp.readdir(walOut), ['000011.log']);
    assert.ok(!(await fsp.readdir(out3)).includes('000011.log'));
    await assert.rejects(e.restore({ backupId: 42, dbDir: restoreDir() }), (err) => isCairnError(err, 'NotFound'));
    await e.close();
  });

  it('a large file is restored and checksum-verified in parallel ranges; damage and truncation are found', async () => {
    const { dbDir, n, sub } = c.now();
    const part = sub.capabilities.parallelRanges?.partSize ?? 1 << 20;
    const spec: FakeDbSpec = { ...spec1(), tables: [table(7, Math.floor(part * 2.5) + 123), table(9, 70_000)] };
    await writeFakeDb(dbDir, spec);
    const e = await open();
    const b = await e.createBackup(dbDir);
    const out = restoreDir();
    await e.restore({ dbDir: out });
    assertSameFiles(await dirContents(out), await expectedFiles(dbDir, spec), 'restore of a multi-range file');
    assert.deepEqual((await e.verifyBackup(b.id, { checksum: true })).problems, []);
    const big = e.getBackupInfo(b.id, { includeFileDetails: true }).files!.find((f) => f.name.startsWith('shared_checksum/000007_'))!;
    const bytes = await readAll(sub, big.name);
    bytes[bytes.length - 10] ^= 0x55; // in the last range
    await sub.write(big.name, chunked(bytes));
    const r = await e.verifyBackup(b.id, { checksum: true });
    assert.deepEqual(r.problems.map((p) => [p.file, p.code]), [[big.name, 'Corruption']]);
    assert.match(r.problems[0].message, /checksum mismatch/);
    const out2 = restoreDir();
    await assert.rejects(e.restore({ dbDir: out2 }), (err) => isCairnError(err, 'Corruption') && err.message.includes(big.name));
    assert.ok(!(await fsp.readdir(out2)).includes('CURRENT'));
    // Truncated after the directory was opened: a range comes back short.
    await sub.write(big.name, chunked(bytes.subarray(0, part + 5)));
    const out3 = restoreDir();
    await assert.rejects(e.restore({ dbDir: out3 }), (err) => isCairnError(err, 'Corruption') && err.message.includes(big.name));
    assert.deepEqual((await fsp.readdir(out3)).filter((n) => n === 'CURRENT' || n.endsWith('.tmp')), []);
    await e.close();
  });

  it('verifying several backups with one checkedSharedFiles map reads each shared file once, and reports its damage for each backup', async () => {
    const { sub } = c.now();
    const { b1, b2, sst } = await twoBackupsOneDamaged();
    const reads = new Map<string, number>();
    const count = (name: string) => reads.set(name, (reads.get(name) ?? 0) + 1);
    const counting: BackupEnv = {
      ...sub,
      openRead: (name, o) => (count(name), sub.openRead(name, o)),
      ...(sub.serverChecksum ? { serverChecksum: (name: string, o?: { signal?: AbortSignal }) => (count(name), sub.serverChecksum!(name, o)) } : {}),
    };
    const v = await BackupEngine.open({ env: counting, readOnly: true, maxBackgroundOperations: 3 });
    const modes: VerifyOptions[] = [{ checksum: true }, ...(sub.capabilities.serverChecksum ? [{ serverChecksum: true }] : [])];
    for (const mode of modes) {
      for (const shared of [false, true]) {
        reads.clear();
        const checkedSharedFiles = shared ? new Map() : undefined;
        const r1 = await v.verifyBackup(b1.id, { ...mode, ...(checkedSharedFiles ? { checkedSharedFiles } : {}) });
        const r2 = await v.verifyBackup(b2.id, { ...mode, ...(checkedSharedFiles ? { checkedSharedFiles } : {}) });
        const seen = mode.serverChecksum && sub.capabilities.serverChecksumGaps ? [] : [[sst.name, 'Corruption']];
        for (const r of [r1, r2]) assert.deepEqual(r.problems.map((p) => [p.file, p.code]), seen, `${JSON.stringify(mode)} backup ${r.id}`);
        const sharedReads = [...reads].filter(([n]) => n.startsWith('shared'));
        const perFile = mode.checksum || !sub.capabilities.listsChecksums;
        if (perFile) assert.ok(sharedReads.length > 0);
        for (const [n, c] of sharedReads) assert.equal(c, shared ? 1 : 2, `${JSON.stringify(mode)} ${shared ? 'with' : 'without'} the map: ${n}`);
        // Private files belong to one backup: checked for each.
        if (mode.checksum) assert.ok([...reads.keys()].some((n) => n.startsWith(`private/${b2.id}/`)));
      }
    }
    await v.close();
  });

  it('verifyBackups: one pass lists each directory once, checks each file once, and reports per backup', async () => {
    const { sub } = c.now();
    const { b1, b2, sst } = await twoBackupsOneDamaged();
    await sub.write('meta/9', chunked(Buffer.from('not a manifest\n')));
    const reads = new Map<string, number>();
    const lists = new Map<string, number>();
    const count = (m: Map<string, number>, name: string) => m.set(name, (m.get(name) ?? 0) + 1);
    const counting: BackupEnv = {
      ...sub,
      list: (prefix, o) => (count(lists, prefix), sub.list(prefix, o)),
      openRead: (name, o) => (count(reads, name), sub.openRead(name, o)),
      ...(sub.serverChecksum ? { serverChecksum: (name: string, o?: { signal?: AbortSignal }) => (count(reads, name), sub.serverChecksum!(name, o)) } : {}),
    };
    const v = await BackupEngine.open({ env: counting, readOnly: true, maxBackgroundOperations: 3 });
    const modes: VerifyOptions[] = [{}, { checksum: true }, ...(sub.capabilities.serverChecksum ? [{ serverChecksum: true }] : [])];
    for (const mode of modes) {
      reads.clear();
      lists.clear();
      const rs = await v.verifyBackups('all', mode);
      assert.deepEqual(rs.map((r) => r.id), [b1.id, b2.id, 9]);
      const damaged = mode.checksum || (mode.serverChecksum && !sub.capabilities.serverChecksumGaps) ? [[sst.name, 'Corruption']] : [];
      for (const r of rs.slice(0, 2)) {
        assert.deepEqual(r.problems.map((p) => [p.file, p.code]), damaged, `${JSON.stringify(mode)} backup ${r.id}`);
        assert.equal(r.error, undefined);
        assert.equal(r.filesChecked, v.getBackupInfo(r.id).numFiles);
      }
      assert.ok(isCairnError(rs[2].error, 'Corruption'), 'the corrupt backup: its error, the others still verified');
      for (const [n, c] of reads) if (!n.startsWith('meta/')) assert.equal(c, 1, `${JSON.stringify(mode)}: ${n} read ${c} times`);
      if (mode.checksum) assert.ok([...reads.keys()].some((n) => n.startsWith(`private/${b1.id}/`)) && [...reads.keys()].some((n) => n.startsWith(`private/${b2.id}/`)));
      for (const [p, c] of lists) assert.equal(c, 1, `${JSON.stringify(mode)}: ${p} listed ${c} times`);
      if (!mode.serverChecksum) assert.deepEqual([...lists.keys()].sort(), ['locks/', 'private/', 'shared/', 'shared_checksum/'], 'and locks/ once, by the read lock');
    }
    // The same as verifyBackup of each, problem for problem.
    for (const id of [b1.id, b2.id]) {
      const [r] = await v.verifyBackups([id], { checksum: true });
      assert.deepEqual(r, { ...(await v.verifyBackup(id, { checksum: true })) });
    }
    await v.close();
  });
}
