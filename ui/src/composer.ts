/** Composer helpers: canned responses by `/shortcut`, draft persistence, limits and client message ids. */

export interface CannedResponse {
  id?: string;
  shortcut: string;
  title?: string;
  body: string;
  locale?: string | null;
}

export const MAX_MESSAGE_LENGTH = 10_000;

/** Canned responses matching a `/short` prefix typed at the start of the composer (best matches first). */
export function matchCanned(text: string, canned: CannedResponse[], locale?: string): CannedResponse[] {
  const m = /^\/(\S*)$/.exec(text.trimStart());
  if (!m) return [];
  const needle = m[1].toLowerCase();
  return canned
    .filter((c) => c.shortcut.toLowerCase().replace(/^\//, "").startsWith(needle)
      || (needle.length > 1 && (c.title ?? "").toLowerCase().includes(needle)))
    .sort((a, b) => Number(b.locale === locale) - Number(a.locale === locale)
      || a.shortcut.localeCompare(b.shortcut))
    .slice(0, 8);
}

/** Fills `{{name}}`-style placeholders of a canned response with what the workspace knows. */
export function fillTemplate(body: string, values: Record<string, string | null | undefined>): string {
  return body.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (whole, name: string) => values[name] ?? whole);
}

export function newClientId(): string {
  const random = Math.random().toString(36).slice(2, 10);
  return `ui-${Date.now().toString(36)}-${random}`;
}

/** Drafts live in localStorage per user and conversation, so an expired session or a reload keeps them. */
export class Drafts {
  constructor(private readonly storage: Pick<Storage, "getItem" | "setItem" | "removeItem">,
    private readonly prefix = "kefu.draft") {}

  private key(user: string, conversation: string) { return `${this.prefix}.${user}.${conversation}`; }

  get(user: string, conversation: string): string {
    return this.storage.getItem(this.key(user, conversation)) ?? "";
  }

  set(user: string, conversation: string, text: string): void {
    if (text) this.storage.setItem(this.key(user, conversation), text);
    else this.storage.removeItem(this.key(user, conversation));
  }
}

export const EMOJI = ["😀", "😊", "🙏", "👍", "🎉", "❤️", "😢", "🤔", "📦", "🚚", "💰", "✅"];
