import { useEffect } from "preact/hooks";
import { formatAge, type Key } from "../i18n";
import { useT } from "../locale";
import { contactLabel } from "../state";
import { useStore } from "../store";
import type { Workspace } from "../workspace";
import { presenceValue } from "./PresenceSwitch";

/** Queues (waiting, longest wait, service level), agents (presence, load) and live conversations. */
export function Supervisor({ ws, onOpen }: { ws: Workspace; onOpen: (id: string) => void }) {
  const { t, locale } = useT();
  const extra = useStore(ws.extra);
  const state = useStore(ws.store);
  useEffect(() => {
    void ws.loadSupervisor();
    const timer = setInterval(() => void ws.loadSupervisor(), 5000); // live events also refresh it
    return () => clearInterval(timer);
  }, [ws]);
  const live = Object.values(state.conversations)
    .filter((c) => c.status === "open" || c.status === "pending")
    .sort((a, b) => (b.last_message_at ?? "").localeCompare(a.last_message_at ?? ""));
  const presenceLabel = (presence: string, reason: string | null) => {
    const value = presenceValue(presence, reason);
    const key = (value.startsWith("away:") ? `presence.reason.${value.slice(5)}` : `presence.${presence}`) as Key;
    const text = t(key);
    return text === key ? `${presence}${reason ? `: ${reason}` : ""}` : text;
  };
  return (
    <main class="supervisor" aria-labelledby="sup-title" data-testid="supervisor">
      <h2 id="sup-title">{t("sup.title")}</h2>
      <h3>{t("sup.queues")}</h3>
      {extra.stats === null ? <p class="muted">{t("sup.unavailable")}</p> : (
        <table data-testid="queue-stats">
          <thead><tr>
            <th scope="col">{t("sup.queue")}</th><th scope="col">{t("sup.waiting")}</th>
            <th scope="col">{t("sup.offered")}</th><th scope="col">{t("sup.assigned")}</th>
            <th scope="col">{t("sup.longest")}</th><th scope="col">{t("sup.service_level")}</th>
            <th scope="col">{t("sup.agents")}</th>
          </tr></thead>
          <tbody>
            {extra.stats.map((q) => {
              const sl = q.service_level === null ? null : Math.round(q.service_level * 100);
              return (
                <tr key={q.queue_id} data-queue-id={q.queue_id}>
                  <th scope="row">{q.name}</th>
                  <td data-testid="waiting">{q.waiting}</td>
                  <td data-testid="offered">{q.offered}</td>
                  <td data-testid="assigned">{q.assigned}</td>
                  <td>{q.waiting ? formatAge(locale, q.longest_wait_seconds) : "—"}</td>
                  <td class={sl !== null && sl < q.sl_goal_percent ? "sl-bad" : ""}>
                    {sl === null ? "—" : `${sl}%`} <small class="muted">/ {q.sl_goal_percent}% ≤ {q.sl_target_seconds}s</small>
                  </td>
                  <td>{q.agents_available} / {q.agents_available + q.agents_busy}</td>
                </tr>
              );
            })}
            <tr data-testid="unrouted" class={extra.unrouted.count ? "sl-bad" : ""}>
              <th scope="row">{t("sup.unrouted")}</th>
              <td data-testid="waiting">{extra.unrouted.count}</td><td /><td />
              <td>{extra.unrouted.oldest ? formatAge(locale, (Date.now() - Date.parse(extra.unrouted.oldest)) / 1000) : "—"}</td>
              <td /><td />
            </tr>
          </tbody>
        </table>
      )}
      <h3>{t("sup.agents")}</h3>
      <table data-testid="agents">
        <thead><tr><th scope="col">{t("sup.agent")}</th><th scope="col">{t("sup.presence")}</th><th scope="col">{t("sup.load")}</th></tr></thead>
        <tbody>
          {extra.agents.map((a) => (
            <tr key={a.agent_id} data-agent-id={a.agent_id}>
              <th scope="row">{extra.users[a.agent_id]?.display_name ?? a.agent_id}</th>
              <td><span class={`dot dot-${a.presence}`} aria-hidden="true" /> <span data-testid="agent-presence">{presenceLabel(a.presence, a.presence_reason)}</span></td>
              <td>💬 {a.load.chat}{a.capacities?.chat !== undefined ? ` / ${a.capacities.chat}` : ""} · ☎ {a.load.voice} · ✉ {a.load.email}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>{t("sup.live")}</h3>
      <table data-testid="live">
        <tbody>
          {live.map((c) => (
            <tr key={c.id}>
              <th scope="row">{contactLabel(extra.contacts[c.contact_id], c.contact_id)}</th>
              <td>{t(`status.${c.status}` as Key)}</td>
              <td>{c.assignee_id ? extra.users[c.assignee_id]?.display_name ?? c.assignee_id : t("conv.unassigned")}</td>
              <td class="conv-preview">{c.last_message_preview ?? ""}</td>
              <td><button type="button" onClick={() => onOpen(c.id)}>{t("sup.monitor")}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}
