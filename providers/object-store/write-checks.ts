// The checks every write makes of its own bytes (declared size, expected CRC32C) and of what the
// store says it kept afterwards. Object stores and the local disk refuse the same things with the
// same errors, before anything is published.
import { corruption, invalidArgument } from '../../src/errors.ts';
import { Crc32c } from '../../src/crc32c.ts';
import type { WriteOptions } from '../../src/env.ts';

/** Hashes and counts a write's bytes as they pass; a source that delivers more than declared fails at once. */
export class WriteTally {
  private readonly crc = new Crc32c();
  private readonly name: string;
  private readonly declared: number | undefined;
  private readonly expected: number | undefined;

  constructor(name: string, opts: Pick<WriteOptions, 'size' | 'expectedCrc32c'>) {
    if (opts.size !== undefined && !(Number.isSafeInteger(opts.size) && opts.size >= 0)) throw invalidArgument(`invalid size ${opts.size} for ${name}`, { file: name });
    this.name = name;
    this.declared = opts.size;
    this.expected = opts.expectedCrc32c === undefined ? undefined : opts.expectedCrc32c >>> 0;
  }

  get size(): number {
    return this.crc.length;
  }

  get crc32c(): number {
    return this.crc.value;
  }

  add(chunk: Uint8Array): void {
    this.crc.update(chunk);
    if (this.declared !== undefined && this.crc.length > this.declared) {
      throw corruption(`${this.name}: the source delivered more than the declared ${this.declared} bytes; nothing was written`, { file: this.name });
    }
  }

  /** Once the source is exhausted, before publishing: the size and CRC32C must be the ones announced. */
  checkEnd(): void {
    if (this.declared !== undefined && this.crc.length !== this.declared) {
      throw corruption(`${this.name}: the source delivered ${this.crc.length} bytes, ${this.declared} were declared; nothing was written`, { file: this.name });
    }
    if (this.expected !== undefined && this.crc.value !== this.expected) {
      throw corruption(`${this.name}: the data has crc32c ${this.crc.value} but ${this.expected} was expected; nothing was written`, { file: this.name });
    }
  }
}

export interface Sent {
  size: number;
  crc32c: number;
}

/** What the store reports it kept, after a write. */
export interface Stored {
  size?: number;
  crc32c?: number;
}

/**
 * After the write: the store's size and full-object CRC32C must be what cairn sent. `consequence`
 * says what became of the object ("do not trust this object", "generation 5 deleted").
 */
export function checkStored(where: string, name: string, sent: Sent, stored: Stored, consequence: string): void {
  if (stored.crc32c === sent.crc32c && (stored.size === undefined || stored.size === sent.size)) return;
  throw corruption(
    `${where} was written but the store reports crc32c ${stored.crc32c} and ${stored.size} bytes, while cairn sent crc32c ${sent.crc32c} and ${sent.size} bytes: ${consequence}`,
    { file: name },
  );
}
