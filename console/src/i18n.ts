/**
 * Every string the console shows comes from a message catalog (`locales/`): English, Traditional
 * Chinese, Simplified Chinese and Thai. `t(key, params)` fills `{name}` placeholders. The
 * language is the one chosen in the menu (kept in localStorage), else the browser's.
 */

import { en, type MessageKey } from "./locales/en.js";
import { th } from "./locales/th.js";
import { zhHans } from "./locales/zh-Hans.js";
import { zhHant } from "./locales/zh-Hant.js";
import { Observable } from "./observable.js";

export type { MessageKey };
export type Language = "en" | "zh-Hant" | "zh-Hans" | "th";

export const LANGUAGES: readonly { tag: Language; label: string }[] = [
  { tag: "en", label: "English" },
  { tag: "zh-Hant", label: "繁體中文" },
  { tag: "zh-Hans", label: "简体中文" },
  { tag: "th", label: "ไทย" },
];

const CATALOGS: Record<Language, Record<MessageKey, string>> = {
  en,
  "zh-Hant": zhHant,
  "zh-Hans": zhHans,
  th,
};

const STORAGE_KEY = "usher.console.language";

/** The catalog's language for a BCP 47 tag (`zh-TW` → zh-Hant, `zh-CN` → zh-Hans); none: null. */
export function languageOf(tag: string): Language | null {
  const lower = tag.toLowerCase();
  if (lower.startsWith("th")) return "th";
  if (lower.startsWith("en")) return "en";
  if (lower.startsWith("zh")) {
    if (/hant|-tw|-hk|-mo/.test(lower)) return "zh-Hant";
    return "zh-Hans";
  }
  return null;
}

/** The browser's first language the console has, else English. */
export function browserLanguage(tags: readonly string[]): Language {
  for (const tag of tags) {
    const found = languageOf(tag);
    if (found) return found;
  }
  return "en";
}

class Locale extends Observable {
  language: Language;

  constructor() {
    super();
    const kept = globalThis.localStorage?.getItem(STORAGE_KEY);
    this.language =
      (kept && kept in CATALOGS ? (kept as Language) : null) ??
      browserLanguage(globalThis.navigator?.languages ?? []);
    this.#apply();
  }

  set(language: Language): void {
    this.language = language;
    globalThis.localStorage?.setItem(STORAGE_KEY, language);
    this.#apply();
    this.emit();
  }

  #apply(): void {
    if (globalThis.document) document.documentElement.lang = this.language;
  }
}

export const locale = new Locale();

/** The message `key` in the current language with `{name}` placeholders filled. */
export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const text = CATALOGS[locale.language][key] ?? en[key];
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

/** A time of day in the current language. */
export function clock(date: Date): string {
  return date.toLocaleTimeString(locale.language, { hour: "2-digit", minute: "2-digit" });
}

/** A date and time in the current language. */
export function dateTime(date: Date): string {
  return date.toLocaleString(locale.language, { dateStyle: "medium", timeStyle: "short" });
}
