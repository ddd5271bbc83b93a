import { describe, expect, it } from "vitest";
import { Drafts, fillTemplate, matchCanned } from "./composer";
import { codeLabel, detectLocale, formatAge, MESSAGES, translate } from "./i18n";
import { reconnectDelay } from "./realtime";
import { Api, ApiError, query } from "./api";

const canned = [
  { shortcut: "ship", title: "发货时间", body: "48 小时内发货", locale: "zh" },
  { shortcut: "ship", title: "Shipping", body: "Ships within 48 hours", locale: "en" },
  { shortcut: "refund", title: "Refund", body: "Refunds take 3 days", locale: "en" },
];

describe("canned responses", () => {
  it("match a /prefix typed at the start, the agent's language first", () => {
    expect(matchCanned("/sh", canned, "en").map((c) => c.body)).toEqual(["Ships within 48 hours", "48 小时内发货"]);
    expect(matchCanned("/", canned).length).toBe(3);
    expect(matchCanned("hello /sh", canned)).toEqual([]);
    expect(matchCanned("/sh more words", canned)).toEqual([]);
  });

  it("fill known placeholders and leave unknown ones visible", () => {
    expect(fillTemplate("Hi {{customer.name}}, {{ order.id }}", { "customer.name": "Li" })).toBe("Hi Li, {{ order.id }}");
  });
});

describe("drafts", () => {
  it("are kept per user and conversation and removed when emptied", () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k) };
    const drafts = new Drafts(storage);
    drafts.set("usr_1", "conv_a", "half a reply");
    expect(drafts.get("usr_1", "conv_a")).toBe("half a reply");
    expect(drafts.get("usr_2", "conv_a")).toBe("");
    drafts.set("usr_1", "conv_a", "");
    expect(store.size).toBe(0);
  });
});

describe("i18n", () => {
  it("has the same keys in both languages, and Chinese texts that differ from English", () => {
    const en = Object.keys(MESSAGES.en).sort();
    expect(Object.keys(MESSAGES.zh).sort()).toEqual(en);
    const same = en.filter((k) => MESSAGES.zh[k as keyof typeof MESSAGES.zh] === MESSAGES.en[k as keyof typeof MESSAGES.en]);
    expect(same.filter((k) => !["channel.webhook"].includes(k))).toEqual([]);
  });

  it("follows the browser unless the user chose", () => {
    expect(detectLocale(["zh-TW", "en"], null)).toBe("zh");
    expect(detectLocale(["fr-FR", "en-GB"], null)).toBe("en");
    expect(detectLocale(["zh-CN"], "en")).toBe("en");
    expect(detectLocale([], null)).toBe("en");
  });

  it("names the order system's codes in the agent's language, and shows a code it does not know as it is", () => {
    const zh = (k: string) => translate("zh", k);
    const en = (k: string) => translate("en", k);
    // Every order status kefu.commerce.schemas.OrderStatus allows, every shipment status and refund status.
    const codes: [string, string[]][] = [
      ["order.st", ["unpaid", "paid", "pre_sale", "shipped", "delivered", "completed", "cancelled", "partially_refunded", "refunded", "returned"]],
      ["order.ship", ["pending", "in_transit", "delivered", "exception", "returned"]],
      ["order.pay", ["pending", "paid", "refunded", "partially_refunded", "failed"]],
      ["order.ret", ["return", "exchange", "requested", "approved", "received", "completed", "rejected", "cancelled"]],
      ["order.refund", ["pending", "succeeded", "failed"]],
    ];
    for (const [prefix, list] of codes) {
      for (const code of list) {
        expect(codeLabel(zh, prefix, code)).not.toBe(code);
        expect(codeLabel(en, prefix, code)).not.toBe(code);
      }
    }
    expect(codeLabel(zh, "order.st", "shipped")).toBe("已发货");
    expect(codeLabel(zh, "order.market", "demo_shop")).toBe("演示商城");
    expect(codeLabel(en, "order.market", "my_erp")).toBe("my_erp");  // a REST connector's own label
    expect(codeLabel(en, "order.st", "partially_refunded")).toBe("Partly refunded");
    expect(codeLabel(zh, "order.st", "on_hold")).toBe("on_hold");
    expect(codeLabel(zh, "order.method", null)).toBe("");
  });

  it("fills placeholders and formats ages", () => {
    expect(translate("zh", "inbox.unread", { n: 3 })).toBe("3 条未读");
    expect(formatAge("en", 125)).toBe("2 min");
    expect(formatAge("zh", 7200)).toBe("2 小时");
  });
});

describe("network", () => {
  it("backs off between reconnects up to 10 s", () => {
    const mid = () => 0.5;
    expect(reconnectDelay(0, mid)).toBe(500);
    expect(reconnectDelay(3, mid)).toBe(4000);
    expect(reconnectDelay(20, mid)).toBe(10000);
  });

  it("turns error bodies into ApiError, retries GETs after a network drop, and reports expired sessions", async () => {
    let calls = 0;
    let expired = 0;
    const fetchImpl = (async (url: string) => {
      calls += 1;
      if (url.endsWith("/flaky") && calls === 1) throw new TypeError("Failed to fetch");
      if (url.endsWith("/flaky")) return new Response(JSON.stringify({ ok: 1 }), { status: 200 });
      return new Response(JSON.stringify({ error: { code: "invalid_token", message: "expired" } }), { status: 401 });
    }) as unknown as typeof fetch;
    const api = new Api({ base: "", token: () => "t", locale: () => "en", onUnauthenticated: () => { expired += 1; }, fetchImpl });
    expect(await api.get("/flaky")).toEqual({ ok: 1 });
    const err = (await api.get("/secret").catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe("invalid_token");
    expect(expired).toBe(1);
  });

  it("builds query strings from defined values only", () => {
    expect(query({ a: 1, b: null, c: "", d: "x y" })).toBe("?a=1&d=x%20y");
  });
});
