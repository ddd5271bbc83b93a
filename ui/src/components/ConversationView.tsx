import { Fragment } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { Drafts, EMOJI, MAX_MESSAGE_LENGTH, fillTemplate, matchCanned, type CannedResponse } from "../composer";
import type { Key } from "../i18n";
import { useT } from "../locale";
import { contactLabel, dispositionLabel, isTyping } from "../state";
import { useStore } from "../store";
import type { Attachment, Conversation, Message } from "../types";
import type { Workspace } from "../workspace";
import { channelLabel } from "./InboxList";

const drafts = new Drafts(typeof localStorage !== "undefined" ? localStorage : {
  getItem: () => null, setItem: () => undefined, removeItem: () => undefined });

export function ConversationView({ ws }: { ws: Workspace }) {
  const { t } = useT();
  const state = useStore(ws.store);
  const extra = useStore(ws.extra);
  const conv = state.selected ? state.conversations[state.selected] : null;
  const [, tick] = useState(0);

  useEffect(() => {
    const timer = setInterval(() => tick((n) => n + 1), 2000); // typing indicators expire
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const c = ws.store.get().selected ? ws.store.get().conversations[ws.store.get().selected!] : null;
      if (!c || !e.altKey) return;
      if (e.key === "r") {
        // The tenant's first disposition (normally "solved"); the header's list offers the others.
        void ws.resolve(c.id, ws.extra.get().dispositions.find((d) => d.active)?.code);
        e.preventDefault();
      }
      if (e.key === "t") { void ws.assign(c.id, ws.session.user_id); e.preventDefault(); }
      if (e.key === "n") { ws.extra.update((x) => ({ ...x, noteMode: !x.noteMode })); e.preventDefault(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [ws]);

  if (!conv) return <section class="conversation empty-state" aria-label={t("conv.timeline")}><p>{t("conv.none")}</p></section>;
  const messages = state.messages[conv.id] ?? [];
  const contact = extra.contacts[conv.contact_id];
  const typing = isTyping(state, conv.id);
  return (
    <section class="conversation" aria-label={t("conv.timeline")} data-testid="conversation" data-conversation-id={conv.id}>
      <ConversationHeader ws={ws} conv={conv} name={contactLabel(contact, conv.contact_id)} />
      <Timeline ws={ws} messages={messages} conv={conv} />
      <div class="typing" aria-live="polite" data-testid="typing">{typing ? t("conv.typing") : ""}</div>
      <Composer ws={ws} conv={conv} />
    </section>
  );
}

function ConversationHeader({ ws, conv, name }: { ws: Workspace; conv: Conversation; name: string }) {
  const { t, locale } = useT();
  const extra = useStore(ws.extra);
  const active = extra.dispositions.filter((d) => d.active);
  const [picked, setDisposition] = useState("");
  const disposition = active.some((d) => d.code === picked) ? picked : active[0]?.code ?? "";
  const [tag, setTag] = useState("");
  const [transfer, setTransfer] = useState("");
  const mine = conv.assignee_id === ws.session.user_id;
  const assignee = conv.assignee_id ? (mine ? t("conv.you") : extra.users[conv.assignee_id]?.display_name ?? conv.assignee_id)
    : t("conv.unassigned");
  const closed = conv.status === "resolved" || conv.status === "closed";

  const doTransfer = () => {
    if (!transfer) return;
    const [kind, id] = transfer.split(":");
    void ws.transfer(conv.id, kind === "agent" ? { agent_id: id } : { queue_id: id });
    setTransfer("");
  };

  return (
    <header class="conv-header">
      <div class="conv-title">
        <h2>{name}</h2>
        <span class={`chan chan-${conv.channel}`}>{channelLabel(t, conv.channel)}</span>
        <span class={`status status-${conv.status}`} data-testid="conv-status">{t(`status.${conv.status}` as Key)}</span>
        {extra.csat[conv.id] && (
          <span class="csat" data-testid="csat" title={extra.csat[conv.id].comment ?? ""}>
            {t("conv.csat", { n: extra.csat[conv.id].rating })}{extra.csat[conv.id].comment ? ` · “${extra.csat[conv.id].comment}”` : ""}
          </span>
        )}
        {conv.disposition && (
          <span class="disposition" data-testid="conv-disposition" data-code={conv.disposition}>
            {t("conv.disposition")}: {dispositionLabel(extra.dispositions, conv.disposition, locale)}
          </span>
        )}
        <span class="assignee">{t("conv.assignee")}: <strong data-testid="assignee">{assignee}</strong></span>
      </div>
      <div class="conv-actions">
        {!mine && !closed && (
          <button type="button" data-testid="take" title="Alt+T" onClick={() => void ws.assign(conv.id, ws.session.user_id)}>
            {t("conv.take")}
          </button>
        )}
        {!closed && (
          <span class="group">
            <select aria-label={t("conv.disposition")} value={disposition} data-testid="disposition"
              onChange={(e) => setDisposition((e.target as HTMLSelectElement).value)}>
              {active.map((d) => (
                <option key={d.code} value={d.code}>{locale === "zh" ? d.label_zh : d.label_en}</option>
              ))}
            </select>
            <button type="button" class="primary" data-testid="resolve" title="Alt+R"
              onClick={() => void ws.resolve(conv.id, disposition || undefined)}>{t("conv.resolve")}</button>
          </span>
        )}
        {conv.status === "resolved" && (
          <button type="button" data-testid="reopen" onClick={() => void ws.reopen(conv.id)}>{t("conv.reopen")}</button>
        )}
        {!closed && (
          <span class="group">
            <select aria-label={t("conv.transfer_to")} value={transfer} data-testid="transfer-target"
              onChange={(e) => setTransfer((e.target as HTMLSelectElement).value)}>
              <option value="">{t("conv.transfer_to")}…</option>
              <optgroup label={t("conv.transfer.agent")}>
                {Object.values(extra.users).filter((u) => u.id !== conv.assignee_id).map((u) => (
                  <option key={u.id} value={`agent:${u.id}`}>{u.display_name}</option>
                ))}
              </optgroup>
              {extra.queues.length > 0 && (
                <optgroup label={t("conv.transfer.queue")}>
                  {extra.queues.map((q) => <option key={q.id} value={`queue:${q.id}`}>{q.name}</option>)}
                </optgroup>
              )}
            </select>
            <button type="button" onClick={doTransfer} disabled={!transfer}>{t("conv.transfer")}</button>
          </span>
        )}
      </div>
      <div class="tags" aria-label={t("conv.tags")}>
        {(conv.tags ?? []).map((tg) => (
          <span class="tag" key={tg}>{tg}
            <button type="button" class="link" aria-label={t("conv.remove_tag", { tag: tg })}
              onClick={() => void ws.removeTag(conv.id, tg)}>×</button>
          </span>
        ))}
        <form class="add-tag" onSubmit={(e) => { e.preventDefault(); if (tag.trim()) void ws.addTag(conv.id, tag.trim()); setTag(""); }}>
          <input aria-label={t("conv.add_tag")} placeholder={t("conv.add_tag")} value={tag} data-testid="tag-input"
            onInput={(e) => setTag((e.target as HTMLInputElement).value)} />
        </form>
      </div>
    </header>
  );
}

function senderLabel(t: (k: Key) => string, m: Message): string {
  if (m.private) return t("msg.note");
  const key = `msg.${m.sender_kind}` as Key;
  const text = t(key);
  return text === key ? m.sender_kind : text;
}

function Timeline({ ws, messages, conv }: { ws: Workspace; messages: Message[]; conv: Conversation }) {
  const { t } = useT();
  const ref = useRef<HTMLOListElement>(null);
  const extra = useStore(ws.extra);
  const earlier = (extra.history[conv.contact_id] ?? []).filter((c) => c.id !== conv.id);
  const [showEarlier, setShowEarlier] = useState(false);
  useEffect(() => setShowEarlier(false), [conv.id]);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && !showEarlier) el.scrollTop = el.scrollHeight;
  }, [messages.length, conv.id]);
  const timeline = extra.timeline[conv.contact_id];
  const firstId = messages.find((m) => !m.pending)?.id;
  const older = showEarlier && timeline
    ? timeline.messages.filter((m) => m.conversation_id !== conv.id && (!firstId || m.id < firstId)) : [];
  const loadEarlier = () => {
    setShowEarlier(true);
    const oldest = timeline?.messages[0]?.id ?? firstId;
    void ws.loadTimeline(conv.contact_id, timeline ? oldest : undefined);
  };
  return (
    <div class="timeline-wrap">
      {earlier.length > 0 && (
        <details class="earlier" data-testid="earlier">
          <summary>{t("conv.earlier")} ({earlier.length})</summary>
          <ul>
            {earlier.map((c) => (
              <li key={c.id}>
                <button type="button" class="link" onClick={() => void ws.select(c.id)}>
                  {channelLabel(t, c.channel)} · {t(`status.${c.status}` as Key)} · {c.last_message_preview ?? ""}
                </button>
              </li>
            ))}
          </ul>
        </details>
      )}
      <ol class="timeline" ref={ref} data-testid="messages" aria-live="polite" tabIndex={0}>
        {(!timeline || timeline.hasMore || !showEarlier) && (
          <li class="load-earlier"><button type="button" class="link" data-testid="load-earlier" onClick={loadEarlier}>
            {t("conv.load_earlier")}</button></li>
        )}
        {older.map((m, i) => {
          const c = timeline!.conversations[m.conversation_id];
          const first = i === 0 || older[i - 1].conversation_id !== m.conversation_id;
          return (
            <Fragment key={m.id}>
              {first && (
                <li class="separator" key={`sep-${m.id}`} data-testid="earlier-separator">
                  {t("conv.earlier")} · {c ? channelLabel(t, c.channel) : ""} · {c?.created_at ? new Date(c.created_at).toLocaleDateString() : ""}
                  {c ? ` · ${t(`status.${c.status}` as Key)}` : ""}
                </li>
              )}
              <li key={m.id} class={`msg old msg-${m.private ? "note" : m.sender_kind}`} data-sender={m.sender_kind}
                data-earlier-message-id={m.id}>
                <div class="msg-head"><span class="who">{senderLabel(t, m)}</span>
                  <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleString()}</time></div>
                {m.body && <div class="body">{m.body}</div>}
              </li>
            </Fragment>
          );
        })}
        {older.length > 0 && <li class="separator">{t("conv.this_conversation")}</li>}
        {messages.map((m) => (
          <li key={m.id} class={`msg msg-${m.private ? "note" : m.sender_kind} ${m.pending ? `pending-${m.pending}` : ""}`}
            data-message-id={m.pending ? undefined : m.id} data-sender={m.sender_kind} data-private={m.private ? "true" : "false"}>
            <div class="msg-head">
              <span class="who">{senderLabel(t, m)}</span>
              <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleTimeString()}</time>
            </div>
            {isHandoff(m) && <div class="handoff-label">{t("msg.handoff")}</div>}
            {m.body && <div class="body">{m.body}</div>}
            {(m.attachments ?? []).length > 0 && (
              <div class="attachments">{m.attachments!.map((a, i) => <AttachmentView key={a.id ?? i} ws={ws} a={a} />)}</div>
            )}
            <div class="msg-foot">
              {m.pending === "sending" && <span>{t("msg.sending")}</span>}
              {m.pending === "failed" && (
                <span class="failed" role="alert">{t("msg.failed")}
                  <button type="button" class="link" onClick={() => ws.retry(m)}>{t("msg.retry")}</button></span>
              )}
              {!m.pending && m.sender_kind !== "customer" && !m.private && (
                <span class="delivery" data-delivery={m.delivery_status}>
                  {m.delivery_status === "read" ? t("msg.read") : t("msg.sent")}
                </span>
              )}
            </div>
          </li>
        ))}
      </ol>
    </div>
  );
}

/** The bot writes its handoff summary as an internal note: agents see why and what was said. */
function isHandoff(m: Message): boolean {
  return m.sender_kind === "bot" && !!m.private;
}

/** Images show inline through a signed URL (an <img> cannot send the bearer token); other files link. */
function AttachmentView({ ws, a }: { ws: Workspace; a: Attachment }) {
  const { t } = useT();
  const [url, setUrl] = useState<string | null>(a.url && (a.url.includes("sig=") || !a.url.startsWith("/api/")) ? a.url : null);
  useEffect(() => {
    if (url || !a.id) return;
    ws.api.get<{ url: string }>(`/api/v1/attachments/${a.id}`).then((r) => setUrl(r.url)).catch(() => undefined);
  }, [a.id]);
  const isImage = a.content_type.startsWith("image/");
  if (isImage && url) return <a href={url} target="_blank" rel="noopener"><img class="thumb" src={url} alt={a.name} loading="lazy" /></a>;
  return url ? <a href={url} target="_blank" rel="noopener" class="file">📎 {a.name}</a>
    : <span class="file">📎 {a.name || t("msg.attachment")}</span>;
}

function Composer({ ws, conv }: { ws: Workspace; conv: Conversation }) {
  const { t, locale } = useT();
  const extra = useStore(ws.extra);
  const user = ws.session.user_id;
  const [text, setText] = useState(() => drafts.get(user, conv.id));
  const [pick, setPick] = useState(0);
  const [emoji, setEmoji] = useState(false);
  const [files, setFiles] = useState<Attachment[]>([]);
  const [uploading, setUploading] = useState<string | null>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const note = extra.noteMode;
  const contact = extra.contacts[conv.contact_id];

  useEffect(() => {
    setText(drafts.get(user, conv.id));
    setFiles([]);
    area.current?.focus();
  }, [conv.id]);

  const builtIn: CannedResponse[] = useMemo(() => (["greeting", "wait", "order", "closing"] as const).flatMap((k) => [
    { shortcut: k, title: t(`tpl.${k}` as Key), body: t(`tpl.${k}` as Key), locale },
  ]), [locale]);
  const canned = [...extra.canned, ...builtIn.filter((b) => !extra.canned.some((c) => c.shortcut === b.shortcut))];
  const matches = matchCanned(text, canned, locale);

  const change = (value: string) => {
    setText(value);
    setPick(0);
    drafts.set(user, conv.id, value);
    if (value && !value.startsWith("/")) ws.typing(conv.id, true, note);
  };

  const choose = (c: CannedResponse) => {
    const body = fillTemplate(c.body, { "customer.name": contact?.name ?? "", "agent.name": ws.session.display_name });
    change(body);
    area.current?.focus();
  };

  const send = async () => {
    const body = text.trim();
    if ((!body && !files.length) || body.length > MAX_MESSAGE_LENGTH) return;
    const attachments = files;
    setText("");
    setFiles([]);
    drafts.set(user, conv.id, "");
    try {
      await ws.send(conv.id, body, note, attachments);
    } catch (error) {
      if (error instanceof ApiError && !error.transient) {
        setText(body); // refused: give the text back
        drafts.set(user, conv.id, body);
      }
    }
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (matches.length) {
      if (e.key === "ArrowDown") { setPick((p) => (p + 1) % matches.length); e.preventDefault(); return; }
      if (e.key === "ArrowUp") { setPick((p) => (p - 1 + matches.length) % matches.length); e.preventDefault(); return; }
      if (e.key === "Enter" || e.key === "Tab") { choose(matches[pick] ?? matches[0]); e.preventDefault(); return; }
      if (e.key === "Escape") { change(""); e.preventDefault(); return; }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  const attach = async (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      setUploading(file.name);
      try {
        const a = await ws.upload(file, conv.id);
        setFiles((f) => [...f, a]);
      } catch (error) {
        ws.notify("error", `${t("composer.upload_failed", { name: file.name })} ${error instanceof Error ? error.message : ""}`);
      } finally {
        setUploading(null);
      }
    }
  };

  const suggestions = extra.suggestions[conv.id];
  if (conv.status === "closed") return <p class="composer closed">{t("composer.closed")}</p>;
  const tooLong = text.length > MAX_MESSAGE_LENGTH;
  return (
    <form class={`composer ${note ? "note-mode" : ""}`} onSubmit={(e) => { e.preventDefault(); void send(); }}
      aria-label={t("composer.label")}>
      {matches.length > 0 && (
        <ul class="canned" role="listbox" aria-label={t("composer.canned")} data-testid="canned">
          {matches.map((c, i) => (
            <li key={`${c.shortcut}-${c.locale}`} role="option" aria-selected={i === pick} class={i === pick ? "active" : ""}
              onMouseDown={(e) => { e.preventDefault(); choose(c); }}>
              <strong>/{c.shortcut}</strong> <span>{c.title ?? ""}</span> <small>{c.body.slice(0, 60)}</small>
            </li>
          ))}
        </ul>
      )}
      {suggestions && (suggestions.intent || suggestions.items.length > 0) && (
        <div class="suggestions" role="group" aria-label={t("composer.suggestions")} data-testid="suggestions">
          <span class="muted">{t("composer.suggestions")}:</span>
          {suggestions.intent && <span class="intent" title={t("composer.intent")}>{suggestions.intent}</span>}
          {suggestions.items.map((s) => (
            <button type="button" key={s.id} class="chip" title={s.text} onClick={() => { change(s.text); area.current?.focus(); }}>
              {s.title}
            </button>
          ))}
        </div>
      )}
      <div class="composer-tools">
        <label class="toggle">
          <input type="checkbox" checked={note} data-testid="note-toggle"
            onChange={() => ws.extra.update((x) => ({ ...x, noteMode: !x.noteMode }))} />
          {t("composer.note_mode")}
        </label>
        <select aria-label={t("composer.templates")} value="" data-testid="templates"
          onChange={(e) => { const v = (e.target as HTMLSelectElement).value; const c = canned.find((x) => x.shortcut === v); if (c) choose(c); }}>
          <option value="">{t("composer.templates")}…</option>
          {canned.map((c) => <option key={`${c.shortcut}-${c.locale}`} value={c.shortcut}>{c.title ?? c.shortcut}</option>)}
        </select>
        <button type="button" aria-label={t("composer.emoji")} aria-expanded={emoji} onClick={() => setEmoji(!emoji)}>😊</button>
        <label class="attach">
          <span>{t("composer.attach")}</span>
          <input type="file" data-testid="attach" aria-label={t("composer.attach")} multiple accept="image/*,application/pdf"
            onChange={(e) => { void attach((e.target as HTMLInputElement).files); (e.target as HTMLInputElement).value = ""; }} />
        </label>
        {uploading && <span role="status">{t("composer.uploading", { name: uploading })}</span>}
      </div>
      {emoji && (
        <div class="emoji" role="group" aria-label={t("composer.emoji")}>
          {EMOJI.map((em) => <button type="button" key={em} onClick={() => { change(text + em); area.current?.focus(); }}>{em}</button>)}
        </div>
      )}
      {files.length > 0 && (
        <ul class="staged">
          {files.map((f) => <li key={f.id}>📎 {f.name}
            <button type="button" class="link" aria-label={t("common.close")} onClick={() => setFiles(files.filter((x) => x !== f))}>×</button></li>)}
        </ul>
      )}
      <div class="composer-row">
        <textarea ref={area} rows={3} value={text} data-testid="composer"
          aria-label={note ? t("composer.note_placeholder") : t("composer.label")}
          placeholder={note ? t("composer.note_placeholder") : t("composer.placeholder")}
          onInput={(e) => change((e.target as HTMLTextAreaElement).value)} onKeyDown={onKeyDown}
          onBlur={() => ws.typing(conv.id, false, note)} />
        <button type="submit" class="primary" data-testid="send" disabled={tooLong || (!text.trim() && !files.length)}>
          {note ? t("composer.note") : t("composer.send")}
        </button>
      </div>
      {tooLong && <p class="banner error" role="alert">{t("composer.too_long", { n: text.length, max: MAX_MESSAGE_LENGTH })}</p>}
    </form>
  );
}
