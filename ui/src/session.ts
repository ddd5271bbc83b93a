/** The signed-in session, kept in localStorage so a reload stays signed in (and a 401 clears it). */
import type { Session } from "./types";

const KEY = "kefu.session";

export function loadSession(storage: Pick<Storage, "getItem"> = localStorage): Session | null {
  try {
    const raw = storage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    if (!session.token || (session.expires_at && Date.parse(session.expires_at) < Date.now())) return null;
    return session;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null, storage: Pick<Storage, "setItem" | "removeItem"> = localStorage) {
  if (session) storage.setItem(KEY, JSON.stringify(session));
  else storage.removeItem(KEY);
}
