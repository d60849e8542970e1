// Where a backup directory lives in a bucket (s3://bucket/prefix, gs://bucket/prefix), and how
// the engine's names map to object keys and back. Both object-store providers use this one
// parser, so the same URL means the same place, and errors print keys the same way.
import { invalidArgument } from '../../src/errors.ts';
import { assertSafeName, isSafeRelativeName } from '../../src/names.ts';

export class BucketLocation {
  readonly scheme: string;
  readonly bucket: string;
  /** '' or the key prefix with a trailing '/'. */
  readonly prefix: string;
  /** The location as a URL without a trailing slash: s3://bucket or s3://bucket/a/b. */
  readonly url: string;

  private constructor(scheme: string, bucket: string, prefix: string) {
    this.scheme = scheme;
    this.bucket = bucket;
    this.prefix = prefix === '' ? '' : `${prefix}/`;
    this.url = prefix === '' ? `${scheme}://${bucket}` : `${scheme}://${bucket}/${prefix}`;
  }

  /**
   * Parses `scheme://bucket[/prefix]`. The prefix is decoded, stripped of leading and trailing
   * slashes, and must be a safe relative name (no '..', no empty segment).
   */
  static parse(url: URL | string, scheme: string, validBucket: (bucket: string) => boolean = (b) => b !== ''): BucketLocation {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      throw invalidArgument(`not a URL: ${JSON.stringify(url)}`);
    }
    if (u.protocol !== `${scheme}:`) throw invalidArgument(`not a ${scheme}:// URL: ${u.href}`);
    if (!validBucket(u.hostname)) throw invalidArgument(`no valid bucket name in ${u.href} (expected ${scheme}://bucket/prefix)`);
    if (u.search || u.hash) throw invalidArgument(`unexpected query or fragment in ${u.href}`);
    let prefix: string;
    try {
      prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
    } catch {
      throw invalidArgument(`invalid prefix in ${u.href}`);
    }
    if (prefix !== '' && !isSafeRelativeName(prefix)) throw invalidArgument(`invalid prefix in ${u.href}`);
    return new BucketLocation(scheme, u.hostname, prefix);
  }

  /** The object key of a backup name (refusing names that would leave the prefix). */
  key(name: string): string {
    assertSafeName(name);
    return this.prefix + name;
  }

  /** The key prefix a list(prefix) asks for. */
  listKey(prefix: string): string {
    if (prefix.includes('\0') || prefix.startsWith('/')) throw invalidArgument(`bad list prefix ${JSON.stringify(prefix)}`);
    return this.prefix + prefix;
  }

  /**
   * The backup name of a listed key, or undefined for keys cairn could never have written
   * (outside the prefix, folder placeholders "x/", "a//b").
   */
  nameOf(key: string): string | undefined {
    const name = this.relativeName(key);
    return name !== undefined && isSafeRelativeName(name) ? name : undefined;
  }

  /** `key` with the prefix cut off, not yet checked as a name; undefined outside the prefix. */
  relativeName(key: string): string | undefined {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : undefined;
  }

  /** A key as a URL for messages; without a key, the bucket. */
  where(key?: string): string {
    return key === undefined ? `${this.scheme}://${this.bucket}` : `${this.scheme}://${this.bucket}/${key}`;
  }
}
