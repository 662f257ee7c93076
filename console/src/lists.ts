/**
 * The console's lists (tabs) kept live by RecordService.WatchConversationLists: the counts from
 * every message, and each list's rows read (ListConversations) when it is first shown or after a
 * reset, then kept by the changes (entered and updated rows upserted, left rows removed).
 */

import type { RecordClient } from "usher-client";
import { ConversationState } from "usher-client/gen/usher/v1/conversation_pb";
import {
  ConversationList,
  ConversationOrder,
  type ConversationRecord,
  ListChangeKind,
  type WatchConversationListsResponse,
} from "usher-client/gen/usher/v1/record_service_pb";
import { Observable } from "./observable.js";
import { millis } from "./time.js";

export { ConversationList };

export const AGENT_LISTS = [
  ConversationList.MINE,
  ConversationList.WAITING,
  ConversationList.TEAM,
  ConversationList.BOT,
  ConversationList.LEFT_MESSAGES,
  ConversationList.CLOSED_TODAY,
  ConversationList.PINNED,
] as const;

export const SUPERVISOR_LISTS = [
  ConversationList.WAITING,
  ConversationList.ACTIVE,
  ConversationList.WRAP_UP,
  ConversationList.BOT,
  ConversationList.LEFT_MESSAGES,
  ConversationList.CLOSED_TODAY,
  ConversationList.PINNED,
] as const;

/** The console's local midnight: where "ended today" starts. */
export function localMidnight(now: Date = new Date()): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

function timestamp(date: Date) {
  const ms = date.getTime();
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

type WatchOptions = NonNullable<Parameters<RecordClient["watchLists"]>[1]>;

/** A watch's `closedSince` (the feed's options take the message type; a plain object is what
 * the request is built from). */
export function closedSince(date: Date): NonNullable<WatchOptions["closedSince"]> {
  return timestamp(date) as NonNullable<WatchOptions["closedSince"]>;
}

/** The ListConversations request that reads a list's rows (as its count counts them). */
export function listQuery(list: ConversationList, me: string, since: Date) {
  const S = ConversationState;
  const order = ConversationOrder.NEWEST_FIRST;
  switch (list) {
    case ConversationList.MINE:
      return { filter: { owner: me, states: [S.ACTIVE, S.WRAP_UP] }, orderBy: order };
    case ConversationList.WAITING:
      return {
        filter: { states: [S.QUEUED, S.OFFERED] },
        orderBy: ConversationOrder.LONGEST_WAITING_FIRST,
      };
    case ConversationList.TEAM:
      return { filter: { states: [S.ACTIVE, S.WRAP_UP] }, orderBy: order };
    case ConversationList.ACTIVE:
      return { filter: { states: [S.ACTIVE] }, orderBy: order };
    case ConversationList.WRAP_UP:
      return { filter: { states: [S.WRAP_UP] }, orderBy: order };
    case ConversationList.BOT:
      return { filter: { states: [S.BOT] }, orderBy: order };
    case ConversationList.LEFT_MESSAGES:
      return { filter: { states: [S.CLOSED], closeReasons: ["left_message"] }, orderBy: order };
    case ConversationList.CLOSED_TODAY:
      return {
        filter: { states: [S.CLOSED], closeTime: { startTime: timestamp(since) } },
        orderBy: order,
      };
    default:
      return { filter: { pinned: true }, orderBy: order };
  }
}

/** Whether a row read for `list` belongs in it (TEAM is the others' conversations). */
function belongs(list: ConversationList, record: ConversationRecord, me: string): boolean {
  if (list === ConversationList.TEAM) return record.conversation?.owner !== me;
  return true;
}

function sortKey(list: ConversationList, record: ConversationRecord): number {
  const c = record.conversation;
  if (list === ConversationList.WAITING) return millis(c?.queueTime) || millis(c?.createTime);
  return -(millis(c?.closeTime) || millis(c?.assignTime) || millis(c?.createTime));
}

export class Lists extends Observable {
  readonly counts = new Map<ConversationList, number>();
  readonly #rows = new Map<ConversationList, Map<string, ConversationRecord>>();
  readonly #loading = new Set<ConversationList>();
  selected: ConversationList;
  since = localMidnight();
  /** A search's results, shown instead of the selected list while set. */
  search: { query: string; rows: ConversationRecord[] } | null = null;

  constructor(
    private readonly records: RecordClient,
    readonly watched: readonly ConversationList[],
    private readonly me: string,
  ) {
    super();
    this.selected = watched[0]!;
  }

  /** A list's rows in display order; undefined while not read yet. */
  rows(list: ConversationList): ConversationRecord[] | undefined {
    const rows = this.#rows.get(list);
    if (!rows) return undefined;
    return [...rows.values()].sort((a, b) => sortKey(list, a) - sortKey(list, b));
  }

  select(list: ConversationList): void {
    this.selected = list;
    this.search = null;
    this.emit();
    void this.load(list);
  }

  /** Read a list's rows (once; again after a reset). */
  async load(list: ConversationList): Promise<void> {
    if (this.#rows.has(list) || this.#loading.has(list)) return;
    this.#loading.add(list);
    try {
      const page = await this.records.listConversations({
        ...listQuery(list, this.me, this.since),
        pageSize: 100,
      });
      const rows = new Map<string, ConversationRecord>();
      for (const record of page.conversations) {
        const name = record.conversation?.name;
        if (name && belongs(list, record, this.me)) rows.set(name, record);
      }
      this.#rows.set(list, rows);
      this.emit();
    } finally {
      this.#loading.delete(list);
    }
  }

  /** One message of the watch: counts, and a reset or the changes. */
  apply(message: WatchConversationListsResponse): void {
    for (const { list, count } of message.counts) this.counts.set(list, count);
    if (message.reset) {
      this.#rows.clear();
      void this.load(this.selected);
    }
    for (const change of message.changes) {
      const rows = this.#rows.get(change.list);
      const record = change.conversation;
      const name = record?.conversation?.name;
      if (!rows || !record || !name) continue;
      if (change.kind === ListChangeKind.LEFT || !belongs(change.list, record, this.me)) {
        rows.delete(name);
      } else {
        rows.set(name, record);
      }
    }
    this.emit();
  }

  /** Conversations whose customer's name, or any message, has `query` in it. */
  async find(query: string): Promise<void> {
    const text = query.trim();
    if (!text) {
      this.search = null;
      this.emit();
      return;
    }
    const [byName, byText] = await Promise.all([
      this.records.listConversations({ filter: { customerName: text }, pageSize: 50 }),
      this.records.listConversations({ filter: { keyword: text }, pageSize: 50 }),
    ]);
    const found = new Map<string, ConversationRecord>();
    for (const record of [...byName.conversations, ...byText.conversations]) {
      const name = record.conversation?.name;
      if (name) found.set(name, record);
    }
    this.search = { query: text, rows: [...found.values()] };
    this.emit();
  }
}
