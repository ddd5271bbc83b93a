/** The current language as a store, so every component re-renders when the user switches it. */
import { detectLocale, type Key, type Locale, translate } from "./i18n";
import { Store, useStore } from "./store";

const stored = typeof localStorage !== "undefined" ? localStorage.getItem("kefu.locale") : null;
export const localeStore = new Store<Locale>(
  detectLocale(typeof navigator !== "undefined" ? navigator.languages : [], stored));

export function setLocale(locale: Locale): void {
  localStorage.setItem("kefu.locale", locale);
  document.documentElement.lang = locale === "zh" ? "zh-CN" : "en";
  localeStore.update(() => locale);
}

export type T = (key: Key, params?: Record<string, string | number>) => string;

export function useT(): { t: T; locale: Locale } {
  const locale = useStore(localeStore);
  return { t: (key, params) => translate(locale, key, params), locale };
}
