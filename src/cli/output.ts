// Exit codes and what goes to stdout: a contract scripts depend on.
import { isCairnError } from '../errors.ts';
import { UsageError } from './args.ts';

export const EXIT = { ok: 0, error: 1, usage: 2, corruption: 3, notFound: 4, locked: 5 } as const;

/** A command stopped by a signal exits as shells report a process that signal ended: 128 + its number. */
export const signalExit = (sig: NodeJS.Signals) => 128 + (sig === 'SIGINT' ? 2 : 15);

export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage;
  if (isCairnError(e, 'Corruption')) return EXIT.corruption;
  if (isCairnError(e, 'NotFound')) return EXIT.notFound;
  if (isCairnError(e, 'InvalidArgument')) return EXIT.usage;
  // Under retention is "not now" too: the same answer as a lock held by another writer.
  if (isCairnError(e, 'Locked') || isCairnError(e, 'Retained')) return EXIT.locked;
  return EXIT.error;
}

/** The error code metrics and JSON errors report: the CairnError's code, "Usage", or "Error". */
export function errorCodeOf(e: unknown): string {
  if (e instanceof UsageError) return 'Usage';
  return isCairnError(e) ? e.code : 'Error';
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

/**
 * Prints a command's result: the JSON document with --json, else the text (which --quiet
 * drops when the command succeeded). With `deferJson` the document is handed over instead, to be
 * printed once the command has closed its store (with the requests it sent: withRequests).
 */
export function printResult(o: { json: boolean; quiet: boolean; deferJson?: (value: unknown) => void }, value: unknown, text: string, code: number = EXIT.ok): void {
  if (o.json && o.deferJson) o.deferJson(value);
  else if (o.json) process.stdout.write(toJson(value) + '\n');
  else if (!(o.quiet && code === EXIT.ok) && text !== '') process.stdout.write(text + (text.endsWith('\n') ? '' : '\n'));
}

/**
 * The --json document with the requests the command sent to an object store, by verb. An object
 * gets a `requests` key; an array (list, verify) stays as it is on stdout, a contract scripts
 * parse, and the counts go to stderr as one JSON line `{"requests":{...}}`.
 */
export function printJsonWithRequests(value: unknown, requests: Record<string, number> | undefined): void {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  process.stdout.write(toJson(requests && isObject ? { ...value, requests } : value) + '\n');
  if (requests && !isObject) process.stderr.write(JSON.stringify({ requests }) + '\n');
}
