/** How old the order data on screen is, when it is not fresh (pure, so it is tested on its own). */

export interface Freshness {
  source: string;
  degraded: boolean;
  age_seconds: number;
}

export interface OrdersSnapshot {
  data: { freshness: Freshness }[] | null;
  fetchedAt: number;
  degraded: boolean;
  error: string | null;
}

/**
 * Seconds the shown orders are behind, or null when they are current. Two ways to be behind: our last reload
 * failed (we still show what we had), or the server answered from its last known copy because the order
 * system is slow or down (it says so per order, with the copy's age).
 */
export function staleSeconds(state: OrdersSnapshot | undefined, now: number): number | null {
  if (!state || !state.data) return null;
  const serverAges = state.data.filter((v) => v.freshness.degraded || v.freshness.source === "stale_cache")
    .map((v) => v.freshness.age_seconds);
  const serverAge = serverAges.length ? Math.max(...serverAges) : null;
  const ownAge = state.error ? Math.max(0, (now - state.fetchedAt) / 1000) : null;
  if (serverAge === null && ownAge === null) return state.degraded ? 0 : null;
  return Math.max(serverAge ?? 0, ownAge ?? 0);
}
