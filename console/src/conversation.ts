/**
 * One open conversation (a console tab): its record, transcript, notes, the customer's profile
 * and history, the customer's typing and read receipts, and the agent's unsent draft (kept when
 * the server refuses a message, so nothing typed is lost).
 */

import type { CustomerProfile } from "usher-client/gen/usher/v1/customer_profile_pb";
import {
  type Attachment,
  type Conversation,
  ConversationState,
  type Message,
  type Note,
  type Receipt,
  ReceiptStatus,
  Sender,
} from "usher-client/gen/usher/v1/conversation_pb";
import type { ConversationRecord } from "usher-client/gen/usher/v1/record_service_pb";
import type { Api } from "./api.js";
import { type Problem, problemOf } from "./errors.js";
import { Observable } from "./observable.js";

/** The customer's typing indicator expires after this unless repeated (as the API says). */
const TYPING_EXPIRES_MS = 10_000;
/** The agent's own typing is sent at most this often while they type. */
const TYPING_EVERY_MS = 4_000;
/** ...and is cleared this long after the last key. */
const TYPING_IDLE_MS = 3_000;

/** A message id's number (`conversations/c/messages/42` → 42n), to order receipts. */
export function messageNumber(name: string): bigint {
  const tail = name.slice(name.lastIndexOf("/") + 1);
  return /^\d+$/.test(tail) ? BigInt(tail) : 0n;
}

export class ConversationTab extends Observable {
  conversation: Conversation | undefined;
  messages: Message[] = [];
  notes: Note[] = [];
  profile: CustomerProfile | undefined;
  history: ConversationRecord[] = [];
  customerTyping = false;
  /** Agent messages up to this number were read by the customer (delivered: `deliveredUpTo`). */
  readUpTo = 0n;
  deliveredUpTo = 0n;
  unread = 0;
  draft = "";
  attachments: Attachment[] = [];
  /** The last refusal, shown above the composer until the next attempt. */
  problem: Problem | undefined;
  sending = false;
  loaded = false;
  #typingTimer: ReturnType<typeof setTimeout> | undefined;
  #mineTypingSent = 0;
  #mineTypingStop: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly name: string,
    private readonly api: Api,
    private readonly me: string,
    private readonly signedOut: (reason: unknown) => boolean,
  ) {
    super();
  }

  get mine(): boolean {
    return Boolean(this.me) && this.conversation?.owner === this.me;
  }

  get live(): boolean {
    return this.mine && this.conversation?.state === ConversationState.ACTIVE;
  }

  get customerId(): string {
    return this.profile?.customer ?? "";
  }

  /** Read the conversation, transcript, notes and the customer's history. */
  async load(customerId = ""): Promise<void> {
    try {
      await this.refresh();
      const [messages, notes] = await Promise.all([this.#allMessages(), this.#allNotes()]);
      this.#merge(messages);
      this.notes = notes;
      const customer = this.profile?.customer || (customerId ? `customers/${customerId}` : "");
      if (customer) {
        const history = await this.api.records.listCustomerConversations({ customer, pageSize: 20 });
        this.history = history.conversations.filter((r) => r.conversation?.name !== this.name);
      }
      this.loaded = true;
    } catch (reason) {
      if (!this.signedOut(reason)) this.problem = problemOf(reason);
    }
    this.emit();
  }

  /** Read the conversation's record again (after an assignment change). */
  async refresh(): Promise<void> {
    const { conversation } = await this.api.agent.getConversation({ name: this.name });
    this.conversation = conversation;
    if (conversation?.customerProfile) this.profile = conversation.customerProfile;
    this.emit();
  }

  async #allMessages(): Promise<Message[]> {
    const all: Message[] = [];
    let pageToken = "";
    do {
      const page = await this.api.agent.listMessages({ parent: this.name, pageSize: 500, pageToken });
      all.push(...page.messages);
      pageToken = page.nextPageToken;
    } while (pageToken && all.length < 5_000);
    return all;
  }

  async #allNotes(): Promise<Note[]> {
    const page = await this.api.agent.listNotes({ parent: this.name, pageSize: 500 });
    return page.notes;
  }

  #merge(messages: Message[]): void {
    const known = new Map(this.messages.map((m) => [m.name, m]));
    for (const message of messages) known.set(message.name, message);
    this.messages = [...known.values()].sort((a, b) =>
      messageNumber(a.name) < messageNumber(b.name) ? -1 : messageNumber(a.name) > messageNumber(b.name) ? 1 : 0,
    );
  }

  /** A message from the agent's feed (or an answer to our own send). */
  onMessage(message: Message, focused: boolean): void {
    const fresh = !this.messages.some((m) => m.name === message.name);
    this.#merge([message]);
    if (message.sender === Sender.CUSTOMER) {
      this.customerTyping = false;
      if (fresh && !focused) this.unread += 1;
      if (focused) void this.markRead();
    }
    this.emit();
  }

  onTyping(active: boolean): void {
    clearTimeout(this.#typingTimer);
    this.customerTyping = active;
    if (active) {
      this.#typingTimer = setTimeout(() => {
        this.customerTyping = false;
        this.emit();
      }, TYPING_EXPIRES_MS);
    }
    this.emit();
  }

  onReceipt(receipt: Receipt): void {
    const upTo = messageNumber(receipt.message);
    if (receipt.status === ReceiptStatus.READ && upTo > this.readUpTo) this.readUpTo = upTo;
    if (upTo > this.deliveredUpTo) this.deliveredUpTo = upTo;
    this.emit();
  }

  onProfile(profile: CustomerProfile | undefined): void {
    this.profile = profile;
    this.emit();
  }

  /** The tab is in view: its customer messages are read (MarkRead up to the last one). */
  async markRead(): Promise<void> {
    this.unread = 0;
    const last = [...this.messages].reverse().find((m) => m.sender === Sender.CUSTOMER);
    if (!last || !this.live) return;
    await this.api.agent.markRead({ message: last.name }).catch(() => undefined);
  }

  /** The agent typed in the composer: tell the customer (throttled), and stop after a pause. */
  typed(text: string): void {
    this.draft = text;
    this.emit();
    if (!this.live) return;
    const now = Date.now();
    if (text && now - this.#mineTypingSent > TYPING_EVERY_MS) {
      this.#mineTypingSent = now;
      void this.api.agent
        .notifyTyping({ conversation: this.name, active: true })
        .catch(() => undefined);
    }
    clearTimeout(this.#mineTypingStop);
    this.#mineTypingStop = setTimeout(() => this.#stopTyping(), TYPING_IDLE_MS);
  }

  #stopTyping(): void {
    clearTimeout(this.#mineTypingStop);
    if (!this.#mineTypingSent) return;
    this.#mineTypingSent = 0;
    void this.api.agent
      .notifyTyping({ conversation: this.name, active: false })
      .catch(() => undefined);
  }

  /** Send the draft (or a canned reply with the draft after it, or a bot option's answer);
   * refused → the draft stays and the server's message is shown. */
  async send(options: { cannedReplyId?: string; text?: string } = {}): Promise<boolean> {
    const text = (options.text ?? this.draft).trim();
    if (!text && !options.cannedReplyId && this.attachments.length === 0) return false;
    this.sending = true;
    this.problem = undefined;
    this.emit();
    try {
      const answer = await this.api.agent.sendMessage({
        conversation: this.name,
        text,
        cannedReplyId: options.cannedReplyId ?? "",
        attachments: this.attachments,
      });
      if (answer.message) this.#merge([answer.message]);
      if (options.text === undefined) this.draft = "";
      this.attachments = [];
      this.#stopTyping();
      return true;
    } catch (reason) {
      if (!this.signedOut(reason)) this.problem = problemOf(reason);
      return false;
    } finally {
      this.sending = false;
      this.emit();
    }
  }

  /** Run a change (end, tag, note, transfer...); refused → its message is shown. */
  async act<T>(change: () => Promise<T>): Promise<T | undefined> {
    this.problem = undefined;
    this.emit();
    try {
      const result = await change();
      this.emit();
      return result;
    } catch (reason) {
      if (!this.signedOut(reason)) this.problem = problemOf(reason);
      this.emit();
      return undefined;
    }
  }

  async addNote(text: string): Promise<boolean> {
    const answer = await this.act(() => this.api.agent.addNote({ conversation: this.name, text }));
    if (answer?.note) {
      this.notes = [...this.notes, answer.note];
      this.emit();
      return true;
    }
    return false;
  }

  /** Add and remove tags; false (and the server's message shown) when refused. */
  async updateTags(add: string[], remove: string[]): Promise<boolean> {
    const answer = await this.act(() =>
      this.api.agent.updateTags({ conversation: this.name, addTags: add, removeTags: remove }),
    );
    if (!answer) return false;
    if (this.conversation) this.conversation.tags = answer.tags;
    this.emit();
    return true;
  }

  close(): void {
    clearTimeout(this.#typingTimer);
    this.#stopTyping();
  }
}
