import { useEffect, useState } from "preact/hooks";
import { useT } from "../locale";
import { contactLabel } from "../state";
import { useStore } from "../store";
import type { Workspace } from "../workspace";
import { channelLabel } from "./InboxList";

/** Incoming offers with a countdown; Alt+A accepts the oldest, Alt+X rejects it. */
export function Offers({ ws }: { ws: Workspace }) {
  const { t } = useT();
  const extra = useStore(ws.extra);
  const state = useStore(ws.store);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!extra.offers.length) return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [extra.offers.length]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const first = ws.extra.get().offers[0];
      if (!first || !e.altKey) return;
      if (e.key === "a") { void ws.answerOffer(first, true); e.preventDefault(); }
      if (e.key === "x") { void ws.answerOffer(first, false); e.preventDefault(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [ws]);
  if (!extra.offers.length) return null;
  return (
    <div class="offers" role="region" aria-label={t("offer.title")} aria-live="assertive">
      {extra.offers.map((o) => {
        const left = Math.max(0, Math.ceil((o.expires_at - now) / 1000));
        const conv = state.conversations[o.conversation_id];
        const contact = conv ? extra.contacts[conv.contact_id] : undefined;
        const queue = extra.queues.find((q) => q.id === o.queue_id)?.name;
        const intent = extra.suggestions[o.conversation_id]?.intent;
        return (
          <div class="offer" key={o.id} data-testid="offer" data-offer-id={o.id}>
            <strong>{t("offer.title")}</strong>
            {conv && (
              <p class="who" data-testid="offer-who">
                <span class={`chan chan-${conv.channel}`}>{channelLabel(t, conv.channel)}</span>{" "}
                <span class="conv-name">{contactLabel(contact, conv.contact_id)}</span>
                {(contact?.vip_level ?? 0) > 0 && <span class="vip">VIP{contact!.vip_level}</span>}
                {queue && <span class="muted"> · {queue}</span>}
              </p>
            )}
            {intent && <p class="offer-intent" data-testid="offer-intent">{t("offer.intent", { intent })}</p>}
            <p class="preview">{o.preview ?? conv?.last_message_preview ?? o.conversation_id}</p>
            <p class="countdown" data-testid="countdown">{left > 0 ? t("offer.expires", { s: left }) : t("offer.expired")}</p>
            <div class="row">
              <button type="button" class="primary" data-testid="offer-accept" title="Alt+A" disabled={left === 0}
                onClick={() => void ws.answerOffer(o, true)}>{t("offer.accept")}</button>
              <button type="button" data-testid="offer-reject" title="Alt+X"
                onClick={() => void ws.answerOffer(o, false)}>{t("offer.reject")}</button>
            </div>
          </div>
        );
      })}
    </div>
  );
}
