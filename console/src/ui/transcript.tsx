/** A conversation's messages: who wrote, when, attachments, the options a bot (or agent)
 * offered and the customer's pick, and the customer's receipts on the agent's messages. */

import { useEffect, useRef } from "preact/hooks";
import { type Message, Sender } from "usher-client/gen/usher/v1/conversation_pb";
import { messageNumber, type ConversationTab } from "../conversation.js";
import { clock, t } from "../i18n.js";
import { dateOf } from "../time.js";
import { idOf } from "./common.js";

const SENDER_CLASS: Record<Sender, string> = {
  [Sender.UNSPECIFIED]: "system",
  [Sender.CUSTOMER]: "customer",
  [Sender.AGENT]: "agent",
  [Sender.BOT]: "bot",
  [Sender.SYSTEM]: "system",
};

function receipt(tab: ConversationTab, message: Message): string {
  if (message.sender !== Sender.AGENT) return "";
  const n = messageNumber(message.name);
  if (n <= tab.readUpTo) return t("message.read");
  if (n <= tab.deliveredUpTo) return t("message.delivered");
  return t("message.sent");
}

function pickedTitle(tab: ConversationTab, message: Message): string {
  if (!message.selectedOptionId) return "";
  for (const m of tab.messages) {
    const option = m.choices?.options.find((o) => o.id === message.selectedOptionId);
    if (option) return option.title;
  }
  return message.selectedOptionId;
}

export function Transcript({ tab }: { tab: ConversationTab }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    // keep the newest in view (scrolling the transcript only, never the page)
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [tab.messages.length, tab.customerTyping]);
  return (
    <div class="transcript" aria-live="polite" ref={box}>
      {tab.messages.map((message) => {
        const kind = SENDER_CLASS[message.sender] ?? "system";
        const when = dateOf(message.createTime);
        const picked = pickedTitle(tab, message);
        return (
          <div key={message.name} class={`msg ${kind}`} data-message={message.name}>
            <div class="msg-body">
              {message.choices?.header && <div class="msg-header">{message.choices.header}</div>}
              <span class="msg-text">{message.text}</span>
              {message.attachments.map((a) => (
                <a key={a.uri} class="attachment" href={a.uri} target="_blank" rel="noopener noreferrer">
                  {a.name || a.uri}
                </a>
              ))}
              {message.choices && message.choices.options.length > 0 && (
                <ul class="choices" aria-label={t("message.options")}>
                  {message.choices.options.map((o) => (
                    <li key={o.id} class="choice" data-option={o.id}>
                      {o.title}
                      {o.description && <small> — {o.description}</small>}
                    </li>
                  ))}
                </ul>
              )}
              {picked && <div class="picked">{t("message.picked", { option: picked })}</div>}
            </div>
            <div class="msg-meta">
              {message.sender === Sender.AGENT && message.agent ? `${idOf(message.agent)} · ` : ""}
              {when ? clock(when) : ""}
              {message.sender === Sender.AGENT && <span class="receipt"> · {receipt(tab, message)}</span>}
            </div>
          </div>
        );
      })}
      {tab.customerTyping && (
        <div class="typing" role="status">
          {t("message.typing")}
        </div>
      )}
    </div>
  );
}
