/**
 * Internal chat between agents (TeamChatService): direct and group threads, their messages,
 * and colleagues' presence. StreamTeamChat brings new messages (resumed after the last
 * `message_id` on a reconnect) and status changes; the colleagues are read again after each
 * reconnect, since status changes are not replayed.
 */

import { Code, DEFAULT_RETRY, EventStream, usherError } from "usher-client";
import {
  type StreamTeamChatResponse,
  type TeamMessage,
  TeamMessageKind,
  type TeamThread,
  TeamThreadKind,
} from "usher-client/gen/usher/v1/team_chat_service_pb";
import type { Api } from "./api.js";
import type { Connection } from "./connection.js";
import { type Colleague, readColleagues } from "./directory.js";
import { isSignedOut, type Problem, problemOf, tokenStillWorks } from "./errors.js";
import { Observable } from "./observable.js";
import { millis } from "./time.js";

export { TeamMessageKind, TeamThreadKind };

export class TeamChat extends Observable {
  /** False when the credential names no agent (an admin's API token): no team chat. */
  available = true;
  readonly threads = new Map<string, TeamThread>();
  readonly messages = new Map<string, TeamMessage[]>();
  readonly unread = new Map<string, number>();
  colleagues = new Map<string, Colleague>();
  openThread: string | null = null;
  /** Whether the panel is shown (messages in the open thread count as read then). */
  shown = false;
  problem: Problem | undefined;
  #lastId = 0n;
  #stream: EventStream<StreamTeamChatResponse, StreamTeamChatResponse> | undefined;
  #stopped = false;

  constructor(
    private readonly api: Api,
    readonly me: string,
    private readonly connection: Connection,
    private readonly onSignedOut: () => void,
  ) {
    super();
    let was = connection.reconnecting;
    connection.subscribe(() => {
      if (was && !connection.reconnecting) void this.loadColleagues();
      was = connection.reconnecting;
    });
  }

  get totalUnread(): number {
    let n = 0;
    for (const count of this.unread.values()) n += count;
    return n;
  }

  /** Threads, the most recently active first. */
  get sortedThreads(): TeamThread[] {
    const last = (t: TeamThread) => {
      const kept = this.messages.get(t.name)?.at(-1);
      return millis(kept?.createTime) || millis(t.lastMessage?.createTime) || millis(t.createTime);
    };
    return [...this.threads.values()].sort((a, b) => last(b) - last(a));
  }

  async start(): Promise<void> {
    try {
      const page = await this.api.teamChat.listThreads({ pageSize: 100 });
      for (const thread of page.threads) {
        this.threads.set(thread.name, thread);
        const id = thread.lastMessage?.messageId ?? 0n;
        if (id > this.#lastId) this.#lastId = id;
      }
      await this.loadColleagues();
    } catch (reason) {
      if (usherError(reason).code === Code.PermissionDenied) {
        this.available = false;
        this.emit();
        return;
      }
      if (isSignedOut(reason)) return this.onSignedOut();
    }
    this.emit();
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#stream?.close();
  }

  async loadColleagues(): Promise<void> {
    const colleagues = await readColleagues(this.api).catch(() => null);
    if (!colleagues) return;
    this.colleagues = new Map(colleagues.map((c) => [c.name, c]));
    this.emit();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const stream = new EventStream<StreamTeamChatResponse, StreamTeamChatResponse>(
        async (_, signal) =>
          this.api.teamChat.streamTeamChat({ resumeAfterMessageId: this.#lastId }, { signal }),
        (response) => [response],
        undefined,
        { retry: DEFAULT_RETRY, onReconnect: () => this.connection.down("team") },
      );
      this.#stream = stream;
      try {
        for await (const item of stream) {
          this.connection.up("team");
          this.#handle(item);
        }
        return;
      } catch (reason) {
        if (this.#stopped) return;
        if (isSignedOut(reason)) {
          if (await tokenStillWorks(() => this.api.teamChat.listThreads({ pageSize: 1 }))) continue;
          this.onSignedOut();
        }
        return;
      }
    }
  }

  #handle(response: StreamTeamChatResponse): void {
    const item = response.item;
    if (item.case === "presence") {
      const known = this.colleagues.get(item.value.agent);
      if (known) {
        this.colleagues.set(item.value.agent, {
          ...known,
          status: item.value.status,
          customStatus: item.value.customStatus,
        });
      } else {
        void this.loadColleagues();
      }
    } else if (item.case === "message") {
      const message = item.value;
      if (message.messageId <= this.#lastId && this.#known(message)) return;
      if (message.messageId > this.#lastId) this.#lastId = message.messageId;
      if (response.thread) this.threads.set(response.thread.name, response.thread);
      this.#add(message);
      const reading = this.shown && this.openThread === message.thread;
      if (message.sender !== this.me && !reading && message.kind === TeamMessageKind.TEXT) {
        this.unread.set(message.thread, (this.unread.get(message.thread) ?? 0) + 1);
      }
      if (!this.threads.has(message.thread)) void this.#refreshThreads();
    }
    this.emit();
  }

  #known(message: TeamMessage): boolean {
    return this.messages.get(message.thread)?.some((m) => m.name === message.name) ?? false;
  }

  #add(message: TeamMessage): void {
    const kept = this.messages.get(message.thread);
    if (!kept) return; // read in full when the thread is opened
    if (!kept.some((m) => m.name === message.name)) {
      kept.push(message);
      kept.sort((a, b) => (a.messageId < b.messageId ? -1 : 1));
    }
  }

  async #refreshThreads(): Promise<void> {
    const page = await this.api.teamChat.listThreads({ pageSize: 100 }).catch(() => null);
    if (!page) return;
    for (const thread of page.threads) this.threads.set(thread.name, thread);
    this.emit();
  }

  async open(thread: string): Promise<void> {
    this.openThread = thread;
    this.unread.delete(thread);
    this.emit();
    if (this.messages.has(thread)) return;
    try {
      const page = await this.api.teamChat.listTeamMessages({ thread, pageSize: 200 });
      const known = this.messages.get(thread) ?? [];
      const merged = new Map([...page.messages, ...known].map((m) => [m.name, m]));
      this.messages.set(
        thread,
        [...merged.values()].sort((a, b) => (a.messageId < b.messageId ? -1 : 1)),
      );
    } catch (reason) {
      if (isSignedOut(reason)) return this.onSignedOut();
      this.problem = problemOf(reason);
    }
    this.emit();
  }

  show(shown: boolean): void {
    this.shown = shown;
    if (shown && this.openThread) this.unread.delete(this.openThread);
    this.emit();
  }

  /** The direct thread with a colleague (created, or the existing one), opened. */
  async direct(agent: string): Promise<void> {
    const thread = await this.#act(() =>
      this.api.teamChat.createThread({ kind: TeamThreadKind.DIRECT, members: [agent] }),
    );
    if (thread?.thread) {
      this.threads.set(thread.thread.name, thread.thread);
      await this.open(thread.thread.name);
    }
  }

  async group(title: string, members: string[]): Promise<boolean> {
    const thread = await this.#act(() =>
      this.api.teamChat.createThread({ kind: TeamThreadKind.GROUP, members, title }),
    );
    if (!thread?.thread) return false;
    this.threads.set(thread.thread.name, thread.thread);
    await this.open(thread.thread.name);
    return true;
  }

  /** Send in the open thread; refused → the server's message, and the text stays typed. */
  async send(text: string): Promise<boolean> {
    const thread = this.openThread;
    if (!thread || !text.trim()) return false;
    const answer = await this.#act(() => this.api.teamChat.sendTeamMessage({ thread, text }));
    if (!answer?.message) return false;
    if (!this.messages.has(thread)) this.messages.set(thread, []);
    this.#add(answer.message);
    this.emit();
    return true;
  }

  async #act<T>(change: () => Promise<T>): Promise<T | undefined> {
    this.problem = undefined;
    try {
      return await change();
    } catch (reason) {
      if (isSignedOut(reason)) this.onSignedOut();
      else this.problem = problemOf(reason);
      this.emit();
      return undefined;
    }
  }

  /** A thread's name as people see it: a group's title, or the other member's name. */
  title(thread: TeamThread): string {
    if (thread.kind === TeamThreadKind.GROUP) return thread.title;
    const other = thread.members.find((m) => m !== this.me) ?? thread.members[0] ?? "";
    return this.colleagues.get(other)?.displayName ?? other.replace("agents/", "");
  }
}
