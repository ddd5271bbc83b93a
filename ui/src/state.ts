/**
 * The workspace's state and the pure functions that change it. Events from the WebSocket, REST answers and
 * local sends all go through here, so ordering and de-duplication rules live (and are tested) in one place.
 */
import type { Conversation, Frame, Message } from "./types";

export type InboxView = "mine" | "unassigned" | "all";

export interface Filters {
  view: InboxView;
  status: string; // "" for any
  channel: string;
  queue: string;
  /** A disposition code: only conversations resolved (or closed) with it. */
  disposition: string;
  search: string;
}

export interface Typing {
  conversation_id: string;
  until: number;
}

export interface State {
  me: string | null;
  conversations: Record<string, Conversation>;
  messages: Record<string, Message[]>;
  unread: Record<string, number>;
  typing: Record<string, number>;
  selected: string | null;
  filters: Filters;
  lastEventId: number | null;
}

export const emptyFilters: Filters = { view: "all", status: "", channel: "", queue: "", disposition: "", search: "" };

export function initialState(me: string | null = null): State {
  return { me, conversations: {}, messages: {}, unread: {}, typing: {}, selected: null,
    filters: { ...emptyFilters }, lastEventId: null };
}

/** Keeps the newer of two copies: a late REST answer must not undo a fresher event. */
export function upsertConversation(state: State, incoming: Partial<Conversation> & { id: string }): State {
  const current = state.conversations[incoming.id];
  if (current && incoming.version !== undefined && incoming.version < current.version) return state;
  const merged = { ...(current ?? {}), ...stripUndefined(incoming) } as Conversation;
  if (incoming.tags === null && current) merged.tags = current.tags; // events may omit tags
  return { ...state, conversations: { ...state.conversations, [incoming.id]: merged } };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Ids are time-ordered ULIDs, so comparing them orders messages; local pending ones stay last. */
function compareMessages(a: Message, b: Message): number {
  if (!!a.pending !== !!b.pending) return a.pending ? 1 : -1;
  if (a.pending && b.pending) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Merges messages into a timeline: once per id, a confirmed message replaces its pending copy. */
export function mergeMessages(existing: Message[], incoming: Message[]): Message[] {
  const byId = new Map<string, Message>();
  for (const m of existing) byId.set(m.id, m);
  for (const m of incoming) {
    if (!m.pending && m.client_message_id) byId.delete(pendingId(m.client_message_id));
    const old = byId.get(m.id);
    byId.set(m.id, old && !m.pending ? { ...old, ...m, pending: undefined } : m);
  }
  return [...byId.values()].sort(compareMessages);
}

export const pendingId = (clientId: string) => `pending:${clientId}`;

export function setMessages(state: State, conversationId: string, messages: Message[]): State {
  const merged = mergeMessages(state.messages[conversationId] ?? [], messages);
  return { ...state, messages: { ...state.messages, [conversationId]: merged } };
}

/** A reply shown at once while it travels; the server's copy replaces it by client_message_id. */
export function addPending(state: State, conversationId: string, clientId: string, body: string,
  isPrivate: boolean, now: Date = new Date(), attachments: Message["attachments"] = []): State {
  const message: Message = {
    id: pendingId(clientId), conversation_id: conversationId, sender_kind: "agent", sender_id: state.me,
    body, private: isPrivate, client_message_id: clientId, created_at: now.toISOString(), pending: "sending",
    attachments,
  };
  return setMessages(state, conversationId, [message]);
}

export function markPending(state: State, conversationId: string, clientId: string,
  status: "sending" | "failed"): State {
  const list = state.messages[conversationId] ?? [];
  const next = list.map((m) => (m.id === pendingId(clientId) ? { ...m, pending: status } : m));
  return { ...state, messages: { ...state.messages, [conversationId]: next } };
}

export function pendingMessages(state: State): Message[] {
  return Object.values(state.messages).flat().filter((m) => m.pending);
}

export function select(state: State, conversationId: string | null): State {
  if (conversationId === null) return { ...state, selected: null };
  const unread = { ...state.unread };
  delete unread[conversationId];
  return { ...state, selected: conversationId, unread };
}

/** Applies one live event. Unknown types are ignored so a newer server never breaks an older page. */
export function applyEvent(state: State, frame: Frame, now: number = Date.now()): State {
  const data = frame.data ?? {};
  let next = state;
  if (typeof frame.id === "number") {
    // Events are numbered; one replayed after a reconnect was applied already.
    if (state.lastEventId !== null && frame.id <= state.lastEventId) return state;
    next = { ...next, lastEventId: frame.id };
  }
  switch (frame.type) {
    case "conversation.created":
    case "conversation.updated":
      if (data.conversation?.id) next = upsertConversation(next, data.conversation);
      return next;
    case "message.created": {
      const message = data.message as Message | undefined;
      if (!message) return next;
      const known = (next.messages[message.conversation_id] ?? []).some((m) => m.id === message.id);
      if (data.conversation?.id) {
        const conv = data.conversation;
        const current = next.conversations[conv.id];
        next = upsertConversation(next, {
          ...conv,
          ...(message.private ? {} : { last_message_at: message.created_at }),
          ...(current && !message.private ? { message_count: (current.message_count ?? 0) + (known ? 0 : 1) } : {}),
        });
      }
      if (next.messages[message.conversation_id] || next.selected === message.conversation_id) {
        next = setMessages(next, message.conversation_id, [message]);
      }
      if (message.sender_kind === "customer") {
        const typing = { ...next.typing };
        delete typing[message.conversation_id];
        next = { ...next, typing };
      }
      if (!known && message.sender_kind === "customer" && next.selected !== message.conversation_id) {
        next = { ...next, unread: { ...next.unread, [message.conversation_id]: (next.unread[message.conversation_id] ?? 0) + 1 } };
      }
      return next;
    }
    case "message.updated": {
      const read = data.read as { message_ids: string[] } | undefined;
      const conversationId = data.conversation?.id as string | undefined;
      if (read && conversationId && next.messages[conversationId]) {
        const ids = new Set(read.message_ids);
        const list = next.messages[conversationId].map((m) => (ids.has(m.id) ? { ...m, delivery_status: "read" } : m));
        next = { ...next, messages: { ...next.messages, [conversationId]: list } };
      }
      if (data.message?.id) next = setMessages(next, data.message.conversation_id, [data.message]);
      return next;
    }
    case "typing":
    case "typing.started":
    case "conversation.typing": {
      const conversationId = (data.conversation_id ?? data.conversation?.id) as string | undefined;
      const who = (data.sender_kind ?? data.by ?? "customer") as string;
      if (!conversationId || who !== "customer") return next;
      const typing = { ...next.typing };
      if (data.typing === false || data.state === "stopped") delete typing[conversationId];
      else typing[conversationId] = now + 6000;
      return { ...next, typing };
    }
    case "typing.stopped": {
      const conversationId = (data.conversation_id ?? data.conversation?.id) as string | undefined;
      if (!conversationId) return next;
      const typing = { ...next.typing };
      delete typing[conversationId];
      return { ...next, typing };
    }
    default:
      return next;
  }
}

export function isTyping(state: State, conversationId: string, now: number = Date.now()): boolean {
  return (state.typing[conversationId] ?? 0) > now;
}

/** The inbox as the filters ask for it, the most recent activity first. */
export function visibleConversations(state: State, filters: Filters = state.filters,
  names: Record<string, string> = {}, queues: Record<string, string> = {},
  serverHits: ReadonlySet<string> = new Set()): Conversation[] {
  const needle = filters.search.trim().toLowerCase();
  return Object.values(state.conversations)
    .filter((c) => {
      if (filters.view === "mine" && c.assignee_id !== state.me) return false;
      if (filters.view === "unassigned" && c.assignee_id !== null) return false;
      if (filters.status && c.status !== filters.status) return false;
      if (filters.channel && c.channel !== filters.channel) return false;
      if (filters.queue && (queues[c.id] ?? c.queue_id) !== filters.queue) return false;
      if (filters.disposition && c.disposition !== filters.disposition) return false;
      if (needle && !serverHits.has(c.id)) {
        const hay = [c.subject, c.last_message_preview, c.id, names[c.contact_id], ...(c.tags ?? [])]
          .filter(Boolean).join(" ").toLowerCase();
        if (!hay.includes(needle)) return false;
      }
      return true;
    })
    .sort((a, b) => (b.last_message_at ?? b.created_at ?? "").localeCompare(a.last_message_at ?? a.created_at ?? "")
      || b.id.localeCompare(a.id));
}

/** Unread counts per inbox view, for the badges on the filter tabs. */
export function unreadByView(state: State): Record<InboxView, number> {
  const counts: Record<InboxView, number> = { mine: 0, unassigned: 0, all: 0 };
  for (const [id, n] of Object.entries(state.unread)) {
    const c = state.conversations[id];
    if (!c || !n) continue;
    counts.all += n;
    if (c.assignee_id === state.me) counts.mine += n;
    if (c.assignee_id === null) counts.unassigned += n;
  }
  return counts;
}

/** The conversation after or before the selected one in the visible list (keyboard navigation). */
export function neighbour(list: Conversation[], selected: string | null, step: 1 | -1): string | null {
  if (!list.length) return null;
  const index = list.findIndex((c) => c.id === selected);
  if (index === -1) return list[0].id;
  return list[Math.min(list.length - 1, Math.max(0, index + step))].id;
}

/** What to call a contact: their name, else an address or shop id, else a short visitor label. */
export function contactLabel(contact: { name?: string | null; email?: string | null; phone?: string | null;
  identities?: { kind: string; value: string }[] } | undefined, fallbackId: string): string {
  if (contact?.name) return contact.name;
  if (contact?.email) return contact.email;
  if (contact?.phone) return contact.phone;
  const identity = contact?.identities?.find((i) => i.kind !== "visitor" && i.kind !== "device");
  if (identity) return identity.value;
  return `#${fallbackId.slice(-6)}`;
}

/** The label of a disposition code in the UI's language; codes the list no longer has show as they are. */
export function dispositionLabel(list: { code: string; label_zh: string; label_en: string }[], code: string,
  locale: "zh" | "en"): string {
  const found = list.find((d) => d.code === code);
  if (!found) return code;
  return locale === "zh" ? found.label_zh : found.label_en;
}
