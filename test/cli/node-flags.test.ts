// bin/cairn starts Node with the V8 flags of bin/node-flags (what the benchmarks measure, through
// bench/cairn-cli.ts), and leaves a flag the user sets in NODE_OPTIONS to the user.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeFlags } from '../../bench/cairn-cli.ts';

const root = path.join(import.meta.dirname, '../..');

describe('bin/cairn node flags', () => {
  let dir: string;
  let reporter: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-node-flags-'));
    reporter = path.join(dir, 'report.mjs');
    // Loaded into every node bin/cairn starts (its version check too): only the CLI's reports.
    fs.writeFileSync(reporter, `import * as v8 from 'node:v8';
if (/cairn\\.(js|ts)$/.test(process.argv[1] ?? '')) {
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  process.stderr.write('EXECARGV ' + JSON.stringify({ execArgv: process.execArgv, newSpace: young?.space_size }) + '\\n');
}\n`);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (nodeOptions: string) => {
    const r = spawnSync(path.join(root, 'bin/cairn'), ['list', '--backup-dir', path.join(dir, 'none')], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: nodeOptions } });
    assert.equal(r.status, 0, r.stderr);
    const line = r.stderr.split('\n').find((l) => l.startsWith('EXECARGV '));
    assert.ok(line, `the CLI ran with the reporter: ${r.stderr}`);
    return JSON.parse(line.slice('EXECARGV '.length)) as { execArgv: string[]; newSpace: number };
  };

  it('passes every flag of bin/node-flags', () => {
    const flags = nodeFlags(root);
    assert.ok(flags.includes('--max-semi-space-size=2'), `bin/node-flags: ${flags.join(' ')}`);
    const got = run(`--import ${reporter}`);
    for (const f of flags) assert.ok(got.execArgv.includes(f), `${f} in ${got.execArgv.join(' ')}`);
  });

  it('leaves a flag NODE_OPTIONS already sets to the user', () => {
    const got = run(`--max-semi-space-size=8 --import ${reporter}`);
    assert.ok(!got.execArgv.some((a) => a.startsWith('--max-semi-space-size')), got.execArgv.join(' '));
  });
});
