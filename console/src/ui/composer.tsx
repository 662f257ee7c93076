/** The composer: Enter sends, Shift+Enter breaks the line; `/shortcut` finds canned replies
 * (CannedReplyService.SearchCannedReplies) to send with the agent's own words after them; links
 * to files go along as attachments (the API keeps files by reference). A refused message stays
 * in the box with the server's message above it. */

import { useEffect, useState } from "preact/hooks";
import type { CannedReply } from "usher-client/gen/usher/v1/canned_reply_service_pb";
import type { ConversationTab } from "../conversation.js";
import type { Desk } from "../desk.js";
import { locale, t } from "../i18n.js";
import { useModel } from "../observable.js";
import { ProblemBox } from "./common.js";

const TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  pdf: "application/pdf",
  txt: "text/plain",
  csv: "text/csv",
  mp4: "video/mp4",
};

/** A MIME type guessed from a link's file name. */
export function typeOf(uri: string): string {
  const ext = uri.split(/[?#]/)[0]!.split(".").pop()?.toLowerCase() ?? "";
  return TYPES[ext] ?? "application/octet-stream";
}

/** The `/shortcut` being typed: the draft's first word while it starts with `/`. */
export function shortcutOf(draft: string): string | null {
  const match = /^(\/\S*)$/.exec(draft);
  return match ? match[1]! : null;
}

function Paperclip() {
  return (
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
      <path d="M21 12.5l-8.5 8.5a5 5 0 0 1-7-7l9-9a3.5 3.5 0 0 1 5 5l-9 9a2 2 0 0 1-3-3l8-8" />
    </svg>
  );
}

export function Composer({ desk, tab }: { desk: Desk; tab: ConversationTab }) {
  useModel(tab);
  const [replies, setReplies] = useState<CannedReply[]>([]);
  const [chosen, setChosen] = useState(0);
  const [canned, setCanned] = useState<CannedReply | null>(null);
  const [linking, setLinking] = useState(false);
  const [link, setLink] = useState("");
  const shortcut = shortcutOf(tab.draft);

  useEffect(() => {
    if (!shortcut) {
      setReplies([]);
      return undefined;
    }
    let current = true;
    const timer = setTimeout(() => {
      desk.api.canned
        .searchCannedReplies({ query: shortcut, pageSize: 8 })
        .then((answer) => {
          if (!current) return;
          const preferred = answer.cannedReplies.filter(
            (r) => !r.language || locale.language.startsWith(r.language) || r.language.startsWith(locale.language),
          );
          setReplies(preferred.length ? preferred : answer.cannedReplies);
          setChosen(0);
        })
        .catch(() => current && setReplies([]));
    }, 150);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [shortcut]);

  function pick(reply: CannedReply) {
    setCanned(reply);
    setReplies([]);
    tab.typed("");
    tab.emit();
  }

  async function send() {
    const sent = await tab.send(canned ? { cannedReplyId: canned.name.replace("cannedReplies/", "") } : {});
    if (sent) setCanned(null);
  }

  function onKey(e: KeyboardEvent) {
    if (replies.length > 0) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        setChosen((chosen + step + replies.length) % replies.length);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        pick(replies[chosen]!);
        return;
      }
      if (e.key === "Escape") {
        setReplies([]);
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void send();
    }
  }

  function attach(e: Event) {
    e.preventDefault();
    const uri = link.trim();
    if (!uri) return;
    const name = decodeURIComponent(uri.split(/[?#]/)[0]!.split("/").pop() || uri);
    tab.attachments = [...tab.attachments, { name, uri, contentType: typeOf(uri), size: 0n, sha256: "" } as never];
    setLink("");
    setLinking(false);
    tab.emit();
  }

  const disabled = !tab.live;
  return (
    <div class="composer">
      <ProblemBox problem={tab.problem} />
      {replies.length > 0 && (
        <ul class="canned" role="listbox" aria-label={t("canned.title")}>
          {replies.map((reply, i) => (
            <li
              key={reply.name}
              class={`canned-item${i === chosen ? " chosen" : ""}`}
              role="option"
              aria-selected={i === chosen}
              onMouseDown={(e) => {
                e.preventDefault();
                pick(reply);
              }}
            >
              <strong>{reply.shortcut}</strong> {reply.title}
              <small>{reply.text}</small>
            </li>
          ))}
        </ul>
      )}
      {(canned || tab.attachments.length > 0) && (
        <div class="composer-extras">
          {canned && (
            <span class="chip canned-chip">
              {canned.shortcut || canned.title}
              <button type="button" class="link" onClick={() => setCanned(null)} aria-label={t("action.remove")}>
                ×
              </button>
            </span>
          )}
          {tab.attachments.map((a, i) => (
            <span class="chip attachment-chip" key={a.uri}>
              {a.name}
              <button
                type="button"
                class="link"
                aria-label={t("action.remove")}
                onClick={() => {
                  tab.attachments = tab.attachments.filter((_, j) => j !== i);
                  tab.emit();
                }}
              >
                ×
              </button>
            </span>
          ))}
        </div>
      )}
      {linking && (
        <form class="link-form" onSubmit={attach}>
          <input
            class="link-input"
            type="url"
            placeholder="https://…"
            value={link}
            onInput={(e) => setLink(e.currentTarget.value)}
          />
          <button type="submit">{t("attach.add")}</button>
        </form>
      )}
      <div class="composer-row">
        <button
          type="button"
          class="attach"
          title={t("attach.title")}
          disabled={disabled}
          onClick={() => setLinking(!linking)}
        >
          <Paperclip />
        </button>
        <textarea
          class="composer-input"
          rows={2}
          value={tab.draft}
          disabled={disabled}
          placeholder={disabled ? t("composer.readOnly") : t("composer.placeholder")}
          onInput={(e) => tab.typed(e.currentTarget.value)}
          onKeyDown={onKey}
        />
        <button type="button" class="primary send" disabled={disabled || tab.sending} onClick={() => void send()}>
          {t("composer.send")}
        </button>
      </div>
    </div>
  );
}
