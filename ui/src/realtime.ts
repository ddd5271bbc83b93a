/**
 * The agent WebSocket (`/api/v1/realtime`): register with the session token, resume from the last event
 * seen after every reconnect (so nothing is lost or applied twice), acknowledge what was processed.
 */
import type { Frame } from "./types";

export type ConnectionStatus = "connecting" | "online" | "offline";

export interface SocketHandlers {
  onEvent: (frame: Frame) => void;
  onStatus: (status: ConnectionStatus) => void;
  /** The server could not replay what was missed: reload over REST. */
  onResync: () => void;
  /** Close code 4401: the session expired or was revoked. */
  onUnauthenticated: () => void;
  onFrame?: (frame: Frame) => void;
}

/** Backoff before reconnect attempt `n` (0-based): 0.5 s doubling to 10 s, with jitter. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(10_000, 500 * 2 ** attempt);
  return Math.round(base * (0.75 + random() * 0.5));
}

export class AgentSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private ping: ReturnType<typeof setInterval> | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private lastAcked = 0;
  private frameSeq = 0;
  lastEventId: number | null = null;

  constructor(private readonly url: string, private readonly token: () => string | null,
    private readonly handlers: SocketHandlers) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.ping) clearInterval(this.ping);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Sends a client frame if connected; returns false when it could not be sent. */
  send(frame: Record<string, unknown>): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ id: `f${++this.frameSeq}`, ...frame }));
    return true;
  }

  private connect(): void {
    const token = this.token();
    if (!token || this.stopped) return;
    this.handlers.onStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "register", id: "register", data: { token, resume_from: this.lastEventId } }));
    };
    ws.onmessage = (message) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(message.data));
      } catch {
        return;
      }
      this.handlers.onFrame?.(frame);
      if (frame.type === "registered") {
        this.attempt = 0;
        if (this.lastEventId === null) this.lastEventId = frame.data?.last_event_id ?? 0;
        this.handlers.onStatus("online");
        if (this.ping) clearInterval(this.ping);
        this.ping = setInterval(() => this.send({ type: "ping" }), 25_000);
        return;
      }
      if (frame.type === "resync_required") {
        this.lastEventId = frame.data?.last_event_id ?? this.lastEventId;
        this.handlers.onResync();
        return;
      }
      if (typeof frame.id === "number" && frame.type.includes(".")) {
        if (this.lastEventId !== null && frame.id <= this.lastEventId) return; // replayed twice: skip
        this.lastEventId = frame.id;
        this.handlers.onEvent(frame);
        this.scheduleAck();
        return;
      }
      if (frame.type !== "pong") this.handlers.onEvent(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.ping) clearInterval(this.ping);
      if (this.stopped) return;
      if (event.code === 4401) {
        this.handlers.onStatus("offline");
        this.handlers.onUnauthenticated();
        return;
      }
      this.handlers.onStatus("offline");
      if (event.code === 4403) return;
      this.timer = setTimeout(() => this.connect(), reconnectDelay(this.attempt++));
    };
  }

  private scheduleAck(): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      if (this.lastEventId !== null && this.lastEventId > this.lastAcked) {
        if (this.send({ type: "ack", last_event_id: this.lastEventId })) this.lastAcked = this.lastEventId;
      }
    }, 1000);
  }
}

/** ws:// or wss:// for a path on the page's own host. */
export function socketUrl(location: { protocol: string; host: string }, path: string): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}
