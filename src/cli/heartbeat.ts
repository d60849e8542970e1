// CAIRN_HEARTBEAT_URL: a dead man's switch (healthchecks.io, Uptime Kuma push monitors, Cronitor…)
// is pinged after each successful run, so a run that silently never happened raises an alarm.
// The ping is best effort: the backup is made whether or not the monitor hears of it.
import { envValue } from '../env-var.ts';

const TIMEOUT_MS = 10_000;

/** GETs the heartbeat URL if one is set; returns a warning to print instead of throwing. */
export async function sendHeartbeat(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const url = envValue(env, 'CAIRN_HEARTBEAT_URL');
  if (url === undefined) return undefined;
  let shown = url;
  try {
    const u = new URL(url);
    // Check UUIDs and tokens are often in the path; never print credentials from the authority.
    u.username = u.password = '';
    shown = u.origin + u.pathname.replace(/[^/]{16,}/g, '…');
    const res = await fetch(url, { method: 'GET', signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.body?.cancel();
    if (!res.ok) return `heartbeat ${shown} answered ${res.status} ${res.statusText}`;
    return undefined;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    return `heartbeat ${shown} not reached: ${err.cause?.code ?? err.cause?.message ?? err.message}`;
  }
}
