/** Small pieces shared by the views. */

import { useEffect, useState } from "preact/hooks";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import { ConversationState, Outcome } from "usher-client/gen/usher/v1/conversation_pb";
import type { Problem } from "../errors.js";
import { LANGUAGES, locale, type MessageKey, t } from "../i18n.js";
import { useModel } from "../observable.js";
import { minutesSeconds, secondsLeft } from "../time.js";

/** Seconds left until `deadline` (ms since the epoch), ticking. */
export function Countdown({ deadline }: { deadline: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [deadline]);
  const left = secondsLeft(deadline, now);
  return (
    <span class={`countdown${left <= 5 ? " urgent" : ""}`} data-seconds={left}>
      {minutesSeconds(left)}
    </span>
  );
}

/** The server's message for a refused action, with each field it named. */
export function ProblemBox({ problem, onClose }: { problem: Problem | undefined; onClose?: () => void }) {
  if (!problem) return null;
  return (
    <div class="problem" role="alert">
      <span class="problem-message">{problem.message}</span>
      {problem.fields.length > 0 && (
        <ul class="problem-fields">
          {problem.fields.map((f) => (
            <li key={f.field}>
              <code>{f.field}</code>: {f.description}
            </li>
          ))}
        </ul>
      )}
      {onClose && (
        <button type="button" class="link problem-close" onClick={onClose} aria-label={t("action.dismiss")}>
          ×
        </button>
      )}
    </div>
  );
}

export function LanguageMenu() {
  useModel(locale);
  return (
    <label class="language">
      <span class="sr-only">{t("language")}</span>
      <select
        class="language-menu"
        value={locale.language}
        onChange={(e) => locale.set((e.target as HTMLSelectElement).value as typeof locale.language)}
      >
        {LANGUAGES.map((l) => (
          <option key={l.tag} value={l.tag}>
            {l.label}
          </option>
        ))}
      </select>
    </label>
  );
}

const STATUS_KEYS: Record<AgentStatus, MessageKey> = {
  [AgentStatus.UNSPECIFIED]: "status.unknown",
  [AgentStatus.ONLINE]: "status.online",
  [AgentStatus.AWAY]: "status.away",
  [AgentStatus.BREAK]: "status.break",
  [AgentStatus.OFFLINE]: "status.offline",
};

export function statusLabel(status: AgentStatus, custom = ""): string {
  return custom || t(STATUS_KEYS[status] ?? "status.unknown");
}

export function StatusDot({ status }: { status: AgentStatus }) {
  const kind = AgentStatus[status]?.toLowerCase() ?? "unspecified";
  return <span class={`dot status-${kind}`} aria-hidden="true" />;
}

const STATE_KEYS: Record<ConversationState, MessageKey> = {
  [ConversationState.UNSPECIFIED]: "state.unknown",
  [ConversationState.BOT]: "state.bot",
  [ConversationState.QUEUED]: "state.queued",
  [ConversationState.OFFERED]: "state.offered",
  [ConversationState.ACTIVE]: "state.active",
  [ConversationState.WRAP_UP]: "state.wrapUp",
  [ConversationState.CLOSED]: "state.closed",
  [ConversationState.ABANDONED]: "state.abandoned",
};

export function stateLabel(state: ConversationState | undefined): string {
  return t(STATE_KEYS[state ?? ConversationState.UNSPECIFIED] ?? "state.unknown");
}

export const OUTCOMES: { outcome: Outcome; key: MessageKey }[] = [
  { outcome: Outcome.RESOLVED, key: "outcome.resolved" },
  { outcome: Outcome.SPAM, key: "outcome.spam" },
  { outcome: Outcome.IGNORED, key: "outcome.ignored" },
];

/** `agents/ann` → `ann` (a resource name's id). */
export function idOf(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}
