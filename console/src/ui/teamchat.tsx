/** The team chat drawer: colleagues with their presence (a click opens the direct thread),
 * the threads, the open thread's messages, and a form for a new group. */

import { useState } from "preact/hooks";
import { clock, t } from "../i18n.js";
import { useModel } from "../observable.js";
import { type TeamChat, TeamMessageKind, TeamThreadKind } from "../teamchat.js";
import { dateOf } from "../time.js";
import { ProblemBox, StatusDot, statusLabel } from "./common.js";

function NewGroup({ chat, onDone }: { chat: TeamChat; onDone: () => void }) {
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState<string[]>([]);
  const others = [...chat.colleagues.values()].filter((c) => c.name !== chat.me);
  return (
    <form
      class="new-group"
      onSubmit={(e) => {
        e.preventDefault();
        void chat.group(title.trim(), members).then((ok) => ok && onDone());
      }}
    >
      <input class="group-title" placeholder={t("team.groupTitle")} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
      <div class="group-members">
        {others.map((c) => (
          <label key={c.name} class="check">
            <input
              type="checkbox"
              checked={members.includes(c.name)}
              onChange={(e) =>
                setMembers(e.currentTarget.checked ? [...members, c.name] : members.filter((m) => m !== c.name))
              }
            />
            {c.displayName}
          </label>
        ))}
      </div>
      <button type="submit" class="primary create-group" disabled={!title.trim() || members.length === 0}>
        {t("team.createGroup")}
      </button>
    </form>
  );
}

export function TeamChatPanel({ chat, onClose }: { chat: TeamChat; onClose: () => void }) {
  useModel(chat);
  const [draft, setDraft] = useState("");
  const [grouping, setGrouping] = useState(false);
  const thread = chat.openThread ? chat.threads.get(chat.openThread) : undefined;
  const messages = chat.openThread ? (chat.messages.get(chat.openThread) ?? []) : [];
  const colleagues = [...chat.colleagues.values()].filter((c) => c.name !== chat.me);

  async function send(e: Event) {
    e.preventDefault();
    if (await chat.send(draft)) setDraft("");
  }

  return (
    <aside class="team-chat" aria-label={t("team.title")}>
      <header>
        <h3>{t("team.title")}</h3>
        <button type="button" class="link" onClick={onClose} aria-label={t("action.close")}>
          ×
        </button>
      </header>
      <div class="team-body">
        <div class="team-index">
          <h4>{t("team.colleagues")}</h4>
          <ul class="team-colleagues">
            {colleagues.map((c) => (
              <li key={c.name} data-agent={c.name}>
                <button type="button" class="link colleague-open" onClick={() => void chat.direct(c.name)}>
                  <StatusDot status={c.status} /> {c.displayName}
                </button>
                <small>{statusLabel(c.status, c.customStatus)}</small>
              </li>
            ))}
          </ul>
          <h4>
            {t("team.threads")}
            <button type="button" class="link new-group-toggle" onClick={() => setGrouping(!grouping)}>
              {t("team.newGroup")}
            </button>
          </h4>
          {grouping && <NewGroup chat={chat} onDone={() => setGrouping(false)} />}
          <ul class="team-threads">
            {chat.sortedThreads.map((th) => (
              <li key={th.name}>
                <button
                  type="button"
                  class={`link thread-open${th.name === chat.openThread ? " selected" : ""}`}
                  onClick={() => void chat.open(th.name)}
                >
                  {th.kind === TeamThreadKind.GROUP ? "# " : ""}
                  {chat.title(th)}
                  {(chat.unread.get(th.name) ?? 0) > 0 && <span class="count unread">{chat.unread.get(th.name)}</span>}
                </button>
              </li>
            ))}
          </ul>
        </div>
        <div class="team-thread">
          {!thread && <p class="placeholder">{t("team.pick")}</p>}
          {thread && (
            <>
              <h4 class="thread-title">{chat.title(thread)}</h4>
              <div class="team-messages">
                {messages.map((m) => {
                  const when = dateOf(m.createTime);
                  const who = chat.colleagues.get(m.sender)?.displayName ?? m.sender.replace("agents/", "");
                  if (m.kind === TeamMessageKind.THREAD_CREATED) {
                    return (
                      <p key={m.name} class="team-msg system">
                        {t("team.created", { agent: who })}
                      </p>
                    );
                  }
                  return (
                    <p key={m.name} class={`team-msg${m.sender === chat.me ? " mine" : ""}`}>
                      <strong>{who}</strong> <small>{when ? clock(when) : ""}</small>
                      <br />
                      <span class="team-text">{m.text}</span>
                    </p>
                  );
                })}
              </div>
              <ProblemBox problem={chat.problem} />
              <form class="team-compose" onSubmit={send}>
                <input class="team-input" value={draft} placeholder={t("team.write")} onInput={(e) => setDraft(e.currentTarget.value)} />
                <button type="submit" class="primary team-send">
                  {t("composer.send")}
                </button>
              </form>
            </>
          )}
        </div>
      </div>
    </aside>
  );
}
