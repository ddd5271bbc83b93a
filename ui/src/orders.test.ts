import { describe, expect, it } from "vitest";
import { staleSeconds } from "./orders";

const view = (source: string, degraded: boolean, age: number) => ({ freshness: { source, degraded, age_seconds: age } });

describe("order data age", () => {
  it("is current after a good answer", () => {
    expect(staleSeconds({ data: [view("live", false, 0)], fetchedAt: 1000, degraded: false, error: null }, 5000)).toBeNull();
    expect(staleSeconds(undefined, 0)).toBeNull();
  });

  it("shows the server's last known copy with its age when the order system is down", () => {
    const state = { data: [view("cache", false, 3), view("stale_cache", true, 420)], fetchedAt: 1000, degraded: true, error: null };
    expect(staleSeconds(state, 2000)).toBe(420);
  });

  it("keeps what it had when our own reload fails, and counts from when it was fetched", () => {
    const state = { data: [view("live", false, 0)], fetchedAt: 10_000, degraded: false, error: "network error" };
    expect(staleSeconds(state, 70_000)).toBe(60);
  });

  it("has nothing to age when nothing was ever loaded", () => {
    expect(staleSeconds({ data: null, fetchedAt: 0, degraded: false, error: "down" }, 1)).toBeNull();
  });
});
