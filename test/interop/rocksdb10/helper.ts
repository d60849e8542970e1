// The Java side of the RocksDB 10+ interop tests: finds a JDK and RocksDB's Java binding
// (installed by scripts/install-rocksdbjni.sh into Maven's local repository), compiles
// RocksHelper.java and runs its commands. With CI=true a missing JDK or jar fails the run.
import { execFile, type ExecFileOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { homedir } from 'node:os';
import assert from 'node:assert/strict';
import { requireOrSkip } from '../../support/servers-common.ts';

const run = promisify(execFile);
const here = import.meta.dirname;

export const ROCKSDBJNI_VERSION = readFileSync(path.join(here, 'rocksdbjni.version'), 'utf8').trim();
const repo = process.env.MAVEN_REPO_LOCAL || path.join(homedir(), '.m2', 'repository');
export const JAR = process.env.CAIRN_ROCKSDBJNI_JAR
  || path.join(repo, 'org/rocksdb/rocksdbjni', ROCKSDBJNI_VERSION, `rocksdbjni-${ROCKSDBJNI_VERSION}-linux64.jar`);

const jdk = await Promise.all([run('java', ['-version']), run('javac', ['-version'])]).then(() => true, () => false);
/** undefined when the tests may run; a skip reason otherwise (throws with CI=true). */
export const skip = requireOrSkip(jdk && existsSync(JAR), `a JDK (java, javac) and ${JAR} (scripts/install-rocksdbjni.sh)`);

export class Rocks {
  private readonly classes: string;
  private constructor(classes: string) {
    this.classes = classes;
  }

  /** Compiles RocksHelper.java into `dir`. */
  static async compile(dir: string): Promise<Rocks> {
    await run('javac', ['-d', dir, '-cp', JAR, path.join(here, 'RocksHelper.java')]);
    return new Rocks(dir);
  }

  /** Runs a helper command; rejects with its stderr if it fails. */
  async run(args: string[], opts: ExecFileOptions = {}): Promise<string> {
    try {
      const { stdout } = await run('java', this.javaArgs(args), { maxBuffer: 256 << 20, ...opts, encoding: 'utf8' });
      return stdout as string;
    } catch (e) {
      const err = e as Error & { stderr?: string };
      throw new Error(`RocksHelper ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  }

  javaArgs(args: string[]): string[] {
    return ['-cp', `${this.classes}${path.delimiter}${JAR}`, 'RocksHelper', ...args];
  }

  /** RocksDB's BackupEngine's view of a backup directory. */
  async info(dir: string): Promise<{ backups: { id: number; size: number; numFiles: number; appMetadata: string }[]; corrupted: number[] }> {
    const lines = (await this.run(['info', dir])).trim().split('\n').map((l) => JSON.parse(l));
    return { backups: lines.slice(0, -1), corrupted: lines[lines.length - 1].corrupted };
  }

  /** Every column family of the DB, each as key -> value, read by RocksDB. */
  async dump(db: string): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    for (const line of (await this.run(['dump', db])).split('\n')) {
      if (line === '') continue;
      const [cf, key, value] = line.split('\t');
      if (cf === '#cf') out.set(key, new Map());
      else out.get(cf)!.set(key, value);
    }
    return out;
  }
}

export const key = (i: number) => `k${String(i).padStart(8, '0')}`;

/** RocksHelper.valueOf: the value of key i in column family cf. */
export function valueOf(cf: string, i: number): string {
  let s = `${cf}:${i}:`;
  while (s.length < 120) s += String.fromCharCode(97 + ((s.length * 7 + i) % 26));
  return s;
}

/** Asserts that each of `cfs` holds exactly keys 0..n-1 with their values. */
export function assertHolds(dump: Map<string, Map<string, string>>, cfs: string[], n: number, what: string): void {
  assert.deepEqual([...dump.keys()].sort(), [...cfs].sort(), `${what}: column families`);
  for (const cf of cfs) {
    const m = dump.get(cf)!;
    assert.equal(m.size, n, `${what}: ${cf} holds ${m.size} keys, expected ${n}`);
    for (let i = 0; i < n; i++) if (m.get(key(i)) !== valueOf(cf, i)) assert.fail(`${what}: ${cf} ${key(i)} = ${m.get(key(i))}`);
  }
}

/** The number M such that every column family holds exactly keys 0..M-1 (the same M in all). */
export function prefixHeld(dump: Map<string, Map<string, string>>, cfs: string[], what: string): number {
  const n = dump.get(cfs[0])?.size ?? 0;
  assertHolds(dump, cfs, n, what);
  return n;
}
