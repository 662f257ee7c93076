/**
 * The supervisor's view: SupervisorService.StreamDashboard's snapshots (queues, and agents by
 * status and load) with a short history for the chart, the tenant's live lists, and one
 * conversation at a time to read, monitor silently (StreamConversation), force-assign or have
 * its routing explained.
 */

import { Code, type EventStream, usherError } from "usher-client";
import type {
  ConversationEvent,
  DashboardSnapshot,
  StreamConversationResponse,
} from "usher-client/gen/usher/v1/supervisor_service_pb";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import type { RoutingDecision } from "usher-client/gen/usher/v1/routing_pb";
import type { Api } from "./api.js";
import { Connection } from "./connection.js";
import { ConversationTab } from "./conversation.js";
import { isSignedOut, type Problem, problemOf, tokenStillWorks } from "./errors.js";
import { closedSince, Lists, SUPERVISOR_LISTS } from "./lists.js";
import { Observable } from "./observable.js";
import { millis } from "./time.js";

/** One point of the chart: the tenant's totals at a snapshot. */
export interface Point {
  time: number;
  waiting: number;
  offered: number;
  load: number;
  capacity: number;
}

const HISTORY = 120;

/** The totals of a snapshot. */
export function pointOf(snapshot: DashboardSnapshot): Point {
  let waiting = 0;
  let offered = 0;
  for (const q of snapshot.queues) {
    waiting += q.waiting;
    offered += q.offered;
  }
  let load = 0;
  let capacity = 0;
  for (const a of snapshot.agents) {
    load += a.load;
    // the capacity that can take work: signed-in agents' (an offline agent's load still counts)
    if (a.status !== AgentStatus.OFFLINE) capacity += a.capacity;
  }
  return { time: millis(snapshot.time), waiting, offered, load, capacity };
}

export class Watchtower extends Observable {
  snapshot: DashboardSnapshot | undefined;
  history: Point[] = [];
  readonly lists: Lists;
  readonly connection: Connection;
  tab: ConversationTab | undefined;
  monitoring = false;
  decisions: RoutingDecision[] | undefined;
  problem: Problem | undefined;
  #dashboard: { close(): void } | undefined;
  #watch: { close(): void } | undefined;
  #monitor: EventStream<StreamConversationResponse, ConversationEvent> | undefined;
  #stopped = false;

  constructor(
    readonly api: Api,
    private readonly onSignedOut: () => void,
  ) {
    super();
    this.lists = new Lists(api.records, SUPERVISOR_LISTS, "");
    this.lists.subscribe(() => this.emit());
    this.connection = new Connection(() => api.records.countConversations({}));
    this.connection.subscribe(() => this.emit());
  }

  readonly signedOut = (reason: unknown): boolean => {
    if (!isSignedOut(reason)) return false;
    this.onSignedOut();
    return true;
  };

  start(): void {
    void this.#runDashboard();
    void this.#runWatch();
    void this.lists.load(this.lists.selected);
  }

  stop(): void {
    this.#stopped = true;
    this.#dashboard?.close();
    this.#watch?.close();
    this.#monitor?.close();
    this.connection.stop();
    this.tab?.close();
  }

  /** The stream ended UNAUTHENTICATED: reopen it (true) when the session's token still works
   * (it was refreshed), else sign out. */
  async #reopen(reason: unknown): Promise<boolean> {
    if (!isSignedOut(reason)) return false;
    if (await tokenStillWorks(() => this.api.records.countConversations({}))) return true;
    this.onSignedOut();
    return false;
  }

  async #runDashboard(): Promise<void> {
    while (!this.#stopped) {
      const feed = this.api.supervisor.dashboard({
        minIntervalMs: 500,
        onReconnect: () => this.connection.down("dashboard"),
      });
      this.#dashboard = feed;
      try {
        for await (const snapshot of feed) {
          this.connection.up("dashboard");
          this.snapshot = snapshot;
          this.history = [...this.history, pointOf(snapshot)].slice(-HISTORY);
          this.emit();
        }
        return;
      } catch (reason) {
        if (this.#stopped || (await this.#reopen(reason))) continue;
        if (!isSignedOut(reason)) {
          this.problem = problemOf(reason);
          this.emit();
        }
        return;
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

  /** Show one conversation (stops monitoring the previous one). */
  open(name: string, customerId = ""): void {
    if (this.tab?.name === name) return;
    void this.stopMonitoring();
    this.tab?.close();
    this.decisions = undefined;
    this.tab = new ConversationTab(name, this.api, "", this.signedOut);
    this.tab.subscribe(() => this.emit());
    void this.tab.load(customerId);
    this.emit();
  }

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

  /** Monitor the open conversation silently: its events stream into the view. */
  async monitor(): Promise<void> {
    const tab = this.tab;
    if (!tab || this.monitoring) return;
    const answer = await this.act(() =>
      this.api.supervisor.monitorConversation({ conversation: tab.name }),
    );
    if (!answer) return;
    this.monitoring = true;
    this.emit();
    let after = 0n;
    while (this.monitoring && this.tab === tab) {
      const feed = this.api.supervisor.conversationEvents(tab.name, {
        resumeAfterEventId: after,
        onReconnect: () => this.connection.down("monitor"),
      });
      this.#monitor = feed;
      try {
        for await (const event of feed) {
          this.connection.up("monitor");
          this.#monitored(tab, event);
        }
        return;
      } catch (reason) {
        if (!this.monitoring || this.tab !== tab) return;
        if (await this.#reopen(reason)) {
          after = feed.lastEventId;
          continue;
        }
        if (!isSignedOut(reason)) {
          this.problem = problemOf(reason);
          this.monitoring = false;
          this.emit();
        }
        return;
      }
    }
  }

  #monitored(tab: ConversationTab, event: ConversationEvent): void {
    const e = event.event;
    if (e.case === "message") tab.onMessage(e.value, true);
    else if (e.case === "updated") {
      tab.conversation = e.value;
      tab.emit();
    } else if (e.case === "note") {
      if (!tab.notes.some((n) => n.name === e.value.name)) tab.notes = [...tab.notes, e.value];
      tab.emit();
    } else if (e.case === "typing" && !e.value.agent) tab.onTyping(e.value.active);
  }

  async stopMonitoring(): Promise<void> {
    if (!this.monitoring || !this.tab) return;
    const name = this.tab.name;
    this.monitoring = false;
    this.#monitor?.close();
    this.emit();
    await this.act(() => this.api.supervisor.stopMonitoring({ conversation: name }));
  }

  async forceAssign(agent: string, overrideCapacity: boolean): Promise<boolean> {
    const tab = this.tab;
    if (!tab) return false;
    const answer = await this.act(() =>
      this.api.supervisor.forceAssign({ conversation: tab.name, agent, overrideCapacity }),
    );
    if (answer?.conversation) {
      tab.conversation = answer.conversation;
      tab.emit();
      return true;
    }
    return false;
  }

  async explain(): Promise<void> {
    const tab = this.tab;
    if (!tab) return;
    const answer = await this.act(() =>
      this.api.supervisor.explainRouting({ conversation: tab.name }),
    );
    this.decisions = answer?.decisions ?? [];
    this.emit();
  }
}
