// The providers cairn ships, registered by the composition roots (src/index.ts, src/cli/cairn.ts).
// Each module is imported only when its scheme is first opened.
import { fileURLToPath } from 'node:url';
import { registerProvider } from '../src/open-env.ts';

export function registerBuiltinProviders(): void {
  registerProvider('file', async () => {
    const { LocalEnv } = await import('./local/index.ts');
    return async (location) => new LocalEnv(/^file:\/\//i.test(location) ? fileURLToPath(location) : location);
  });
  registerProvider('s3', async () => {
    const { openS3Env } = await import('./s3/index.ts');
    return (location, opts) => openS3Env(location, opts?.memoryBudget === undefined ? {} : { memoryBudget: opts.memoryBudget });
  });
  registerProvider('gs', async () => {
    const { openGcsEnv } = await import('./gcs/index.ts');
    return (location, opts) => openGcsEnv(location, opts?.memoryBudget === undefined ? {} : { memoryBudget: opts.memoryBudget });
  });
}
