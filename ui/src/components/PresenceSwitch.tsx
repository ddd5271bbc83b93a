import type { Key } from "../i18n";
import { useT } from "../locale";
import { useStore } from "../store";
import type { Workspace } from "../workspace";

/** Presence values of the routing engine; "not ready" is `away` with a reason, as the supervisor sees it. */
const CHOICES: { value: string; presence: string; reason: string | null; label: Key }[] = [
  { value: "available", presence: "available", reason: null, label: "presence.available" },
  { value: "busy", presence: "busy", reason: null, label: "presence.busy" },
  { value: "away", presence: "away", reason: null, label: "presence.away" },
  { value: "away:lunch", presence: "away", reason: "lunch", label: "presence.reason.lunch" },
  { value: "away:meeting", presence: "away", reason: "meeting", label: "presence.reason.meeting" },
  { value: "away:training", presence: "away", reason: "training", label: "presence.reason.training" },
  { value: "away:after_call", presence: "away", reason: "after_call", label: "presence.reason.after_call" },
  { value: "offline", presence: "offline", reason: null, label: "presence.offline" },
];

export function presenceValue(presence: string, reason?: string | null): string {
  const exact = CHOICES.find((c) => c.presence === presence && c.reason === (reason ?? null));
  return exact ? exact.value : presence;
}

export function PresenceSwitch({ ws }: { ws: Workspace }) {
  const { t } = useT();
  const extra = useStore(ws.extra);
  if (!extra.presence.available) return null;
  const value = presenceValue(extra.presence.status, extra.presence.reason);
  return (
    <label class="presence">
      <span class={`dot dot-${extra.presence.status}`} aria-hidden="true" />
      <span class="sr-only">{t("presence.label")}</span>
      <select aria-label={t("presence.label")} data-testid="presence" value={value}
        onChange={(e) => {
          const choice = CHOICES.find((c) => c.value === (e.target as HTMLSelectElement).value);
          if (choice) void ws.setPresence(choice.presence, choice.reason);
        }}>
        {CHOICES.map((c) => <option key={c.value} value={c.value}>{t(c.label)}</option>)}
        {!CHOICES.some((c) => c.value === value) && <option value={value}>{value}</option>}
      </select>
    </label>
  );
}
