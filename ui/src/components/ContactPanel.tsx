import { useEffect } from "preact/hooks";
import type { Key } from "../i18n";
import { useT } from "../locale";
import { contactLabel } from "../state";
import { useStore } from "../store";
import type { Workspace } from "../workspace";
import { Orders } from "./Orders";

export function ContactPanel({ ws }: { ws: Workspace }) {
  const { t } = useT();
  const state = useStore(ws.store);
  const extra = useStore(ws.extra);
  const conv = state.selected ? state.conversations[state.selected] : null;
  const contact = conv ? extra.contacts[conv.contact_id] : null;
  useEffect(() => {
    if (conv) void ws.loadContact(conv.contact_id);
  }, [conv?.contact_id]);
  if (!conv) return <aside class="contact" aria-label={t("contact.title")} />;
  const history = extra.history[conv.contact_id] ?? [];
  const attributes = Object.entries(contact?.attributes ?? {}).filter(([, v]) => typeof v !== "object");
  return (
    <aside class="contact" aria-label={t("contact.title")} data-testid="contact-panel">
      <h2>{contact ? contactLabel(contact, contact.id) : t("contact.title")}</h2>
      {contact && contact.vip_level > 0 && <p class="vip" data-testid="vip">{t("contact.vip", { n: contact.vip_level })}</p>}
      {contact && (
        <dl class="facts">
          {contact.email && <><dt>{t("contact.email")}</dt><dd>{contact.email}</dd></>}
          {contact.phone && <><dt>☎</dt><dd>{contact.phone}</dd></>}
          {attributes.map(([k, v]) => <><dt key={k}>{k}</dt><dd>{String(v)}</dd></>)}
        </dl>
      )}
      {contact && contact.identities.length > 0 && (
        <section>
          <h3>{t("contact.identities")}</h3>
          <ul class="identities">
            {contact.identities.map((i) => (
              <li key={i.id}><span class="kind">{i.kind}</span> {i.value} {i.verified && <span title={t("contact.verified")} aria-label={t("contact.verified")}>✔</span>}</li>
            ))}
          </ul>
        </section>
      )}
      {(conv.tags ?? []).length > 0 && (
        <section>
          <h3>{t("contact.tags")}</h3>
          <p>{(conv.tags ?? []).map((tg) => <span class="tag" key={tg}>{tg}</span>)}</p>
        </section>
      )}
      <Orders ws={ws} contactId={conv.contact_id} conversationId={conv.id} />
      {history.length > 1 && (
        <section>
          <h3>{t("contact.history")}</h3>
          <ul class="history">
            {history.map((c) => (
              <li key={c.id}>
                <button type="button" class="link" aria-current={c.id === conv.id} onClick={() => void ws.select(c.id)}>
                  {new Date(c.created_at ?? "").toLocaleDateString()} · {t(`status.${c.status}` as Key)} · {c.last_message_preview ?? ""}
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}
    </aside>
  );
}
