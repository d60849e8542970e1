// Reading provider options from the environment (or .env), as rclone's RCLONE_* variables do: the
// --backup-dir URL names a place, not how to write there. Every value is checked here, and a bad
// one is refused naming its variable.
import { invalidArgument } from '../../src/errors.ts';
import { envValue } from '../../src/env-var.ts';

export type Env = NodeJS.ProcessEnv;

/** A byte count: digits, optionally followed by KiB, MiB or GiB. */
export function parseByteSize(v: string, what: string): number {
  const m = /^\s*([0-9]+)\s*(KiB|MiB|GiB)?\s*$/i.exec(v);
  if (!m) throw invalidArgument(`${what}=${JSON.stringify(v)}: expected a byte count such as 16777216 or 16MiB`);
  const unit = { kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

export function envByteSize(env: Env, name: string): number | undefined {
  const v = envValue(env, name);
  return v === undefined ? undefined : parseByteSize(v, name);
}

export function envPositiveInt(env: Env, name: string): number | undefined {
  const v = envValue(env, name);
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(v)) throw invalidArgument(`${name}=${JSON.stringify(v)}: expected a positive whole number`);
  return Number(v);
}

export function envBool(env: Env, name: string): boolean | undefined {
  const v = envValue(env, name);
  if (v === undefined) return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw invalidArgument(`${name} must be true or false, not "${v}"`);
}

/** A storage class name (upper case and '_'); `example` goes into the error message. */
export function envStorageClass(env: Env, name: string, example: string): string | undefined {
  const v = envValue(env, name);
  if (v !== undefined && !/^[A-Z_]+$/.test(v)) throw invalidArgument(`${name}=${JSON.stringify(v)}: expected a storage class such as ${example}`);
  return v;
}

/** The first of `names` that is set. */
export function envFirst(env: Env, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = envValue(env, n);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** An endpoint on this machine: the data cannot be altered on the way there. */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return host === 'localhost' || host === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

/** Reads one variable: undefined when it is not set, an InvalidArgument naming it when it is bad. */
export type EnvReader<T> = (env: Env, name: string) => T | undefined;

export const envString: EnvReader<string> = (env, name) => envValue(env, name);

/** For each option, the variable that sets it and how its value is read. */
export type EnvSpec<O> = { [K in keyof O]?: readonly [variable: string, read: EnvReader<O[K]>] };

/** The options whose variables are set (unset and blank ones are left out). */
export function optionsFromEnv<O extends object>(env: Env, spec: EnvSpec<O>): O {
  const o: Partial<O> = {};
  for (const k of Object.keys(spec) as (keyof O)[]) {
    const [variable, read] = spec[k]!;
    const v = read(env, variable);
    if (v !== undefined) o[k] = v;
  }
  return o as O;
}
