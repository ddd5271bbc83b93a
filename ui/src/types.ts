/** Shapes of the public API, as the workspace reads them (the server's OpenAPI document is the truth). */

export type ConversationStatus = "open" | "pending" | "resolved" | "closed";
export type SenderKind = "customer" | "agent" | "bot" | "system";

export interface Attachment {
  name: string;
  content_type: string;
  size: number;
  url?: string | null;
  id?: string;
}

export interface Conversation {
  id: string;
  inbox_id: string;
  contact_id: string;
  channel: string;
  status: ConversationStatus;
  owner_kind?: string;
  assignee_id: string | null;
  priority?: number;
  subject?: string | null;
  locale?: string | null;
  last_message_at?: string | null;
  last_message_preview?: string | null;
  message_count?: number;
  tags?: string[] | null;
  version: number;
  created_at?: string;
  updated_at?: string;
  resolved_at?: string | null;
  /** How the current resolution ended (a code of the tenant's list); null unless resolved/closed. */
  disposition?: string | null;
  queue_id?: string | null;
  unread_count?: number;
}

/** One code of the tenant's disposition list (`GET /api/v1/dispositions`). */
export interface Disposition {
  code: string;
  label: string;
  label_zh: string;
  label_en: string;
  position: number;
  active: boolean;
}

export interface Message {
  id: string;
  conversation_id: string;
  sender_kind: SenderKind | string;
  sender_id?: string | null;
  body: string;
  content_type?: string;
  attachments?: Attachment[];
  private?: boolean;
  client_message_id?: string | null;
  delivery_status?: string;
  created_at: string;
  /** Local only: a message on its way to the server. */
  pending?: "sending" | "failed";
}

export interface Identity {
  id: string;
  kind: string;
  value: string;
  verified: boolean;
}

export interface Contact {
  id: string;
  name: string | null;
  email: string | null;
  phone: string | null;
  vip_level: number;
  attributes: Record<string, unknown>;
  identities: Identity[];
  version: number;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
  has_more?: boolean;
}

export interface Session {
  token: string;
  expires_at: string;
  user_id: string;
  tenant_id: string;
  role: string;
  locale: string;
  display_name: string;
}

export interface Frame {
  type: string;
  id?: number | string | null;
  created_at?: string;
  data?: Record<string, any>;
  last_event_id?: number;
}
