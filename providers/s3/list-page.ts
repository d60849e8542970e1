// A ListObjectsV2 answer read straight from its bytes: the names (keys with the env's prefix cut
// off), sizes and modification times, and where the listing goes on. The SDK parses each page
// into an object tree and then into its output shape, 1,000 objects a page, garbage at once; and
// each name it gives is a slice of its key, a string that keeps the key alive beside it. Here
// each name is one string of its own characters, cut from the bytes, and nothing else is made.
//
// Element search by bytes is sound in XML text: '<' never stands for itself in content (it is
// written &lt;), so "<Key>" can only be the tag, and the elements searched for at the top level
// (IsTruncated, NextContinuationToken) have no namesakes inside <Contents>.
import type { FileInfo } from '../../src/env.ts';

export interface ListPage {
  /** Listed objects under the env's prefix, named relative to it (not yet checked as names). */
  entries: FileInfo[];
  truncated: boolean;
  next: string | undefined;
}

const tag = (name: string) => ({ open: Buffer.from(`<${name}>`), close: Buffer.from(`</${name}>`) });
const ROOT = Buffer.from('<ListBucketResult');
const CONTENTS = tag('Contents');
const KEY = tag('Key');
const SIZE = tag('Size');
const MODIFIED = tag('LastModified');
const TRUNCATED = tag('IsTruncated');
const NEXT = tag('NextContinuationToken');
const AMP = 0x26;

/** The content of the first `t` element in b[from, to): [start, end), or undefined. */
function element(b: Buffer, t: { open: Buffer; close: Buffer }, from: number, to: number): [number, number] | undefined {
  const o = b.indexOf(t.open, from);
  if (o < 0 || o >= to) return undefined;
  const start = o + t.open.length;
  const end = b.indexOf(t.close, start);
  return end < 0 || end > to ? undefined : [start, end];
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML text with its entity and character references replaced; undefined if one is malformed. */
export function xmlText(s: string): string | undefined {
  if (!s.includes('&')) return s;
  let bad = false;
  const out = s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, ref: string | undefined) => {
    if (ref === undefined) {
      bad = true;
      return m;
    }
    if (ref.startsWith('#')) {
      const cp = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (!(cp >= 0 && cp <= 0x10ffff)) bad = true;
      return bad ? m : String.fromCodePoint(cp);
    }
    const e = ENTITIES[ref];
    if (e === undefined) bad = true;
    return e ?? m;
  });
  return bad ? undefined : out;
}

/** A string that holds its own characters (not a slice of a larger one). */
function ownString(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

function hasByte(b: Buffer, byte: number, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === byte) return true;
  return false;
}

function digits(b: Buffer, start: number, end: number): number | undefined {
  if (end <= start || end - start > 15) return undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Reads one page. `prefix`: the env's key prefix, cut off each key (keys outside it are left
 * out). Undefined when the body is not a ListObjectsV2 answer as S3 defines it.
 */
export function parseListPage(b: Buffer, prefix: Buffer): ListPage | undefined {
  const root = b.indexOf(ROOT);
  if (root < 0) return undefined;
  const entries: FileInfo[] = [];
  for (let at = root; ; ) {
    const c = element(b, CONTENTS, at, b.length);
    if (c === undefined) break;
    const [from, to] = c;
    at = to + CONTENTS.close.length;
    const k = element(b, KEY, from, to);
    const sz = element(b, SIZE, from, to);
    if (k === undefined || sz === undefined) return undefined;
    const size = digits(b, sz[0], sz[1]);
    if (size === undefined) return undefined;
    let name: string | undefined;
    if (!hasByte(b, AMP, k[0], k[1])) {
      const n = k[1] - k[0];
      if (n < prefix.length || b.compare(prefix, 0, prefix.length, k[0], k[0] + prefix.length) !== 0) continue;
      name = b.toString('utf8', k[0] + prefix.length, k[1]);
    } else {
      const key = xmlText(b.toString('utf8', k[0], k[1]));
      if (key === undefined) return undefined;
      const p = prefix.toString('utf8');
      if (!key.startsWith(p)) continue;
      name = ownString(key.slice(p.length));
    }
    const m = element(b, MODIFIED, from, to);
    const modified = m === undefined ? NaN : Date.parse(b.toString('latin1', m[0], m[1]));
    entries.push(Number.isNaN(modified) ? { name, size } : { name, size, modified });
  }
  const t = element(b, TRUNCATED, root, b.length);
  if (t === undefined) return undefined;
  const truncated = b.toString('latin1', t[0], t[1]) === 'true';
  const nx = element(b, NEXT, root, b.length);
  const next = nx === undefined ? '' : xmlText(b.toString('utf8', nx[0], nx[1]));
  if (next === undefined) return undefined;
  return { entries, truncated, next: next === '' ? undefined : next };
}
