/**
 * The workspace controller: owns the REST client, the agent socket and the stores, and turns user intents
 * (select, send, resolve…) into API calls. Components only read stores and call these methods.
 */
import { Api, ApiError, query } from "./api";
import { type CannedResponse, newClientId } from "./composer";
import type { Locale } from "./i18n";
import { AgentSocket, type ConnectionStatus, socketUrl } from "./realtime";
import * as S from "./state";
import { Store } from "./store";
import type { Attachment, Contact, Conversation, Disposition, Frame, Message, Page, Session } from "./types";

const mergeMessages = S.mergeMessages;

/** Intents that say how the customer talks, not what they want: the composer and offers skip them. */
const META_INTENTS = new Set(["contact_human_agent", "contact_customer_service", "greeting", "thanks", "goodbye", "out_of_scope"]);

/** Plain text of an HTML snippet (knowledge answers): the composer only ever holds text. */
export function htmlToText(html: string): string {
  if (typeof DOMParser === "undefined") return html.replace(/<[^>]*>/g, "");
  return new DOMParser().parseFromString(html, "text/html").body.textContent ?? "";
}

export interface Notice {
  id: number;
  kind: "info" | "error";
  text: string;
}

export interface Offer {
  id: string;
  conversation_id: string;
  queue_id?: string | null;
  expires_at: number;
  preview?: string | null;
}

export interface QueueStat {
  queue_id: string;
  name: string;
  waiting: number;
  offered: number;
  assigned: number;
  longest_wait_seconds: number;
  agents_available: number;
  agents_busy: number;
  service_level: number | null;
  sl_goal_percent: number;
  sl_target_seconds: number;
  answered: number;
  abandoned: number;
}

export interface AgentProfile {
  agent_id: string;
  presence: string;
  presence_reason: string | null;
  presence_since?: string;
  load: { voice: number; chat: number; email: number };
  capacities?: Record<string, number>;
}

export interface OrderView {
  id: string;
  connector: string;
  version: number;
  order: Record<string, any>;
  freshness: { source: string; degraded: boolean; age_seconds: number; fetched_at: string | null };
}

export interface OrdersState {
  data: OrderView[] | null;
  loading: boolean;
  /** When the data shown was fetched (ms since epoch). */
  fetchedAt: number;
  degraded: boolean;
  error: string | null;
  unavailable: boolean;
}

export interface Extra {
  connection: ConnectionStatus;
  contacts: Record<string, Contact>;
  history: Record<string, Conversation[]>;
  notices: Notice[];
  canned: CannedResponse[];
  noteMode: boolean;
  presence: { status: string; reason?: string | null; available: boolean };
  offers: Offer[];
  /** contact id → their orders; kept when a reload fails so the panel shows the last data with its age. */
  orders: Record<string, OrdersState>;
  users: Record<string, { id: string; display_name: string; role: string }>;
  queues: { id: string; name: string }[];
  /** conversation id → queue id, from routing task events (for the queue filter). */
  taskQueues: Record<string, string>;
  stats: QueueStat[] | null;
  /** Tasks waiting before any queue took them (the engine places tasks only when someone is available). */
  unrouted: { count: number; oldest: string | null };
  statsAt: number;
  agents: AgentProfile[];
  /** conversation id → the customer's latest rating of it. */
  csat: Record<string, { rating: number; comment: string | null }>;
  /** conversation id → the bot's intent and knowledge-base answers to offer in the composer. */
  suggestions: Record<string, { intent: string | null; items: { id: string; title: string; text: string }[] }>;
  /** contact id → their messages across every conversation and channel (older pages loaded on demand). */
  timeline: Record<string, { messages: Message[]; conversations: Record<string, Conversation>; hasMore: boolean }>;
  /** Ids the server found for the inbox search (message bodies are searched there, not in the page). */
  searchHits: { q: string; ids: string[] } | null;
  features: { routing: boolean; commerce: boolean; canned: boolean; attachments: boolean };
  /** The tenant's disposition codes, switched-off ones included (older conversations may carry them). */
  dispositions: Disposition[];
}

const MAX_PAGES = 10;

export class Workspace {
  readonly api: Api;
  readonly store: Store<S.State>;
  readonly extra: Store<Extra>;
  readonly socket: AgentSocket;
  private noticeSeq = 0;
  private retryTimer: ReturnType<typeof setInterval> | null = null;
  private typingSent: Record<string, number> = {};

  constructor(readonly session: Session, private readonly locale: () => Locale,
    private readonly onExpired: () => void, base = "") {
    this.api = new Api({ base, token: () => this.session.token, locale: this.locale, onUnauthenticated: onExpired });
    this.store = new Store(S.initialState(session.user_id));
    this.extra = new Store<Extra>({
      connection: "connecting", contacts: {}, history: {}, notices: [], canned: [], noteMode: false,
      presence: { status: "offline", available: false }, offers: [], orders: {}, users: {}, queues: [],
      taskQueues: {}, stats: null, statsAt: 0, unrouted: { count: 0, oldest: null }, agents: [], csat: {}, suggestions: {}, timeline: {}, searchHits: null,
      features: { routing: false, commerce: false, canned: false, attachments: true }, dispositions: [],
    });
    const loc = typeof location === "undefined" ? { protocol: "http:", host: "127.0.0.1" } : location;
    this.socket = new AgentSocket(socketUrl(loc, "/api/v1/realtime"), () => this.session.token, {
      onEvent: (frame) => this.onEvent(frame),
      onStatus: (connection) => {
        const was = this.extra.get().connection;
        this.extra.update((x) => ({ ...x, connection }));
        if (connection === "online" && was !== "online") void this.flushPending();
      },
      onResync: () => void this.loadInbox(),
      onUnauthenticated: () => this.onExpired(),
    });
  }

  start(): void {
    this.socket.start();
    void this.loadInbox();
    void this.loadUsers();
    void this.loadCanned();
    void this.loadDispositions();
    void this.loadRouting();
    this.retryTimer = setInterval(() => void this.flushPending(), 5000);
  }

  stop(): void {
    this.socket.stop();
    if (this.retryTimer) clearInterval(this.retryTimer);
  }

  notify(kind: Notice["kind"], text: string): void {
    const id = ++this.noticeSeq;
    this.extra.update((x) => ({ ...x, notices: [...x.notices.slice(-3), { id, kind, text }] }));
    setTimeout(() => this.dismiss(id), kind === "error" ? 8000 : 4000);
  }

  dismiss(id: number): void {
    this.extra.update((x) => ({ ...x, notices: x.notices.filter((n) => n.id !== id) }));
  }

  private fail(error: unknown): void {
    if (error instanceof ApiError && error.status === 401) return; // the login screen says it
    this.notify("error", error instanceof Error ? error.message : String(error));
  }

  private onEvent(frame: Frame): void {
    this.store.update((s) => S.applyEvent(s, frame));
    const data = frame.data ?? {};
    if (frame.type === "message.created" && data.message?.conversation_id === this.store.get().selected
      && data.message?.sender_kind === "customer") {
      void this.markRead(data.message.conversation_id);
      this.suggestSoon(data.message.conversation_id);
    }
    if (frame.type === "conversation.created" || frame.type === "message.created") {
      const contactId = data.conversation?.contact_id;
      if (contactId) void this.loadContact(contactId);
    }
    if (frame.type.startsWith("routing.offer")) this.onOffer(frame);
    if (frame.type === "routing.agent.updated" && data.agent) {
      const a = data.agent as { agent_id: string; presence: string; presence_reason: string | null };
      if (a.agent_id === this.session.user_id) {
        this.extra.update((x) => ({ ...x, presence: { available: true, status: a.presence, reason: a.presence_reason } }));
      }
      this.extra.update((x) => ({ ...x, agents: x.agents.map((g) => (g.agent_id === a.agent_id
        ? { ...g, presence: a.presence, presence_reason: a.presence_reason } : g)) }));
    }
    if ((frame.type === "routing.task.created" || frame.type === "routing.task.updated") && data.task?.conversation_id) {
      const task = data.task as { conversation_id: string; queue_id: string | null };
      if (task.queue_id) this.extra.update((x) => ({ ...x, taskQueues: { ...x.taskQueues, [task.conversation_id]: task.queue_id! } }));
    }
    if ((frame.type === "csat.submitted" || frame.type === "csat.updated") && data.csat?.conversation_id) {
      const c = data.csat as { conversation_id: string; rating: number; comment: string | null };
      this.extra.update((x) => ({ ...x, csat: { ...x.csat, [c.conversation_id]: { rating: c.rating, comment: c.comment } } }));
    }
    if (frame.type === "routing.queue.stats" && data.stats?.queues) {
      this.extra.update((x) => ({ ...x, stats: data.stats.queues, statsAt: Date.now() }));
    }
  }

  // ---- inbox -------------------------------------------------------------------------------------------

  async loadInbox(): Promise<void> {
    try {
      let cursor: string | null = null;
      const rows: Conversation[] = [];
      for (let i = 0; i < 3; i++) {
        const page: Page<Conversation> = await this.api.get(`/api/v1/conversations${query({
          order: "desc", sort: "last_activity", limit: 100, cursor })}`);
        rows.push(...page.data);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      this.store.update((s) => {
        let next = s;
        const unread = { ...s.unread };
        for (const c of rows) {
          next = S.upsertConversation(next, c);
          if (typeof c.unread_count === "number" && c.id !== s.selected) {
            if (c.unread_count > 0) unread[c.id] = c.unread_count; else delete unread[c.id];
          }
        }
        return { ...next, unread };
      });
      const contactIds = [...new Set(rows.map((c) => c.contact_id))].slice(0, 60);
      await Promise.all(contactIds.map((id) => this.loadContact(id)));
    } catch (error) {
      this.fail(error);
    }
  }

  async loadContact(id: string, force = false): Promise<void> {
    if (!force && this.extra.get().contacts[id]) return;
    try {
      const contact: Contact = await this.api.get(`/api/v1/contacts/${encodeURIComponent(id)}`);
      this.extra.update((x) => ({ ...x, contacts: { ...x.contacts, [id]: contact } }));
    } catch {
      /* a contact we may not read stays nameless */
    }
  }

  async loadUsers(): Promise<void> {
    try {
      const page: Page<{ id: string; display_name: string; role: string }> = await this.api.get("/api/v1/users?limit=200&is_active=true");
      this.extra.update((x) => ({ ...x, users: Object.fromEntries(page.data.map((u) => [u.id, u])) }));
    } catch {
      this.extra.update((x) => ({ ...x, users: { [this.session.user_id]: {
        id: this.session.user_id, display_name: this.session.display_name, role: this.session.role } } }));
    }
  }

  async loadCanned(): Promise<void> {
    try {
      const page: Page<{ shortcut: string; title?: string; body_zh?: string | null; body_en?: string | null; id: string }> =
        await this.api.get("/api/v1/canned-responses?limit=200", { retries: 0 });
      const canned: CannedResponse[] = page.data.flatMap((c) => [
        ...(c.body_zh ? [{ id: c.id, shortcut: c.shortcut, title: c.title, body: c.body_zh, locale: "zh" }] : []),
        ...(c.body_en ? [{ id: c.id, shortcut: c.shortcut, title: c.title, body: c.body_en, locale: "en" }] : []),
      ]);
      this.extra.update((x) => ({ ...x, canned, features: { ...x.features, canned: true } }));
    } catch {
      /* no canned responses on this server: the composer still offers the built-in templates */
    }
  }

  setFilters(change: Partial<S.Filters>): void {
    this.store.update((s) => ({ ...s, filters: { ...s.filters, ...change } }));
    if (change.disposition) void this.loadByDisposition(change.disposition);
  }

  async loadDispositions(): Promise<void> {
    try {
      const list: { data: Disposition[] } = await this.api.get("/api/v1/dispositions?include_inactive=true");
      this.extra.update((x) => ({ ...x, dispositions: list.data }));
    } catch (error) {
      this.fail(error);
    }
  }

  /** Resolved conversations older than the loaded inbox pages: the server filters them by disposition. */
  async loadByDisposition(code: string): Promise<void> {
    try {
      const page: Page<Conversation> = await this.api.get(`/api/v1/conversations${query({ disposition: code,
        limit: 100, sort: "last_activity", order: "desc" })}`);
      this.store.update((s) => page.data.reduce((next, c) => S.upsertConversation(next, c), s));
    } catch {
      /* the list still shows the loaded conversations with this disposition */
    }
  }

  async select(conversationId: string | null): Promise<void> {
    this.store.update((s) => S.select(s, conversationId));
    if (!conversationId) return;
    const conv = this.store.get().conversations[conversationId];
    await this.loadMessages(conversationId);
    void this.markRead(conversationId);
    if (conv) {
      void this.loadContact(conv.contact_id);
      void this.loadHistory(conv.contact_id);
    }
    void this.loadCsat(conversationId);
    void this.loadSuggestions(conversationId);
  }

  async loadMessages(conversationId: string): Promise<void> {
    try {
      let cursor: string | null = null;
      const all: Message[] = [];
      for (let i = 0; i < MAX_PAGES; i++) {
        const page: Page<Message> = await this.api.get(
          `/api/v1/conversations/${conversationId}/messages${query({ limit: 200, cursor })}`);
        all.push(...page.data);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      this.store.update((s) => S.setMessages(s, conversationId, all));
    } catch (error) {
      this.fail(error);
    }
  }

  private suggestTimer: ReturnType<typeof setTimeout> | null = null;

  private suggestSoon(conversationId: string): void {
    if (this.suggestTimer) clearTimeout(this.suggestTimer);
    this.suggestTimer = setTimeout(() => void this.loadSuggestions(conversationId), 800);
  }

  /** The bot's intent and knowledge-base answers for the latest customer messages (both optional). */
  async loadSuggestions(conversationId: string): Promise<void> {
    let items: { id: string; title: string; text: string }[] = [];
    const intent = this.loadIntent(conversationId);
    try {
      const kb: { data: { id: string; question: string; answer_html: string }[] } = await this.api.get(
        `/api/v1/conversations/${conversationId}/kb-suggestions?limit=3`, { retries: 0 });
      items = kb.data.map((s) => ({ id: s.id, title: s.question, text: htmlToText(s.answer_html) }));
    } catch {
      /* no knowledge base */
    }
    await intent;
    this.extra.update((x) => ({ ...x, suggestions: { ...x.suggestions,
      [conversationId]: { intent: x.suggestions[conversationId]?.intent ?? null, items } } }));
  }

  /** The bot's reading of what the customer wants, alone: for an offer card and after a language switch (the
   * knowledge-base answers are the shop's own texts and need no reload). */
  async loadIntent(conversationId: string): Promise<void> {
    let intent: string | null = null;
    try {
      const bot: { turns: { intent?: string | null; intent_title?: string | null }[] } = await this.api.get(
        `/api/v1/bot/conversations/${conversationId}`, { retries: 0 });
      // The newest turn that says what the customer wants ("转人工" or "thanks" do not), by its name in the
      // agent's language (the request's Accept-Language), its code otherwise.
      const turn = [...bot.turns].reverse().find((turn) => turn.intent && !META_INTENTS.has(turn.intent));
      intent = turn ? turn.intent_title ?? turn.intent ?? null : null;
    } catch {
      /* no bot on this conversation */
    }
    this.extra.update((x) => ({ ...x, suggestions: { ...x.suggestions,
      [conversationId]: { intent, items: x.suggestions[conversationId]?.items ?? [] } } }));
  }

  /** After a language switch: the bot's intent names again, for the open conversation and pending offers. */
  relabel(): void {
    const ids = new Set([this.store.get().selected, ...this.extra.get().offers.map((o) => o.conversation_id)]);
    for (const id of ids) if (id && this.extra.get().suggestions[id]) void this.loadIntent(id);
  }

  /** One page of the contact's whole timeline, older than `before` (or the newest page). */
  async loadTimeline(contactId: string, before?: string): Promise<void> {
    try {
      const page: { data: Message[]; conversations: Conversation[]; has_more: boolean } = await this.api.get(
        `/api/v1/contacts/${contactId}/timeline${query({ limit: 50, before })}`);
      this.extra.update((x) => {
        const old = x.timeline[contactId] ?? { messages: [], conversations: {}, hasMore: true };
        const conversations = { ...old.conversations };
        for (const c of page.conversations) conversations[c.id] = c;
        return { ...x, timeline: { ...x.timeline, [contactId]: {
          messages: mergeMessages(old.messages, page.data), conversations, hasMore: page.has_more } } };
      });
    } catch (error) {
      this.fail(error);
    }
  }

  private searchTimer: ReturnType<typeof setTimeout> | null = null;

  /** Searches message bodies on the server (debounced); the list shows local matches meanwhile. */
  search(q: string): void {
    this.setFilters({ search: q });
    if (this.searchTimer) clearTimeout(this.searchTimer);
    const needle = q.trim();
    if (needle.length < 2) {
      this.extra.update((x) => ({ ...x, searchHits: null }));
      return;
    }
    this.searchTimer = setTimeout(async () => {
      try {
        const page: Page<Conversation> = await this.api.get(`/api/v1/conversations${query({ q: needle, limit: 100,
          sort: "last_activity", order: "desc" })}`);
        this.store.update((s) => page.data.reduce((next, c) => S.upsertConversation(next, c), s));
        this.extra.update((x) => ({ ...x, searchHits: { q: needle, ids: page.data.map((c) => c.id) } }));
      } catch {
        /* local matching still works */
      }
    }, 300);
  }

  async loadCsat(conversationId: string): Promise<void> {
    try {
      const page: Page<{ rating: number; comment: string | null }> = await this.api.get(
        `/api/v1/conversations/${conversationId}/csat-ratings`, { retries: 0 });
      const last = page.data[page.data.length - 1];
      if (last) this.extra.update((x) => ({ ...x, csat: { ...x.csat, [conversationId]: last } }));
    } catch {
      /* ratings are optional */
    }
  }

  async loadHistory(contactId: string): Promise<void> {
    try {
      const page: Page<Conversation> = await this.api.get(`/api/v1/contacts/${contactId}/conversations?limit=50`);
      this.extra.update((x) => ({ ...x, history: { ...x.history, [contactId]: page.data } }));
    } catch {
      /* history is a convenience */
    }
  }

  async markRead(conversationId: string): Promise<void> {
    const list = this.store.get().messages[conversationId] ?? [];
    const last = [...list].reverse().find((m) => m.sender_kind === "customer" && !m.pending);
    if (!last || last.delivery_status === "read") return;
    try {
      await this.api.post(`/api/v1/conversations/${conversationId}/read`, { up_to_message_id: last.id });
    } catch {
      /* read receipts are best effort */
    }
  }

  // ---- sending -----------------------------------------------------------------------------------------

  async send(conversationId: string, body: string, isPrivate: boolean, attachments: Attachment[] = []): Promise<void> {
    const clientId = newClientId();
    this.store.update((s) => S.addPending(s, conversationId, clientId, body, isPrivate, new Date(), attachments));
    this.typing(conversationId, false);
    await this.deliver(conversationId, clientId);
  }

  private inFlight = new Set<string>();

  /** Posts one pending message; the client id makes a retry after a network drop safe (no duplicates). */
  private async deliver(conversationId: string, clientId: string): Promise<void> {
    const pending = (this.store.get().messages[conversationId] ?? []).find((m) => m.id === S.pendingId(clientId));
    if (!pending || this.inFlight.has(clientId)) return;
    this.inFlight.add(clientId);
    this.store.update((s) => S.markPending(s, conversationId, clientId, "sending"));
    try {
      const message: Message = await this.api.post(`/api/v1/conversations/${conversationId}/messages`, {
        body: pending.body, private: !!pending.private, client_message_id: clientId,
        attachments: (pending.attachments ?? []).map((a) => (a.id ? { id: a.id } : a)),
      }, { retries: 2 });
      this.store.update((s) => S.setMessages(s, conversationId, [message]));
    } catch (error) {
      this.store.update((s) => S.markPending(s, conversationId, clientId, "failed"));
      if (error instanceof ApiError && !error.transient && error.status !== 401) {
        // A refusal (closed conversation, empty message): retrying will not help, so drop the copy.
        this.store.update((s) => ({ ...s, messages: { ...s.messages, [conversationId]:
          (s.messages[conversationId] ?? []).filter((m) => m.id !== S.pendingId(clientId)) } }));
        this.fail(error);
        throw error;
      }
    } finally {
      this.inFlight.delete(clientId);
    }
  }

  async flushPending(): Promise<void> {
    for (const m of S.pendingMessages(this.store.get())) {
      if (m.pending === "failed" && m.client_message_id) {
        await this.deliver(m.conversation_id, m.client_message_id).catch(() => undefined);
      }
    }
  }

  retry(message: Message): void {
    if (message.client_message_id) void this.deliver(message.conversation_id, message.client_message_id).catch(() => undefined);
  }

  /** Typing frames, at most every 3 s while typing; never for internal notes. */
  typing(conversationId: string, on: boolean, isPrivate = false): void {
    if (isPrivate) return;
    const now = Date.now();
    if (on && now - (this.typingSent[conversationId] ?? 0) < 3000) return;
    if (!on && !this.typingSent[conversationId]) return;
    this.typingSent[conversationId] = on ? now : 0;
    this.socket.send({ type: "typing", data: { conversation_id: conversationId, typing: on } });
  }

  async upload(file: File, conversationId: string): Promise<Attachment> {
    const stored: { id: string; filename: string; content_type: string; size: number; url?: string } =
      await this.api.post(`/api/v1/attachments${query({ filename: file.name, conversation_id: conversationId })}`, file);
    return { id: stored.id, name: stored.filename, content_type: stored.content_type, size: stored.size, url: stored.url };
  }

  // ---- conversation actions ----------------------------------------------------------------------------

  private replace(conv: Conversation): void {
    this.store.update((s) => S.upsertConversation(s, conv));
  }

  async resolve(conversationId: string, disposition?: string): Promise<void> {
    try {
      this.replace(await this.api.post(`/api/v1/conversations/${conversationId}/resolve`,
        disposition ? { disposition } : undefined));
    } catch (error) {
      this.fail(error);
    }
  }

  async reopen(conversationId: string): Promise<void> {
    try {
      this.replace(await this.api.post(`/api/v1/conversations/${conversationId}/reopen`));
    } catch (error) {
      this.fail(error);
    }
  }

  async assign(conversationId: string, assigneeId: string | null): Promise<void> {
    const conv = this.store.get().conversations[conversationId];
    try {
      this.replace(await this.api.patch(`/api/v1/conversations/${conversationId}`, { assignee_id: assigneeId },
        { headers: conv ? { "If-Match": `"${conv.version}"` } : {} }));
    } catch (error) {
      if (error instanceof ApiError && error.code === "version_conflict") {
        const fresh: Conversation = await this.api.get(`/api/v1/conversations/${conversationId}`);
        this.replace(fresh);
      }
      this.fail(error);
    }
  }

  /** The conversation's routing task that is still running, if routing knows it. */
  private async activeTask(conversationId: string): Promise<{ id: string } | null> {
    try {
      const page: Page<{ id: string; status: string }> = await this.api.get(
        `/api/v1/routing/tasks${query({ conversation_id: conversationId, limit: 50 })}`, { retries: 0 });
      return [...page.data].reverse().find((t) => !["completed", "canceled"].includes(t.status)) ?? null;
    } catch {
      return null;
    }
  }

  /** Transfer through routing when the conversation has a task (so capacity and offers stay right). */
  async transfer(conversationId: string, target: { queue_id?: string; agent_id?: string }): Promise<void> {
    const task = this.extra.get().features.routing ? await this.activeTask(conversationId) : null;
    if (!task) {
      if (target.agent_id) await this.assign(conversationId, target.agent_id);
      else this.notify("error", "no routing task for this conversation");
      return;
    }
    try {
      await this.api.post(`/api/v1/routing/tasks/${task.id}/transfer`, target);
      await this.loadConversation(conversationId);
    } catch (error) {
      this.fail(error);
    }
  }

  async addTag(conversationId: string, tag: string): Promise<void> {
    try {
      this.replace(await this.api.put(`/api/v1/conversations/${conversationId}/tags/${encodeURIComponent(tag)}`));
    } catch (error) {
      this.fail(error);
    }
  }

  async removeTag(conversationId: string, tag: string): Promise<void> {
    try {
      this.replace(await this.api.delete(`/api/v1/conversations/${conversationId}/tags/${encodeURIComponent(tag)}`));
    } catch (error) {
      this.fail(error);
    }
  }

  // ---- offers (routing) --------------------------------------------------------------------------------

  private onOffer(frame: Frame): void {
    const data = frame.data ?? {};
    const offer = data.offer;
    if (!offer?.id) return;
    const mine = (offer.agent_id ?? offer.user_id) === this.session.user_id;
    const done = offer.status && offer.status !== "pending";
    if (done) {
      this.extra.update((x) => ({ ...x, offers: x.offers.filter((o) => o.id !== offer.id) }));
      return;
    }
    if (!mine) return;
    const expires = offer.expires_at ? Date.parse(offer.expires_at) : Date.now() + (offer.timeout_seconds ?? 30) * 1000;
    const item: Offer = { id: offer.id, conversation_id: data.conversation_id ?? offer.conversation_id, queue_id: offer.queue_id,
      expires_at: expires, preview: data.conversation?.last_message_preview ?? null };
    this.extra.update((x) => ({ ...x, offers: [...x.offers.filter((o) => o.id !== item.id), item] }));
    announce(item);
    // What the card shows besides the preview: who is asking (the contact) and what for (the bot's intent).
    void this.loadConversation(item.conversation_id).then(() => {
      const conv = this.store.get().conversations[item.conversation_id];
      if (conv) void this.loadContact(conv.contact_id, true);  // fresh: identities may have changed while it waited
    });
    void this.loadIntent(item.conversation_id);
  }

  async setPresence(status: string, reason?: string | null): Promise<void> {
    try {
      const profile: AgentProfile = await this.api.put(`/api/v1/routing/agents/${this.session.user_id}/presence`,
        { presence: status, reason: reason || null });
      this.extra.update((x) => ({ ...x, presence: { available: true, status: profile.presence, reason: profile.presence_reason } }));
    } catch (error) {
      this.fail(error);
    }
  }

  /** Presence, queues and pending offers; a server without routing (or an agent without a profile) hides them. */
  async loadRouting(): Promise<void> {
    try {
      const queues: Page<{ id: string; name: string }> = await this.api.get("/api/v1/routing/queues?limit=200", { retries: 0 });
      this.extra.update((x) => ({ ...x, queues: queues.data.map((q) => ({ id: q.id, name: q.name })),
        features: { ...x.features, routing: true } }));
    } catch {
      return;
    }
    try {
      // Which queue each live conversation is in, for the inbox's queue filter (kept current by task events).
      const map: Record<string, string> = {};
      for (const status of ["waiting", "offered", "assigned"]) {
        const tasks: Page<{ conversation_id: string | null; queue_id: string | null }> =
          await this.api.get(`/api/v1/routing/tasks?status=${status}&limit=200`, { retries: 0 });
        for (const task of tasks.data) if (task.conversation_id && task.queue_id) map[task.conversation_id] = task.queue_id;
      }
      this.extra.update((x) => ({ ...x, taskQueues: { ...map, ...x.taskQueues } }));
    } catch {
      /* the filter then knows only what events tell it */
    }
    try {
      const me: AgentProfile = await this.api.get(`/api/v1/routing/agents/${this.session.user_id}`, { retries: 0 });
      this.extra.update((x) => ({ ...x, presence: { available: true, status: me.presence, reason: me.presence_reason } }));
    } catch {
      /* no routing profile: this user is not routed to */
    }
    try {
      const offers: Page<{ id: string; task_id: string; agent_id: string; queue_id: string | null; expires_at: string; status: string }> =
        await this.api.get("/api/v1/routing/offers?status=pending&agent_id=me");
      for (const o of offers.data) {
        const task: { conversation_id: string | null } = await this.api.get(`/api/v1/routing/tasks/${o.task_id}`);
        if (task.conversation_id) {
          this.onOffer({ type: "routing.offer.created", data: { offer: o, agent_id: o.agent_id, conversation_id: task.conversation_id } });
        }
      }
    } catch {
      /* offers arrive live as well */
    }
  }

  /** Queue statistics and agents for the supervisor view (also refreshed live by routing.queue.stats). */
  async loadSupervisor(): Promise<void> {
    try {
      const stats: { queues: QueueStat[] } = await this.api.get("/api/v1/routing/stats");
      this.extra.update((x) => ({ ...x, stats: stats.queues, statsAt: Date.now() }));
    } catch {
      this.extra.update((x) => ({ ...x, stats: x.stats ?? null }));
    }
    try {
      const waiting: Page<{ queue_id: string | null; created_at: string }> =
        await this.api.get("/api/v1/routing/tasks?status=waiting&limit=200");
      const loose = waiting.data.filter((task) => !task.queue_id);
      this.extra.update((x) => ({ ...x, unrouted: { count: loose.length, oldest: loose[0]?.created_at ?? null } }));
    } catch {
      /* tasks may not be readable */
    }
    try {
      const agents: Page<AgentProfile> = await this.api.get("/api/v1/routing/agents?limit=200");
      this.extra.update((x) => ({ ...x, agents: agents.data }));
    } catch {
      /* no agents list */
    }
  }

  // ---- orders (commerce) -------------------------------------------------------------------------------

  async loadOrders(contactId: string): Promise<void> {
    const before = this.extra.get().orders[contactId];
    const empty: OrdersState = { data: null, loading: false, fetchedAt: 0, degraded: false, error: null, unavailable: false };
    const put = (change: Partial<OrdersState>) => this.extra.update((x) => ({ ...x, orders: { ...x.orders,
      [contactId]: { ...empty, ...x.orders[contactId], ...change } } }));
    put({ loading: true });
    try {
      const page: Page<OrderView> & { degraded?: boolean } = await this.api.get(
        `/api/v1/contacts/${contactId}/orders?limit=20`, { retries: 1 });
      put({ data: page.data, loading: false, fetchedAt: Date.now(), degraded: !!page.degraded, error: null });
    } catch (error) {
      const unavailable = error instanceof ApiError && (error.code === "route_not_found" || error.status === 403);
      put({ loading: false, unavailable, error: error instanceof Error ? error.message : String(error),
        data: before?.data ?? null });
    }
  }

  async orderDetail(orderId: string): Promise<Record<string, any>> {
    return this.api.get(`/api/v1/orders/${orderId}`, { retries: 1 });
  }

  async orderQuote(orderId: string, kind: "refund-quotes" | "price-protection-quotes", body: unknown): Promise<Record<string, any>> {
    return this.api.post(`/api/v1/orders/${orderId}/${kind}`, body);
  }

  /** A commerce action, guarded by the order version and safe to retry (one idempotency key per intent). */
  async orderAction(view: OrderView, path: string, body: unknown, key: string): Promise<Record<string, any>> {
    return this.api.post(`/api/v1/orders/${view.id}/${path}`, body, {
      headers: { "If-Match": `"${view.version}"`, "Idempotency-Key": key }, retries: 2 });
  }

  async loadConversation(id: string): Promise<void> {
    try {
      this.replace(await this.api.get(`/api/v1/conversations/${id}`));
    } catch {
      /* not visible */
    }
  }

  async answerOffer(offer: Offer, accept: boolean): Promise<void> {
    try {
      await this.api.post(`/api/v1/routing/offers/${offer.id}/${accept ? "accept" : "reject"}`, {});
      this.extra.update((x) => ({ ...x, offers: x.offers.filter((o) => o.id !== offer.id) }));
      if (accept) {
        await this.loadConversation(offer.conversation_id);
        await this.select(offer.conversation_id);
      }
    } catch (error) {
      this.extra.update((x) => ({ ...x, offers: x.offers.filter((o) => o.id !== offer.id) }));
      this.fail(error);
    }
  }
}

/** A short beep and a desktop notification for a new offer (both optional: browsers may refuse). */
function announce(offer: Offer): void {
  try {
    const AudioCtx = (globalThis as any).AudioContext;
    if (AudioCtx) {
      const ctx = new AudioCtx();
      const osc = ctx.createOscillator();
      osc.frequency.value = 880;
      osc.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.15);
    }
  } catch {
    /* no sound */
  }
  try {
    const N = (globalThis as any).Notification;
    if (N && N.permission === "granted" && document.hidden) new N("Kefu", { body: offer.preview ?? offer.conversation_id });
  } catch {
    /* no notifications */
  }
}
