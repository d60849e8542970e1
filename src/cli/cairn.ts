// Entry point of the installed CLI. Turns on Node's on-disk compile cache before anything else
// is loaded: the AWS and GCS SDKs are large, and a cached compile takes ~30 ms off every command.
// Commands that download (restore, verify --checksum) pace young-generation collections by the
// bytes they download; the others start full collections sooner; any command that parses over a
// GiB of manifests turns on V8's optimize-for-size mode (src/gc-tuning.ts).
import { enableCompileCache } from 'node:module';
import { allowSizeModeForLargeCatalogs, limitOldGenerationGrowth, paceGcByBytes } from '../gc-tuning.ts';
import { registerBuiltinProviders } from '../../providers/builtin.ts';

const command = process.argv[2];
if (command === 'restore' || (command === 'verify' && process.argv.includes('--checksum'))) paceGcByBytes();
else limitOldGenerationGrowth();
allowSizeModeForLargeCatalogs();
enableCompileCache?.();
registerBuiltinProviders();
const { run } = await import('./main.ts');
await run();
