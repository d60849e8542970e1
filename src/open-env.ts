// Turns a --backup-dir location into a BackupEnv through a registry of providers by URL scheme
// (a plain path counts as file://). Nothing under src/ knows a provider: the composition roots
// (the package entry src/index.ts, the CLI entry src/cli/cairn.ts) register the built-in ones
// (providers/builtin.ts), and a library user may register more. A provider's module is loaded
// only when its scheme is first used, so the cloud SDKs cost nothing to a local backup.
import type { BackupEnv } from './env.ts';
import { invalidArgument } from './errors.ts';

/** What every provider is told, whatever its kind. */
export interface OpenEnvOptions {
  /**
   * Bytes of transfer buffers all files in flight share (object-store upload parts); the
   * provider's default when unset. Providers that buffer nothing ignore it.
   */
  memoryBudget?: number;
}

/** Opens the env at `location` (the full string, scheme included). */
export type OpenEnv = (location: string, opts?: OpenEnvOptions) => Promise<BackupEnv>;
/** Loads a provider's module when its scheme is first used. */
export type LoadProvider = () => Promise<OpenEnv>;

const providers = new Map<string, { load: LoadProvider; open?: Promise<OpenEnv> }>();

/** Registers (or replaces) the provider of `scheme` (lower case, without ':'). */
export function registerProvider(scheme: string, load: LoadProvider): void {
  providers.set(scheme.toLowerCase(), { load });
}

export function registeredSchemes(): string[] {
  return [...providers.keys()].sort();
}

/** The scheme of a location: `s3` for s3://b/p, `file` for a plain path. */
export function schemeOf(location: string): string {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase() ?? 'file';
}

export async function openBackupEnv(location: string, opts: OpenEnvOptions = {}): Promise<BackupEnv> {
  if (!location) throw invalidArgument('no backup directory given (--backup-dir or CAIRN_BACKUP_DIR)');
  const p = providers.get(schemeOf(location));
  if (p === undefined) {
    const known = registeredSchemes().map((s) => (s === 'file' ? 'a path, file://' : `${s}://`));
    throw invalidArgument(`unsupported backup location ${JSON.stringify(location)}${known.length > 0 ? `: use ${known.join(', ')}` : ': no storage provider is registered'}`);
  }
  p.open ??= p.load();
  try {
    return await (await p.open)(location, opts);
  } catch (e) {
    if (!(await p.open.then(() => true, () => false))) p.open = undefined; // a failed load is retried next time
    throw e;
  }
}
