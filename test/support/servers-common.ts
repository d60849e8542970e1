// Shared rules for integration tests that need a server: in CI a missing server is a failure,
// elsewhere the test is skipped with the reason printed.
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Returns undefined when the test may run, or a skip reason. Throws in CI, where no
 * integration test may skip.
 */
export function requireOrSkip(available: boolean, what: string): string | undefined {
  if (available) return undefined;
  const msg = `${what} is not available`;
  if (inCI) throw new Error(`${msg} (CI=true: integration tests may not skip)`);
  return msg;
}
