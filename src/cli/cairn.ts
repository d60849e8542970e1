// Entry point of the installed CLI. Turns on Node's on-disk compile cache before anything else
// is loaded: the AWS and GCS SDKs are large, and a cached compile takes ~30 ms off every command.
// Commands that download (restore, verify --checksum) get the GC setting of src/gc-tuning.ts,
// set before the heap grows (elsewhere it only costs: ~20 ms more for verify --server-checksum).
import { enableCompileCache } from 'node:module';
import { tuneGcForStreaming } from '../gc-tuning.ts';
import { registerBuiltinProviders } from '../../providers/builtin.ts';

const command = process.argv[2];
if (command === 'restore' || (command === 'verify' && process.argv.includes('--checksum'))) tuneGcForStreaming();
enableCompileCache?.();
registerBuiltinProviders();
const { run } = await import('./main.ts');
await run();
