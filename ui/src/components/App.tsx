import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, ApiError } from "../api";
import type { Locale } from "../i18n";
import { localeStore, setLocale, useT } from "../locale";
import { loadSession, saveSession } from "../session";
import { useStore } from "../store";
import type { Session } from "../types";
import { Workspace } from "../workspace";
import { ContactPanel } from "./ContactPanel";
import { ConversationView } from "./ConversationView";
import { InboxList } from "./InboxList";
import { Offers } from "./Offers";
import { PresenceSwitch } from "./PresenceSwitch";
import { Supervisor } from "./Supervisor";

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [expired, setExpired] = useState(false);

  const signIn = (s: Session) => {
    saveSession(s);
    setExpired(false);
    setSession(s);
  };
  // Only the session that ended signs out: a request of an earlier, already replaced session that comes back
  // 401 after the agent signed in again must not throw the new session away.
  const signOut = (becauseExpired: boolean, token: string) => {
    if (loadSession()?.token !== token) return;
    saveSession(null);
    setExpired(becauseExpired);
    setSession(null);
  };

  if (!session) return <Login onSignedIn={signIn} expired={expired} />;
  return <WorkspaceScreen key={session.token} session={session} onSignOut={signOut} />;
}

function LanguageSwitch() {
  const { t, locale } = useT();
  return (
    <label class="lang">
      <span class="sr-only">{t("nav.language")}</span>
      <select data-testid="language" aria-label={t("nav.language")} value={locale}
        onChange={(e) => setLocale((e.target as HTMLSelectElement).value as Locale)}>
        <option value="zh">中文</option>
        <option value="en">English</option>
      </select>
    </label>
  );
}

/** Offers show a desktop notification when the tab is hidden, once the agent allowed it. */
function NotifyButton() {
  const { t } = useT();
  const N = (globalThis as { Notification?: { permission: string; requestPermission: () => Promise<string> } }).Notification;
  const [permission, setPermission] = useState(N?.permission ?? "denied");
  if (!N || permission !== "default") return null;
  return (
    <button type="button" class="link" onClick={async () => setPermission(await N.requestPermission())}>
      {t("nav.notifications")}
    </button>
  );
}

function Login({ onSignedIn, expired }: { onSignedIn: (s: Session) => void; expired: boolean }) {
  const { t } = useT();
  const [email, setEmail] = useState(() => localStorage.getItem("kefu.last_email") ?? "");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const api = useMemo(() => new Api({ base: "", token: () => null, locale: () => localeStore.get(),
    onUnauthenticated: () => undefined }), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s: Session = await api.post("/api/v1/auth/login", { email, password }, { retries: 1 });
      localStorage.setItem("kefu.last_email", email);
      onSignedIn(s);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="login-card" onSubmit={submit} aria-labelledby="login-title">
        <div class="login-head">
          <h1 id="login-title">{t("login.title")}</h1>
          <LanguageSwitch />
        </div>
        {expired && <p class="banner warn" role="status" data-testid="expired">{t("login.expired")}</p>}
        <label>{t("login.email")}
          <input type="email" name="email" autocomplete="username" required value={email}
            onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </label>
        <label>{t("login.password")}
          <input type="password" name="password" autocomplete="current-password" required value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        {error && <p class="banner error" role="alert">{t("login.failed")}: {error}</p>}
        <button type="submit" class="primary" disabled={busy}>{busy ? t("login.busy") : t("login.submit")}</button>
      </form>
    </main>
  );
}

function WorkspaceScreen({ session, onSignOut }: { session: Session; onSignOut: (expired: boolean, token: string) => void }) {
  const { t } = useT();
  const ws = useMemo(() => new Workspace(session, () => localeStore.get(), () => onSignOut(true, session.token)), [session.token]);
  const [tab, setTab] = useState<"inbox" | "supervisor">(() =>
    location.hash === "#supervisor" ? "supervisor" : "inbox");
  const extra = useStore(ws.extra);
  const [help, setHelp] = useState(false);

  useEffect(() => {
    ws.start();
    return () => ws.stop();
  }, [ws]);

  // Texts the server words for the agent's language (the bot's intent names) follow a language switch.
  useEffect(() => localeStore.subscribe(() => ws.relabel()), [ws]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
      if (e.key === "?" && !typing) {
        setHelp((h) => !h);
        e.preventDefault();
      }
      if (e.key === "Escape") setHelp(false);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const switchTab = (next: "inbox" | "supervisor") => {
    setTab(next);
    history.replaceState(null, "", next === "supervisor" ? "#supervisor" : "#");
  };

  const logout = async () => {
    try {
      await ws.api.post("/api/v1/auth/logout");
    } catch {
      /* the token is dropped either way */
    }
    onSignOut(false, session.token);
  };

  const canSupervise = session.role === "supervisor" || session.role === "admin";
  return (
    <div class="shell">
      <header class="topbar">
        <h1 class="brand">{t("app.title")}</h1>
        <nav aria-label="main">
          <button type="button" class={tab === "inbox" ? "tab active" : "tab"} aria-pressed={tab === "inbox"}
            data-testid="nav-inbox" onClick={() => switchTab("inbox")}>{t("nav.inbox")}</button>
          {canSupervise && (
            <button type="button" class={tab === "supervisor" ? "tab active" : "tab"} aria-pressed={tab === "supervisor"}
              data-testid="nav-supervisor" onClick={() => switchTab("supervisor")}>{t("nav.supervisor")}</button>
          )}
        </nav>
        <span class={`conn conn-${extra.connection}`} role="status" data-testid="connection" data-state={extra.connection}>
          {t(extra.connection === "online" ? "conn.online" : extra.connection === "connecting" ? "conn.connecting" : "conn.offline")}
        </span>
        <PresenceSwitch ws={ws} />
        <NotifyButton />
        <span class="me" title={session.role}>{session.display_name}</span>
        <LanguageSwitch />
        <button type="button" class="link" onClick={logout} data-testid="logout">{t("nav.logout")}</button>
      </header>
      {tab === "inbox" ? (
        <main class="workspace">
          <InboxList ws={ws} />
          <ConversationView ws={ws} />
          <ContactPanel ws={ws} />
        </main>
      ) : (
        <Supervisor ws={ws} onOpen={(id) => { switchTab("inbox"); void ws.select(id); }} />
      )}
      <Offers ws={ws} />
      <div class="notices" aria-live="polite">
        {extra.notices.map((n) => (
          <div key={n.id} class={`notice ${n.kind}`} role={n.kind === "error" ? "alert" : "status"}>
            <span>{n.text}</span>
            <button type="button" class="link" aria-label={t("common.close")} onClick={() => ws.dismiss(n.id)}>×</button>
          </div>
        ))}
      </div>
      {help && (
        <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="keys-title">
          <h2 id="keys-title">{t("keys.title")}</h2>
          <p>{t("keys.help")}</p>
          <button type="button" onClick={() => setHelp(false)}>{t("common.close")}</button>
        </div>
      )}
    </div>
  );
}
