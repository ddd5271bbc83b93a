import { useEffect, useRef } from "preact/hooks";
import { codeLabel, type Key } from "../i18n";
import { useT } from "../locale";
import { contactLabel, dispositionLabel, type InboxView, neighbour, unreadByView, visibleConversations } from "../state";
import { useStore } from "../store";
import type { Workspace } from "../workspace";

const VIEWS: InboxView[] = ["mine", "unassigned", "all"];
const STATUSES = ["open", "pending", "resolved", "closed"];
const CHANNELS = ["webchat", "email", "wechat", "webhook", "phone"];

export function channelLabel(t: (k: Key) => string, channel: string): string {
  return codeLabel(t, "channel", channel);
}

export function InboxList({ ws }: { ws: Workspace }) {
  const { t, locale } = useT();
  const state = useStore(ws.store);
  const extra = useStore(ws.extra);
  const search = useRef<HTMLInputElement>(null);
  const names = Object.fromEntries(Object.values(extra.contacts).map((c) => [c.id, contactLabel(c, c.id)]));
  const hits = new Set(extra.searchHits && extra.searchHits.q === state.filters.search.trim() ? extra.searchHits.ids : []);
  const list = visibleConversations(state, state.filters, names, extra.taskQueues, hits);
  const counts = unreadByView(state);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const el = e.target as HTMLElement;
      const inField = el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
      if (e.altKey && (e.key === "j" || e.key === "k" || e.key === "ArrowDown" || e.key === "ArrowUp")) {
        const step = e.key === "j" || e.key === "ArrowDown" ? 1 : -1;
        const next = neighbour(visibleConversations(ws.store.get(), ws.store.get().filters, names), ws.store.get().selected, step);
        if (next) void ws.select(next);
        e.preventDefault();
      } else if (e.key === "/" && !inField) {
        search.current?.focus();
        e.preventDefault();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  return (
    <section class="inbox" aria-label={t("inbox.label")}>
      <div class="views" role="tablist" aria-label={t("inbox.label")}>
        {VIEWS.map((view) => (
          <button type="button" role="tab" key={view} aria-selected={state.filters.view === view}
            class={state.filters.view === view ? "tab active" : "tab"} data-testid={`view-${view}`}
            onClick={() => ws.setFilters({ view })}>
            {t(`inbox.filter.${view}` as Key)}
            {counts[view] > 0 && <span class="badge" aria-label={t("inbox.unread", { n: counts[view] })}>{counts[view]}</span>}
          </button>
        ))}
      </div>
      <div class="filters">
        <input ref={search} type="search" placeholder={t("inbox.search")} aria-label={t("inbox.search")}
          data-testid="search" value={state.filters.search}
          onInput={(e) => ws.search((e.target as HTMLInputElement).value)} />
        <select aria-label={t("inbox.status")} value={state.filters.status} data-testid="filter-status"
          onChange={(e) => ws.setFilters({ status: (e.target as HTMLSelectElement).value })}>
          <option value="">{t("inbox.status.any")}</option>
          {STATUSES.map((s) => <option key={s} value={s}>{t(`status.${s}` as Key)}</option>)}
        </select>
        <select aria-label={t("inbox.channel")} value={state.filters.channel}
          onChange={(e) => ws.setFilters({ channel: (e.target as HTMLSelectElement).value })}>
          <option value="">{t("inbox.channel.any")}</option>
          {CHANNELS.map((c) => <option key={c} value={c}>{channelLabel(t, c)}</option>)}
        </select>
        {extra.dispositions.length > 0 && (
          <select aria-label={t("inbox.disposition")} value={state.filters.disposition} data-testid="filter-disposition"
            onChange={(e) => ws.setFilters({ disposition: (e.target as HTMLSelectElement).value })}>
            <option value="">{t("inbox.disposition.any")}</option>
            {extra.dispositions.map((d) => (
              <option key={d.code} value={d.code}>{locale === "zh" ? d.label_zh : d.label_en}</option>
            ))}
          </select>
        )}
        {extra.queues.length > 0 && (
          <select aria-label={t("inbox.queue")} value={state.filters.queue}
            onChange={(e) => ws.setFilters({ queue: (e.target as HTMLSelectElement).value })}>
            <option value="">{t("inbox.queue.any")}</option>
            {extra.queues.map((q) => <option key={q.id} value={q.id}>{q.name}</option>)}
          </select>
        )}
      </div>
      <ul class="conversation-list" data-testid="conversation-list" aria-label={t("inbox.label")}>
        {list.length === 0 && <li class="empty">{t("inbox.empty")}</li>}
        {list.map((c) => {
          const unread = state.unread[c.id] ?? 0;
          const contact = extra.contacts[c.contact_id];
          const name = contactLabel(contact, c.contact_id);
          return (
            <li key={c.id}>
              <button type="button" class={`conv-item ${state.selected === c.id ? "selected" : ""} ${unread ? "unread" : ""}`}
                data-conversation-id={c.id} data-status={c.status} aria-current={state.selected === c.id}
                onClick={() => void ws.select(c.id)}>
                <span class="conv-top">
                  <span class={`chan chan-${c.channel}`}>{channelLabel(t, c.channel)}</span>
                  <span class="conv-name">{name}</span>
                  {(contact?.vip_level ?? 0) > 0 && <span class="vip">VIP{contact!.vip_level}</span>}
                  {unread > 0 && <span class="badge" data-testid="unread" aria-label={t("inbox.unread", { n: unread })}>{unread}</span>}
                </span>
                <span class="conv-preview">{c.last_message_preview ?? t("inbox.no_preview")}</span>
                <span class="conv-meta">
                  <span class={`status status-${c.status}`}>{t(`status.${c.status}` as Key)}</span>
                  {c.disposition && (
                    <span class="disposition" data-testid="item-disposition">
                      {dispositionLabel(extra.dispositions, c.disposition, locale)}
                    </span>
                  )}
                  {c.last_message_at && <time dateTime={c.last_message_at}>{new Date(c.last_message_at).toLocaleTimeString()}</time>}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
