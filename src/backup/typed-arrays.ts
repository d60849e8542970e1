// Growing the typed arrays the catalog keeps its records in.

type Grown = Float64Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

/** A copy of `a` of length `n` (>= a.length), of the same type, zero beyond a's end. */
export function widened<T extends Grown>(a: T, n: number): T {
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(a);
  return b;
}
