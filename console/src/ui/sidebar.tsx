/** Beside a conversation: the customer's profile (fields, tags, groups, block), their other
 * conversations, the conversation's tags and private notes. */

import { useState } from "preact/hooks";
import type { ConversationTab } from "../conversation.js";
import { dateTime, t } from "../i18n.js";
import { useModel } from "../observable.js";
import { dateOf } from "../time.js";
import { idOf, stateLabel } from "./common.js";

export function Sidebar({ tab, onOpen, canEdit }: { tab: ConversationTab; onOpen: (name: string) => void; canEdit: boolean }) {
  useModel(tab);
  const [tag, setTag] = useState("");
  const [note, setNote] = useState("");
  const profile = tab.profile;
  const customer = tab.conversation?.customer;
  return (
    <aside class="sidebar">
      <section class="profile">
        <h3>{t("profile.title")}</h3>
        <p class="profile-name">{profile?.displayName || customer?.name || customer?.externalId}</p>
        <dl>
          {customer?.email && (
            <>
              <dt>{t("profile.email")}</dt>
              <dd>{customer.email}</dd>
            </>
          )}
          {customer?.phone && (
            <>
              <dt>{t("profile.phone")}</dt>
              <dd>{customer.phone}</dd>
            </>
          )}
          {tab.conversation && (
            <>
              <dt>{t("profile.channel")}</dt>
              <dd>{tab.conversation.channel}</dd>
            </>
          )}
          {profile?.fields.map((f) => (
            <>
              <dt key={`k-${f.key}`}>{f.label || f.key}</dt>
              <dd key={`v-${f.key}`}>{f.value}</dd>
            </>
          ))}
          {profile && (
            <>
              <dt>{t("profile.previous")}</dt>
              <dd>{profile.previousConversations}</dd>
            </>
          )}
          {profile?.lastAgent && (
            <>
              <dt>{t("profile.lastAgent")}</dt>
              <dd>{idOf(profile.lastAgent)}</dd>
            </>
          )}
        </dl>
        {profile?.block && <p class="blocked">{t("profile.blocked", { reason: profile.block.reason })}</p>}
        {profile && profile.tags.length > 0 && (
          <p class="tags">
            {profile.tags.map((x) => (
              <span class="chip" key={x}>
                {x}
              </span>
            ))}
          </p>
        )}
        {profile && profile.groups.length > 0 && (
          <p class="groups">{profile.groups.map((g) => g.displayName || idOf(g.group)).join(", ")}</p>
        )}
      </section>
      <section class="conversation-tags">
        <h3>{t("tags.title")}</h3>
        <p class="tags">
          {tab.conversation?.tags.map((x) => (
            <span class="chip" key={x}>
              {x}
              {canEdit && (
                <button type="button" class="link" aria-label={t("action.remove")} onClick={() => void tab.updateTags([], [x])}>
                  ×
                </button>
              )}
            </span>
          ))}
        </p>
        {canEdit && (
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              if (tag.trim()) void tab.updateTags([tag.trim()], []).then((ok) => ok && setTag(""));
            }}
          >
            <input class="tag-input" value={tag} placeholder={t("tags.add")} onInput={(e) => setTag(e.currentTarget.value)} />
          </form>
        )}
      </section>
      <section class="notes">
        <h3>{t("notes.title")}</h3>
        <ul>
          {tab.notes.map((n) => {
            const when = dateOf(n.createTime);
            return (
              <li key={n.name} class="note">
                <span>{n.text}</span>
                <small>
                  {idOf(n.author)}
                  {when ? ` · ${dateTime(when)}` : ""}
                </small>
              </li>
            );
          })}
        </ul>
        {canEdit && (
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              if (note.trim()) void tab.addNote(note.trim()).then((ok) => ok && setNote(""));
            }}
          >
            <input class="note-input" value={note} placeholder={t("notes.add")} onInput={(e) => setNote(e.currentTarget.value)} />
          </form>
        )}
      </section>
      <section class="history">
        <h3>{t("history.title")}</h3>
        {tab.history.length === 0 && <p class="empty">{t("history.none")}</p>}
        <ul>
          {tab.history.map((r) => {
            const c = r.conversation!;
            const when = dateOf(c.createTime);
            return (
              <li key={c.name}>
                <button type="button" class="link" onClick={() => onOpen(c.name)}>
                  {when ? dateTime(when) : idOf(c.name)} · {c.channel} · {stateLabel(c.state)}
                </button>
              </li>
            );
          })}
        </ul>
      </section>
    </aside>
  );
}
