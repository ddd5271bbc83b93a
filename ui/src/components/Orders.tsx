import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api";
import { newClientId } from "../composer";
import { codeLabel, formatAge, type Key } from "../i18n";
import { useT } from "../locale";
import { staleSeconds } from "../orders";
import { useStore } from "../store";
import type { OrderView, Workspace } from "../workspace";

type Localised = { code: string; zh: string; en: string };
type Action = "return" | "exchange" | "refund" | "price" | "cancel" | "address";

const money = (amount: string | number | null | undefined, currency: string) =>
  amount === null || amount === undefined ? "—" : `${currency === "CNY" ? "¥" : `${currency} `}${amount}`;

/** The customer's orders from every marketplace, with one-click commerce actions behind a confirmation. */
export function Orders({ ws, contactId }: { ws: Workspace; contactId: string; conversationId: string }) {
  const { t, locale } = useT();
  const extra = useStore(ws.extra);
  const state = extra.orders[contactId];
  const [, tick] = useState(0);
  useEffect(() => {
    void ws.loadOrders(contactId);
    const timer = setInterval(() => tick((n) => n + 1), 15_000); // keeps the "data from … ago" age current
    return () => clearInterval(timer);
  }, [contactId]);

  let body;
  if (!state || (state.loading && !state.data)) body = <p class="muted">{t("common.loading")}</p>;
  else if (state.unavailable) body = <p class="muted">{t("contact.orders_unavailable")}</p>;
  else if (!state.data) body = <p class="banner error" role="alert">{t("order.loading_failed", { message: state.error ?? "" })}</p>;
  else if (!state.data.length) body = <p class="muted">{t("contact.no_orders")}</p>;
  else body = state.data.map((view) => <OrderCard key={view.id} ws={ws} view={view} contactId={contactId} />);

  const staleAge = staleSeconds(state, Date.now());
  return (
    <section class="orders" data-testid="orders" aria-busy={state?.loading ?? true}>
      <h3>{t("contact.orders")}{" "}
        <button type="button" class="link" aria-label="↻" title="↻" onClick={() => void ws.loadOrders(contactId)}>↻</button>
      </h3>
      {staleAge !== null && (
        <p class="stale" role="status" data-testid="orders-stale">{t("contact.stale", { age: formatAge(locale, staleAge) })}</p>
      )}
      {body}
    </section>
  );
}

function OrderCard({ ws, view, contactId }: { ws: Workspace; view: OrderView; contactId: string }) {
  const { t, locale } = useT();
  const o = view.order;
  const [open, setOpen] = useState(false);
  const [detail, setDetail] = useState<Record<string, any> | null>(null);
  const [action, setAction] = useState<Action | null>(null);
  const [error, setError] = useState<string | null>(null);
  const tr = (r: Localised) => (locale === "zh" ? r.zh : r.en);

  const toggle = async () => {
    const next = !open;
    setOpen(next);
    if (next) {
      try {
        setDetail(await ws.orderDetail(view.id));
        setError(null);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
    }
  };

  return (
    <article class="order" data-testid="order" data-order-id={o.order_id} aria-label={`${o.marketplace} ${o.order_id}`}>
      <div class="order-head">
        <span>{o.order_id} <small class="muted" data-testid="order-market">{codeLabel(t, "order.market", o.marketplace)}</small></span>
        <span class="muted" data-testid="order-status">{codeLabel(t, "order.st", o.status)}</span>
      </div>
      <div>{t("order.total", { amount: money(o.total_paid, o.currency) })}
        {Number(o.refunded_total) > 0 && <> · {t("order.refunded", { amount: money(o.refunded_total, o.currency) })}</>}</div>
      <ul aria-label={t("order.items")}>
        {(o.items ?? []).map((i: any) => <li key={i.line_id}>{i.title} {t("order.qty", { n: i.quantity })} · {money(i.paid, o.currency)}</li>)}
      </ul>
      <button type="button" class="link" aria-expanded={open} data-testid="order-details" onClick={() => void toggle()}>
        {open ? t("order.hide") : t("order.details")}
      </button>
      {open && (
        <div class="order-body">
          {error && <p class="banner error" role="alert">{t("order.loading_failed", { message: error })}</p>}
          {detail && detail.risk?.length > 0 && (
            <div data-testid="risk"><h4>{t("order.risk")}</h4>
              <ul>{detail.risk.map((r: any) => <li key={r.code} class={r.severity === "info" ? "" : "risk"}>⚠ {tr(r.reason)}</li>)}</ul>
            </div>
          )}
          {detail && detail.stuck?.map((s: any) => (
            <p key={s.tracking_number} class="risk">{t("order.stuck", { node: s.node, hours: Math.round(s.hours) })}</p>
          ))}
          {(o.payments ?? []).length > 0 && <><h4>{t("order.payment")}</h4>
            <ul>{o.payments.map((p: any, n: number) => <li key={n}>{codeLabel(t, "order.method", p.method)} · {money(p.amount, o.currency)} · {codeLabel(t, "order.pay", p.status)}</li>)}</ul></>}
          {(o.promotions ?? []).length > 0 && <><h4>{t("order.promotions")}</h4>
            <ul>{o.promotions.map((p: any, n: number) => <li key={n}>{p.title} −{money(p.amount, o.currency)}</li>)}</ul></>}
          {(o.shipments ?? []).length > 0 && <><h4>{t("order.shipments")}</h4>
            {o.shipments.map((s: any) => (
              <div key={s.tracking_number}>
                <div>{s.carrier} {s.tracking_number} · {codeLabel(t, "order.ship", s.status)}</div>
                <ol class="tracking">{(s.events ?? []).map((e: any, n: number) => (
                  <li key={n}><time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time> {e.node} {e.description}</li>))}</ol>
              </div>
            ))}</>}
          {((o.returns ?? []).length > 0 || (o.refunds ?? []).length > 0) && <><h4>{t("order.returns")}</h4>
            <ul>
              {(o.returns ?? []).map((r: any) => <li key={r.return_id}>{codeLabel(t, "order.ret", r.kind)} {r.return_id} · {codeLabel(t, "order.ret", r.status)}</li>)}
              {(o.refunds ?? []).map((r: any) => <li key={r.refund_id}>{r.refund_id} · {money(r.amount, o.currency)} · {codeLabel(t, "order.refund", r.status)}</li>)}
            </ul></>}
          {o.shipping_address && <><h4>{t("order.address")}</h4>
            <p>{[o.shipping_address.name, o.shipping_address.phone, o.shipping_address.province, o.shipping_address.city,
              o.shipping_address.district, o.shipping_address.line1].filter(Boolean).join(" ")}</p></>}
          {detail && <p>{t("order.refundable", { amount: money(detail.refundable, o.currency) })}</p>}
          {detail && (
            <div class="order-actions" role="group" aria-label={t("order.actions")}>
              {(["return", "exchange", "refund", "price", "cancel", "address"] as Action[]).map((a) => (
                <button type="button" key={a} data-testid={`action-${a}`} aria-pressed={action === a}
                  onClick={() => setAction(action === a ? null : a)}>{t(actionLabel(a))}</button>
              ))}
            </div>
          )}
          {detail && action && (
            <ActionForm key={action} ws={ws} view={view} detail={detail} action={action} contactId={contactId}
              onDone={async () => { setAction(null); setDetail(await ws.orderDetail(view.id).catch(() => detail)); }} />
          )}
        </div>
      )}
    </article>
  );
}

function actionLabel(a: Action): Key {
  return ({ return: "order.act.return", exchange: "order.act.exchange", refund: "order.act.refund",
    price: "order.act.price_claim", cancel: "order.act.cancel", address: "order.act.address" } as const)[a];
}

function ActionForm({ ws, view, detail, action, contactId, onDone }: {
  ws: Workspace; view: OrderView; detail: Record<string, any>; action: Action; contactId: string; onDone: () => void;
}) {
  const { t, locale } = useT();
  const o = view.order;
  const eligibility: any[] = detail.returns ?? [];
  const lines: any[] = o.items ?? [];
  const returnable = eligibility.filter((e) => e.eligible);
  const firstLine = (action === "return" || action === "exchange" ? returnable[0]?.line_id : lines[0]?.line_id) ?? "";
  const [line, setLine] = useState<string>(firstLine);
  const [qty, setQty] = useState(1);
  const [reason, setReason] = useState<"no_reason" | "defect">("no_reason");
  const [quote, setQuote] = useState<Record<string, any> | null>(null);
  const [address, setAddress] = useState<Record<string, string>>({ ...(o.shipping_address ?? {}) });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [key] = useState(() => newClientId()); // one intent, one idempotency key, however often it is retried
  const tr = (r: Localised) => (locale === "zh" ? r.zh : r.en);
  const label = t(actionLabel(action));

  useEffect(() => {
    setQuote(null);
    if (!line) return;
    if (action === "refund") {
      ws.orderQuote(view.id, "refund-quotes", { lines: [{ line_id: line, quantity: qty }], reason })
        .then(setQuote).catch((e) => setError(e instanceof Error ? e.message : String(e)));
    } else if (action === "price") {
      ws.orderQuote(view.id, "price-protection-quotes", { line_id: line })
        .then(setQuote).catch((e) => setError(e instanceof Error ? e.message : String(e)));
    }
  }, [action, line, qty, reason]);

  const confirm = async () => {
    setBusy(true);
    setError(null);
    const one = [{ line_id: line, quantity: qty }];
    const request: Record<Action, [string, unknown]> = {
      return: ["returns", { kind: "return", reason, lines: one }],
      exchange: ["returns", { kind: "exchange", reason, lines: one }],
      refund: ["refunds", { lines: one, reason }],
      price: ["price-protection-claims", { line_id: line }],
      cancel: ["cancel", { reason: "customer_request" }],
      address: ["change-address", { address }],
    };
    try {
      const [path, body] = request[action];
      const result = await ws.orderAction(view, path, body, key);
      if (result.status === "failed") throw new Error(result.error_code ?? "failed");
      ws.notify("info", t("order.action_done", { action: label }));
      await ws.loadOrders(contactId);
      onDone();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e));
      if (e instanceof ApiError && e.code === "version_conflict") void ws.loadOrders(contactId);
    } finally {
      setBusy(false);
    }
  };

  const eligibilityOf = (lineId: string) => eligibility.find((e) => e.line_id === lineId);
  const needsLine = action !== "cancel" && action !== "address";
  const lineChoices = action === "return" || action === "exchange" ? lines : lines;
  const chosen = eligibilityOf(line);
  const blocked = (action === "return" || action === "exchange") && (!chosen || !chosen.eligible);
  return (
    <form class="confirm" data-testid="action-form" onSubmit={(e) => { e.preventDefault(); void confirm(); }}
      aria-label={label}>
      {needsLine && (
        <label>{t("order.line")}{" "}
          <select value={line} data-testid="action-line" onChange={(e) => setLine((e.target as HTMLSelectElement).value)}>
            {lineChoices.map((i: any) => {
              const el = eligibilityOf(i.line_id);
              const mark = action === "return" || action === "exchange" ? (el?.eligible ? " ✓" : " ✗") : "";
              return <option key={i.line_id} value={i.line_id}>{i.title}{mark}</option>;
            })}
          </select>
        </label>
      )}
      {(action === "return" || action === "exchange") && chosen && (
        <p class={chosen.eligible ? "" : "risk"} data-testid="eligibility">
          {chosen.eligible ? t("order.eligible") : t("order.not_eligible")}
          {chosen.deadline && <> · {t("order.deadline", { date: new Date(chosen.deadline).toLocaleDateString() })}</>}
          {(chosen.reasons ?? []).map((r: Localised) => <span key={r.code}> · {tr(r)}</span>)}
        </p>
      )}
      {(action === "return" || action === "exchange" || action === "refund") && (
        <>
          <label>{t("order.quantity")}{" "}
            <input type="number" min={1} max={chosen?.returnable_quantity || lines.find((i: any) => i.line_id === line)?.quantity || 1}
              value={qty} onInput={(e) => setQty(Math.max(1, Number((e.target as HTMLInputElement).value) || 1))} />
          </label>{" "}
          <label>{t("order.reason")}{" "}
            <select value={reason} onChange={(e) => setReason((e.target as HTMLSelectElement).value as "no_reason" | "defect")}>
              <option value="no_reason">{t("order.reason.no_reason")}</option>
              <option value="defect">{t("order.reason.defect")}</option>
            </select>
          </label>
        </>
      )}
      {action === "refund" && quote && (
        <p data-testid="quote">{t("order.quote", { amount: money(quote.total, quote.currency), shipping: money(quote.shipping, quote.currency) })}</p>
      )}
      {action === "price" && quote && (
        <p data-testid="quote" class={quote.eligible ? "" : "risk"}>
          {quote.eligible ? t("order.eligible") : t("order.not_eligible")} · {t("order.pp_quote", {
            amount: money(quote.amount, o.currency), price: money(quote.current_price, o.currency) })}
          {(quote.reasons ?? []).map((r: Localised) => <span key={r.code}> · {tr(r)}</span>)}
        </p>
      )}
      {action === "address" && (
        <fieldset>
          <legend>{t("order.new_address")}</legend>
          {["name", "phone", "province", "city", "district", "line1"].map((f) => (
            <label key={f} class="field">{f}{" "}
              <input value={address[f] ?? ""} onInput={(e) => setAddress({ ...address, [f]: (e.target as HTMLInputElement).value })} />
            </label>
          ))}
        </fieldset>
      )}
      <p>{t("order.confirm_text", { action: label, order: o.order_id })}</p>
      {error && <p class="banner error" role="alert">{t("order.action_failed", { message: error })}</p>}
      <button type="submit" class="primary" data-testid="action-confirm"
        disabled={busy || blocked || (action === "price" && quote !== null && !quote.eligible)}>{t("order.confirm")}</button>{" "}
      <button type="button" onClick={onDone}>{t("order.cancel_dialog")}</button>
    </form>
  );
}
