/**
 * An agent's desk: the feed of AgentService.StreamEvents (offers, messages, transfers,
 * assignment and status changes, typing, receipts, profile changes), the live lists, the open
 * conversation tabs, the status menu, and the offers and transfers waiting for an answer.
 */

import { Code, type EventStream, usherError } from "usher-client";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import type { AgentEvent, StreamEventsResponse } from "usher-client/gen/usher/v1/agent_service_pb";
import { ConversationMode, ConversationState, Outcome } from "usher-client/gen/usher/v1/conversation_pb";
import type { Offer, Transfer } from "usher-client/gen/usher/v1/routing_pb";
import { TransferState } from "usher-client/gen/usher/v1/routing_pb";
import type { CustomStatus } from "usher-client/gen/usher/v1/tenant_pb";
import type { Api } from "./api.js";
import { Connection } from "./connection.js";
import { ConversationTab } from "./conversation.js";
import { isSignedOut, type Problem, problemOf, tokenStillWorks } from "./errors.js";
import { t } from "./i18n.js";
import { AGENT_LISTS, closedSince, type ConversationList, Lists } from "./lists.js";
import { Observable } from "./observable.js";

export interface Notice {
  id: number;
  text: string;
}

const STATUS_KEY = "usher.console.status";

export class Desk extends Observable {
  status: AgentStatus = AgentStatus.UNSPECIFIED;
  customStatus = "";
  customStatuses: CustomStatus[] = [];
  readonly offers = new Map<string, Offer>();
  /** Transfers offered to this agent, by transfer name. */
  readonly incoming = new Map<string, Transfer>();
  /** Transfers this agent requested and that wait for an answer, by conversation. */
  readonly outgoing = new Map<string, Transfer>();
  readonly tabs = new Map<string, ConversationTab>();
  active: string | null = null;
  readonly lists: Lists;
  readonly connection: Connection;
  notices: Notice[] = [];
  /** A refusal of a desk-wide action (status, take, accept...). */
  problem: Problem | undefined;
  #feed: EventStream<StreamEventsResponse, AgentEvent> | undefined;
  #watch: { close(): void } | undefined;
  #stopped = false;
  #noticeId = 0;

  constructor(
    readonly api: Api,
    readonly me: string,
    private readonly onSignedOut: () => void,
    lists: readonly ConversationList[] = AGENT_LISTS,
  ) {
    super();
    this.lists = new Lists(api.records, lists, me);
    this.lists.subscribe(() => this.emit());
    this.connection = new Connection(() => api.records.countConversations({}));
    this.connection.subscribe(() => this.emit());
    const kept = globalThis.sessionStorage?.getItem(STATUS_KEY);
    if (kept) {
      const [status, custom] = JSON.parse(kept) as [AgentStatus, string];
      this.status = status;
      this.customStatus = custom;
    }
  }

  /** A refused call: signed out → back to sign-in (true); else false. */
  readonly signedOut = (reason: unknown): boolean => {
    if (!isSignedOut(reason)) return false;
    this.onSignedOut();
    return true;
  };

  start(): void {
    // signing in to the console signs the agent in to routing (a reload keeps their status)
    if (this.status === AgentStatus.UNSPECIFIED) void this.setStatus(AgentStatus.ONLINE);
    void this.#runFeed();
    void this.#runWatch();
    void this.lists.load(this.lists.selected);
    void this.#openMine();
    void this.api.admin
      .getTenantSettings({})
      .then((answer) => {
        this.customStatuses = answer.settings?.customStatuses ?? [];
        this.emit();
      })
      .catch(() => undefined);
  }

  stop(): void {
    this.#stopped = true;
    this.#feed?.close();
    this.#watch?.close();
    this.connection.stop();
    for (const tab of this.tabs.values()) tab.close();
  }

  notify(text: string): void {
    const id = ++this.#noticeId;
    this.notices = [...this.notices, { id, text }];
    this.emit();
    setTimeout(() => {
      this.notices = this.notices.filter((n) => n.id !== id);
      this.emit();
    }, 8_000);
  }

  /** The stream ended UNAUTHENTICATED: reopen it (true) when the session's token still works
   * (it was refreshed), else sign out. */
  async #reopen(reason: unknown): Promise<boolean> {
    if (!isSignedOut(reason)) return false;
    if (await tokenStillWorks(() => this.api.records.countConversations({}))) return true;
    this.onSignedOut();
    return false;
  }

  async #runFeed(): Promise<void> {
    let after = 0n;
    while (!this.#stopped) {
      const feed = this.api.agent.events({
        resumeAfterEventId: after,
        onReconnect: () => this.connection.down("agent"),
      });
      this.#feed = feed;
      try {
        for await (const event of feed) {
          this.connection.up("agent");
          this.#handle(event);
        }
        return;
      } catch (reason) {
        if (this.#stopped) return;
        if (await this.#reopen(reason)) {
          after = feed.lastEventId;
          continue;
        }
        if (isSignedOut(reason)) return;
        if (usherError(reason).code !== Code.OutOfRange) {
          this.problem = problemOf(reason);
          this.emit();
          return;
        }
        after = 0n; // too far behind to resume: open afresh (the open offers come again)
      }
    }
  }

  async #runWatch(): Promise<void> {
    let after = 0n;
    while (!this.#stopped) {
      const watch = this.api.records.watchLists([...this.lists.watched], {
        resumeAfterEventId: after,
        closedSince: closedSince(this.lists.since),
        onReconnect: () => this.connection.down("lists"),
      });
      this.#watch = watch;
      try {
        for await (const message of watch) {
          this.connection.up("lists");
          this.lists.apply(message);
        }
        return;
      } catch (reason) {
        if (this.#stopped) return;
        if (await this.#reopen(reason)) {
          after = watch.lastEventId;
          continue;
        }
        if (isSignedOut(reason) || usherError(reason).code !== Code.OutOfRange) return;
        after = 0n;
      }
    }
  }

  /** Reopen a tab for each conversation the agent holds (after a reload). */
  async #openMine(): Promise<void> {
    try {
      const page = await this.api.agent.listMyConversations({ pageSize: 100 });
      for (const conversation of page.conversations) this.open(conversation.name, { focus: false });
    } catch (reason) {
      this.signedOut(reason);
    }
  }

  #handle(event: AgentEvent): void {
    const conversation = event.conversation;
    const tab = this.tabs.get(conversation);
    const e = event.event;
    switch (e.case) {
      case "offer":
        this.offers.set(e.value.name, e.value);
        break;
      case "offerRescinded":
        if (this.offers.delete(e.value.offer) && e.value.reason === "expired") {
          this.notify(t("offer.expired"));
        }
        break;
      case "message":
        tab?.onMessage(e.value, this.active === conversation && documentVisible());
        break;
      case "transferRequest":
        this.incoming.set(e.value.name, e.value);
        break;
      case "transferResolved":
        this.#transferResolved(e.value);
        break;
      case "assignmentChanged":
        if (e.value.state === ConversationState.ACTIVE && !tab) {
          this.open(conversation, { focus: this.active === null });
        } else {
          void tab?.load();
        }
        break;
      case "statusChanged":
        this.#setStatus(e.value.status, e.value.customStatus);
        if (e.value.reason === "missed_offers") this.notify(t("status.missedOffers"));
        break;
      case "receipt":
        tab?.onReceipt(e.value);
        break;
      case "typing":
        if (!e.value.agent) tab?.onTyping(e.value.active);
        break;
      case "customerProfileChanged":
        tab?.onProfile(e.value.profile);
        break;
      default:
        return;
    }
    this.emit();
  }

  #transferResolved(transfer: Transfer): void {
    this.incoming.delete(transfer.name);
    const mine = this.outgoing.get(transfer.conversation);
    if (mine?.name === transfer.name) {
      this.outgoing.delete(transfer.conversation);
      const key = {
        [TransferState.ACCEPTED]: "transfer.accepted",
        [TransferState.REJECTED]: "transfer.rejected",
        [TransferState.EXPIRED]: "transfer.expired",
        [TransferState.CANCELLED]: "transfer.cancelled",
      } as const;
      const state = transfer.state as keyof typeof key;
      if (state in key) this.notify(t(key[state]));
    }
    void this.tabs.get(transfer.conversation)?.load();
  }

  #setStatus(status: AgentStatus, custom: string): void {
    this.status = status;
    this.customStatus = custom;
    globalThis.sessionStorage?.setItem(STATUS_KEY, JSON.stringify([status, custom]));
  }

  /** Open (or focus) a conversation's tab. */
  open(name: string, { focus = true, customerId = "" } = {}): ConversationTab {
    let tab = this.tabs.get(name);
    if (!tab) {
      tab = new ConversationTab(name, this.api, this.me, this.signedOut);
      tab.subscribe(() => this.emit());
      this.tabs.set(name, tab);
      void tab.load(customerId);
    }
    if (focus) this.focus(name);
    else this.emit();
    return tab;
  }

  focus(name: string | null): void {
    this.active = name;
    if (name) void this.tabs.get(name)?.markRead();
    this.emit();
  }

  closeTab(name: string): void {
    this.tabs.get(name)?.close();
    this.tabs.delete(name);
    if (this.active === name) this.active = [...this.tabs.keys()].at(-1) ?? null;
    this.emit();
  }

  /** Run a desk-wide action; refused → its message is shown. */
  async act<T>(change: () => Promise<T>): Promise<T | undefined> {
    this.problem = undefined;
    this.emit();
    try {
      return await change();
    } catch (reason) {
      if (!this.signedOut(reason)) {
        this.problem = problemOf(reason);
        this.emit();
      }
      return undefined;
    }
  }

  dismissProblem(): void {
    this.problem = undefined;
    this.emit();
  }

  async setStatus(status: AgentStatus, customStatus = ""): Promise<boolean> {
    const answer = await this.act(() => this.api.agent.setStatus({ status, customStatus }));
    if (!answer) return false;
    this.#setStatus(answer.agent?.status ?? status, answer.agent?.customStatus ?? customStatus);
    this.emit();
    return true;
  }

  async accept(offer: Offer): Promise<void> {
    const answer = await this.act(() => this.api.agent.acceptOffer({ offer: offer.name }));
    this.offers.delete(offer.name);
    if (answer?.conversation) this.open(answer.conversation.name);
    this.emit();
  }

  async reject(offer: Offer): Promise<void> {
    await this.act(() => this.api.agent.rejectOffer({ offer: offer.name }));
    this.offers.delete(offer.name);
    this.emit();
  }

  async take(conversation: string): Promise<void> {
    const answer = await this.act(() => this.api.agent.takeConversation({ conversation }));
    if (answer?.conversation) this.open(answer.conversation.name);
  }

  async takeOver(conversation: string): Promise<void> {
    const answer = await this.act(() =>
      this.api.agent.setConversationMode({ conversation, mode: ConversationMode.LIVE }),
    );
    if (answer?.conversation) this.open(answer.conversation.name);
  }

  async answerTransfer(transfer: Transfer, accept: boolean): Promise<void> {
    const answer = await this.act(() =>
      this.api.agent.answerTransfer({ transfer: transfer.name, accept }),
    );
    this.incoming.delete(transfer.name);
    if (answer && accept) this.open(transfer.conversation);
    this.emit();
  }

  /** Hand a conversation over: to an agent (an offer they answer), a queue or a department. */
  async transfer(
    tab: ConversationTab,
    target: { case: "agent" | "queue" | "department"; value: string },
    note: string,
  ): Promise<boolean> {
    const answer = await tab.act(() =>
      this.api.agent.requestTransfer({ conversation: tab.name, target, note }),
    );
    if (!answer?.transfer) return false;
    if (answer.transfer.state === TransferState.PENDING) {
      this.outgoing.set(tab.name, answer.transfer);
    } else {
      this.notify(t("transfer.done"));
      void tab.refresh();
    }
    this.emit();
    return true;
  }

  async cancelTransfer(tab: ConversationTab): Promise<void> {
    const pending = this.outgoing.get(tab.name);
    if (!pending) return;
    await tab.act(() => this.api.agent.cancelTransfer({ transfer: pending.name }));
    this.outgoing.delete(tab.name);
    this.emit();
  }

  /** End with an outcome: WRAP_UP when the tenant has wrap-up time (finished by
   * `finishWrapUp` or its timer), else CLOSED. */
  async end(tab: ConversationTab, outcome: Outcome): Promise<void> {
    const answer = await tab.act(() =>
      this.api.agent.endConversation({ conversation: tab.name, outcome }),
    );
    if (answer?.conversation) {
      tab.conversation = answer.conversation;
      tab.emit();
    }
  }

  async finishWrapUp(tab: ConversationTab): Promise<void> {
    const answer = await tab.act(() => this.api.agent.finishWrapUp({ conversation: tab.name }));
    if (answer?.conversation) {
      tab.conversation = answer.conversation;
      tab.emit();
    }
  }

  async answerLeftMessage(conversation: string): Promise<void> {
    const answer = await this.act(() => this.api.followUps.answerLeftMessage({ conversation }));
    if (answer?.conversation) this.open(answer.conversation.name);
  }

  async markHandled(conversation: string): Promise<void> {
    await this.act(() => this.api.followUps.markLeftMessageHandled({ conversation, handled: true }));
    this.notify(t("left.handled"));
  }

  async pin(conversation: string, pinned: boolean): Promise<void> {
    if (pinned) await this.act(() => this.api.records.pinConversation({ conversation }));
    else await this.act(() => this.api.records.unpinConversation({ conversation }));
  }
}

function documentVisible(): boolean {
  return globalThis.document?.visibilityState !== "hidden";
}


