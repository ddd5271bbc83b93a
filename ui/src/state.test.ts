import { describe, expect, it } from "vitest";
import {
  addPending, applyEvent, contactLabel, dispositionLabel, initialState, isTyping, markPending, mergeMessages, neighbour, pendingId,
  pendingMessages, select, setMessages, unreadByView, upsertConversation, visibleConversations,
} from "./state";
import type { Conversation, Message } from "./types";

const conv = (id: string, extra: Partial<Conversation> = {}): Conversation => ({
  id, inbox_id: "inb_1", contact_id: `ct_${id}`, channel: "webchat", status: "open", assignee_id: null,
  version: 1, tags: [], created_at: "2026-11-22T01:00:00Z", last_message_at: "2026-11-22T01:00:00Z", ...extra,
});
const msg = (id: string, conversation_id = "conv_a", extra: Partial<Message> = {}): Message => ({
  id, conversation_id, sender_kind: "customer", body: `body ${id}`, created_at: "2026-11-22T01:00:00Z", ...extra,
});
const created = (id: number, m: Message, c: Partial<Conversation> = {}) => ({
  type: "message.created", id, data: { message: m, conversation: { id: m.conversation_id, status: "open", version: 2, ...c } },
});

describe("messages", () => {
  it("keeps each message once, in id order, whatever order they arrive in", () => {
    const merged = mergeMessages([msg("msg_03"), msg("msg_01")], [msg("msg_02"), msg("msg_01"), msg("msg_03")]);
    expect(merged.map((m) => m.id)).toEqual(["msg_01", "msg_02", "msg_03"]);
  });

  it("replaces the pending copy by the server's message with the same client id", () => {
    let s = initialState("usr_me");
    s = addPending(s, "conv_a", "c1", "hello", false);
    expect(s.messages.conv_a[0].pending).toBe("sending");
    s = setMessages(s, "conv_a", [msg("msg_09", "conv_a", { sender_kind: "agent", client_message_id: "c1", body: "hello" })]);
    expect(s.messages.conv_a.map((m) => m.id)).toEqual(["msg_09"]);
    expect(s.messages.conv_a[0].pending).toBeUndefined();
  });

  it("the live event and the REST answer for one reply show it once", () => {
    let s = select(initialState("usr_me"), "conv_a");
    s = addPending(s, "conv_a", "c2", "hi", false);
    const server = msg("msg_10", "conv_a", { sender_kind: "agent", client_message_id: "c2", body: "hi" });
    s = applyEvent(s, created(5, server));
    s = setMessages(s, "conv_a", [server]);
    expect(s.messages.conv_a).toHaveLength(1);
    expect(pendingMessages(s)).toHaveLength(0);
  });

  it("keeps pending messages after the confirmed ones and marks failures for retry", () => {
    let s = addPending(initialState("usr_me"), "conv_a", "c3", "later", false);
    s = setMessages(s, "conv_a", [msg("msg_01")]);
    expect(s.messages.conv_a.map((m) => m.id)).toEqual(["msg_01", pendingId("c3")]);
    s = markPending(s, "conv_a", "c3", "failed");
    expect(pendingMessages(s).map((m) => m.pending)).toEqual(["failed"]);
  });

  it("marks read receipts on the messages named", () => {
    let s = setMessages(select(initialState(), "conv_a"), "conv_a",
      [msg("msg_01", "conv_a", { sender_kind: "agent", delivery_status: "sent" }), msg("msg_02", "conv_a", { sender_kind: "agent", delivery_status: "sent" })]);
    s = applyEvent(s, { type: "message.updated", id: 7, data: { read: { message_ids: ["msg_01"], by: "customer" }, conversation: { id: "conv_a" } } });
    expect(s.messages.conv_a.map((m) => m.delivery_status)).toEqual(["read", "sent"]);
  });
});

describe("conversations", () => {
  it("ignores an older copy arriving after a newer one", () => {
    let s = upsertConversation(initialState(), conv("conv_a", { version: 3, status: "resolved" }));
    s = upsertConversation(s, conv("conv_a", { version: 2, status: "open" }));
    expect(s.conversations.conv_a.status).toBe("resolved");
  });

  it("counts unread customer messages of conversations not on screen, once per message", () => {
    let s = upsertConversation(select(initialState("usr_me"), "conv_b"), conv("conv_a"));
    s = applyEvent(s, created(1, msg("msg_01")));
    s = applyEvent(s, created(2, msg("msg_02")));
    s = applyEvent(s, created(2, msg("msg_02"))); // replayed after a reconnect
    expect(s.unread.conv_a).toBe(2);
    expect(unreadByView(s)).toEqual({ mine: 0, unassigned: 2, all: 2 });
    s = select(s, "conv_a");
    expect(s.unread.conv_a).toBeUndefined();
    s = applyEvent(s, created(3, msg("msg_03")));
    expect(s.unread.conv_a).toBeUndefined();
  });

  it("does not count agent replies or notes as unread", () => {
    let s = upsertConversation(initialState("usr_me"), conv("conv_a"));
    s = applyEvent(s, created(1, msg("msg_01", "conv_a", { sender_kind: "agent" })));
    s = applyEvent(s, created(2, msg("msg_02", "conv_a", { sender_kind: "agent", private: true })));
    expect(s.unread).toEqual({});
  });

  it("creates conversations from events and remembers the last event id", () => {
    const s = applyEvent(initialState(), { type: "conversation.created", id: 41, data: { conversation: conv("conv_n") } });
    expect(Object.keys(s.conversations)).toEqual(["conv_n"]);
    expect(s.lastEventId).toBe(41);
  });

  it("ignores unknown event types", () => {
    const s0 = initialState();
    expect(applyEvent(s0, { type: "something.new", data: {} }).conversations).toEqual({});
  });
});

describe("inbox filters", () => {
  const base = () => {
    let s = initialState("usr_me");
    s = upsertConversation(s, conv("conv_1", { assignee_id: "usr_me", last_message_at: "2026-11-22T01:00:00Z", last_message_preview: "退货" }));
    s = upsertConversation(s, conv("conv_2", { assignee_id: null, channel: "email", last_message_at: "2026-11-22T03:00:00Z", tags: ["vip"] }));
    s = upsertConversation(s, conv("conv_3", { assignee_id: "usr_other", status: "resolved", last_message_at: "2026-11-22T02:00:00Z" }));
    return s;
  };

  it("sorts by latest activity and filters mine / unassigned", () => {
    const s = base();
    expect(visibleConversations(s).map((c) => c.id)).toEqual(["conv_2", "conv_3", "conv_1"]);
    expect(visibleConversations(s, { ...s.filters, view: "mine" }).map((c) => c.id)).toEqual(["conv_1"]);
    expect(visibleConversations(s, { ...s.filters, view: "unassigned" }).map((c) => c.id)).toEqual(["conv_2"]);
  });

  it("filters by status, channel and search text (preview, tags, contact names)", () => {
    const s = base();
    expect(visibleConversations(s, { ...s.filters, status: "resolved" }).map((c) => c.id)).toEqual(["conv_3"]);
    expect(visibleConversations(s, { ...s.filters, channel: "email" }).map((c) => c.id)).toEqual(["conv_2"]);
    expect(visibleConversations(s, { ...s.filters, search: "退货" }).map((c) => c.id)).toEqual(["conv_1"]);
    expect(visibleConversations(s, { ...s.filters, search: "VIP" }).map((c) => c.id)).toEqual(["conv_2"]);
    expect(visibleConversations(s, { ...s.filters, search: "wang" }, { ct_conv_3: "Wang Lei" }).map((c) => c.id)).toEqual(["conv_3"]);
  });

  it("filters by disposition, and a reopen event takes a conversation out of that filter", () => {
    let s = initialState("usr_me");
    s = upsertConversation(s, conv("conv_a", { status: "resolved", disposition: "solved" }));
    s = upsertConversation(s, conv("conv_b", { status: "resolved", disposition: "spam" }));
    s = upsertConversation(s, conv("conv_c"));
    const solved = { ...s.filters, disposition: "solved" };
    expect(visibleConversations(s, solved).map((c) => c.id)).toEqual(["conv_a"]);
    s = applyEvent(s, { type: "conversation.updated", id: 5,
      data: { conversation: conv("conv_a", { status: "open", disposition: null, version: 3 }) } });
    expect(visibleConversations(s, solved)).toEqual([]);
    expect(s.conversations.conv_a.disposition).toBeNull();
  });

  it("labels dispositions in the UI language, unknown codes as they are", () => {
    const list = [{ code: "solved", label_zh: "已解决", label_en: "Solved" }];
    expect(dispositionLabel(list, "solved", "zh")).toBe("已解决");
    expect(dispositionLabel(list, "solved", "en")).toBe("Solved");
    expect(dispositionLabel(list, "legacy_code", "en")).toBe("legacy_code");
  });

  it("moves through the list with the keyboard without running off either end", () => {
    const list = visibleConversations(base());
    expect(neighbour(list, null, 1)).toBe("conv_2");
    expect(neighbour(list, "conv_2", 1)).toBe("conv_3");
    expect(neighbour(list, "conv_1", 1)).toBe("conv_1");
    expect(neighbour(list, "conv_2", -1)).toBe("conv_2");
    expect(neighbour([], null, 1)).toBeNull();
  });
});

describe("typing and labels", () => {
  it("shows the customer typing until a message arrives or 6 s pass", () => {
    let s = applyEvent(initialState(), { type: "conversation.typing", data: { conversation_id: "conv_a", typing: true, sender_kind: "customer" } }, 1000);
    expect(isTyping(s, "conv_a", 2000)).toBe(true);
    expect(isTyping(s, "conv_a", 8000)).toBe(false);
    s = applyEvent(s, created(1, msg("msg_01")), 1500);
    expect(isTyping(s, "conv_a", 2000)).toBe(false);
  });

  it("ignores a colleague's typing", () => {
    const s = applyEvent(initialState(), { type: "conversation.typing", data: { conversation_id: "conv_a", typing: true, sender_kind: "agent" } }, 0);
    expect(isTyping(s, "conv_a", 1)).toBe(false);
  });

  it("names contacts by name, address, shop identity, or a short id", () => {
    expect(contactLabel({ name: "王小明" }, "ct_1")).toBe("王小明");
    expect(contactLabel({ identities: [{ kind: "visitor", value: "vis_1" }, { kind: "external", value: "c123" }] }, "ct_1")).toBe("c123");
    expect(contactLabel(undefined, "ct_01abcdef")).toBe("#abcdef");
  });
});

describe("server search", () => {
  it("shows conversations the server matched by message body even when the page text does not match", () => {
    let s = upsertConversation(initialState("usr_me"), conv("conv_x", { last_message_preview: "thanks" }));
    s = upsertConversation(s, conv("conv_y", { last_message_preview: "bye" }));
    const filters = { ...s.filters, search: "refund" };
    expect(visibleConversations(s, filters)).toEqual([]);
    expect(visibleConversations(s, filters, {}, {}, new Set(["conv_x"])).map((c) => c.id)).toEqual(["conv_x"]);
  });

  it("filters by queue through the routing task map", () => {
    let s = upsertConversation(initialState("usr_me"), conv("conv_x"));
    s = upsertConversation(s, conv("conv_y"));
    const filters = { ...s.filters, queue: "que_1" };
    expect(visibleConversations(s, filters, {}, { conv_y: "que_1" }).map((c) => c.id)).toEqual(["conv_y"]);
  });
});
