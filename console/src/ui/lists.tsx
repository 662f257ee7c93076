/** The lists (tabs) with live counts, a search box, and each list's rows with their actions. */

import { useState } from "preact/hooks";
import type { ConversationRecord } from "usher-client/gen/usher/v1/record_service_pb";
import { type MessageKey, clock, t } from "../i18n.js";
import { ConversationList, type Lists } from "../lists.js";
import { useModel } from "../observable.js";
import { dateOf } from "../time.js";
import { idOf, stateLabel } from "./common.js";

const LIST_KEYS: Record<ConversationList, MessageKey> = {
  [ConversationList.UNSPECIFIED]: "list.mine",
  [ConversationList.MINE]: "list.mine",
  [ConversationList.WAITING]: "list.waiting",
  [ConversationList.TEAM]: "list.team",
  [ConversationList.BOT]: "list.bot",
  [ConversationList.LEFT_MESSAGES]: "list.left",
  [ConversationList.CLOSED_TODAY]: "list.ended",
  [ConversationList.PINNED]: "list.pinned",
  [ConversationList.ACTIVE]: "list.active",
  [ConversationList.WRAP_UP]: "list.wrapUp",
};

export const LIST_SLUGS: Record<ConversationList, string> = {
  [ConversationList.UNSPECIFIED]: "unspecified",
  [ConversationList.MINE]: "mine",
  [ConversationList.WAITING]: "waiting",
  [ConversationList.TEAM]: "team",
  [ConversationList.BOT]: "bot",
  [ConversationList.LEFT_MESSAGES]: "left",
  [ConversationList.CLOSED_TODAY]: "ended",
  [ConversationList.PINNED]: "pinned",
  [ConversationList.ACTIVE]: "active",
  [ConversationList.WRAP_UP]: "wrap-up",
};

export function customerName(record: ConversationRecord): string {
  const c = record.conversation?.customer;
  return c?.name || c?.email || c?.phone || c?.externalId || idOf(record.conversation?.name ?? "");
}

export type RowActions = (list: ConversationList | null, record: ConversationRecord) => preact.JSX.Element | null;

export function ListsPanel({
  lists,
  onOpen,
  actions,
  extraTabs,
}: {
  lists: Lists;
  onOpen: (record: ConversationRecord) => void;
  actions: RowActions;
  extraTabs?: preact.JSX.Element;
}) {
  useModel(lists);
  const [query, setQuery] = useState("");
  const searching = lists.search !== null;
  const rows = searching ? lists.search!.rows : lists.rows(lists.selected);
  return (
    <section class="lists" aria-label={t("lists")}>
      <form
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          void lists.find(query);
        }}
      >
        <input
          class="search-input"
          type="search"
          placeholder={t("search.placeholder")}
          value={query}
          onInput={(e) => {
            setQuery(e.currentTarget.value);
            if (!e.currentTarget.value) void lists.find("");
          }}
        />
      </form>
      <nav class="list-tabs">
        {extraTabs}
        {lists.watched.map((list) => (
          <button
            type="button"
            key={list}
            class={`list-tab list-${LIST_SLUGS[list]}${!searching && list === lists.selected ? " selected" : ""}`}
            onClick={() => lists.select(list)}
          >
            {t(LIST_KEYS[list])}
            <span class="count">{lists.counts.get(list) ?? 0}</span>
          </button>
        ))}
      </nav>
      {searching && <p class="search-title">{t("search.results", { query: lists.search!.query })}</p>}
      <ul class="rows">
        {rows === undefined && <li class="empty">{t("loading")}</li>}
        {rows?.length === 0 && <li class="empty">{t("list.empty")}</li>}
        {rows?.map((record) => {
          const c = record.conversation!;
          const when = dateOf(c.queueTime) ?? dateOf(c.createTime);
          return (
            <li key={c.name} class="row" data-conversation={c.name}>
              <button type="button" class="row-open" onClick={() => onOpen(record)}>
                <span class="row-name">{customerName(record)}</span>
                <span class="row-meta">
                  {c.channel} · {stateLabel(c.state)}
                  {c.owner ? ` · ${idOf(c.owner)}` : ""}
                  {when ? ` · ${clock(when)}` : ""}
                </span>
              </button>
              {actions(searching ? null : lists.selected, record)}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
