// Entry point of the installed CLI. Turns on Node's on-disk compile cache before anything else
// is loaded: the AWS and GCS SDKs are large, and a cached compile takes ~30 ms off every command.
// Commands that download (restore, verify) get the GC setting of src/gc-tuning.ts, set before
// the heap grows.
import { enableCompileCache } from 'node:module';
import { tuneGcForStreaming } from '../gc-tuning.ts';

const command = process.argv[2];
if (command === 'restore' || command === 'verify') tuneGcForStreaming();
enableCompileCache?.();
const { run } = await import('./main.ts');
await run();
