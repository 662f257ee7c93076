/**
 * What every client shares: the bearer credential, deadlines, retries of idempotent calls,
 * errors as `UsherError`, and reconnecting event feeds.
 */

import type {
  DescMessage,
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { type CallOptions, createClient, type Transport } from "@connectrpc/connect";
import { usherError } from "./errors.js";
import { backoffMs, DEFAULT_RETRY, type RetryPolicy, sleep } from "./retry.js";
import { EventStream, type EventStreamOptions } from "./stream.js";

export interface ClientOptions {
  /** The bearer token, or a function that gives the current one (asked before every call and
   * every reconnect, so a console can swap a refreshed token in). */
  token: string | (() => string | Promise<string>);
  /** The default deadline of each unary call attempt in milliseconds (10,000). */
  timeoutMs?: number;
  /** Backoff for retries and reconnects; unset fields keep `DEFAULT_RETRY`'s. */
  retry?: Partial<RetryPolicy>;
}

/** Per-call options: Connect's (`timeoutMs`, `signal`, `headers`...) and `idempotent`, which
 * overrides the client's rule for retrying this call. */
export interface UsherCallOptions extends CallOptions {
  idempotent?: boolean;
}

/** Options of an event feed: where to resume, and what to hear of reconnects. */
export type FeedOptions = Omit<EventStreamOptions, "retry">;

/**
 * A typed client of one service: a method per RPC, named as in the proto in lowerCamelCase,
 * taking the request (a plain object or a message) and returning the response. Unary methods
 * carry the credential and the default deadline and are retried when idempotent; server streams
 * carry the credential (use the named feeds, e.g. `AgentClient.events()`, to resume them).
 */
export type ServiceClient<S extends DescService> = {
  [P in keyof S["method"]]: S["method"][P] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: UsherCallOptions) => Promise<MessageShape<O>>
    : S["method"][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
      : never;
};

const READS = /^(Get|List|Count|Search|Explain|Fetch|Preview|Render)(?![a-z])/;
const IDEMPOTENCY_KEYS = ["requestId", "providerMessageId"] as const;

type Request = Record<string, unknown>;

/** A random (version 4) UUID; `crypto.getRandomValues` works where `randomUUID` does not
 * (pages served over plain http). */
export function uuid4(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function hasField(message: DescMessage, localName: string): boolean {
  return message.fields.some((f) => f.localName === localName && f.fieldKind === "scalar");
}

/** The request with its `requestId` idempotency key set (the caller's, or a fresh UUID), so
 * every attempt of the call carries the same key; requests without one are returned as given. */
export function keyed<R>(method: DescMethod, request: R): R {
  const given = request as Request;
  if (!hasField(method.input, "requestId") || given["requestId"]) return request;
  return { ...given, requestId: uuid4() } as R;
}

/**
 * Whether a call may be retried: a read (Get, List, Count, Search, Explain, Fetch, Preview,
 * Render), or a write that carries an idempotency key (`requestId`, or a customer message's
 * `providerMessageId`, at the top or in `message`): the server answers a repeat with the original.
 */
export function idempotent(method: DescMethod, request: unknown): boolean {
  if (READS.test(method.name)) return true;
  const given = request as Request;
  const nested = given["message"] as Request | undefined;
  return IDEMPOTENCY_KEYS.some((key) => Boolean(given[key]) || Boolean(nested?.[key]));
}

/** The credential, deadline and retry rules of one client; shared by its services. */
export class CallContext {
  readonly transport: Transport;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly #token: ClientOptions["token"];

  constructor(transport: Transport, options: ClientOptions) {
    this.transport = transport;
    this.retry = Object.freeze({ ...DEFAULT_RETRY, ...options.retry });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.#token = options.token;
  }

  /** The call's headers with `authorization: Bearer <token>`. */
  async headers(given?: HeadersInit): Promise<Headers> {
    const headers = new Headers(given);
    const token = typeof this.#token === "function" ? await this.#token() : this.#token;
    headers.set("authorization", `Bearer ${token}`);
    return headers;
  }

  /** One unary call with the credential and deadline; retried with backoff when idempotent
   * and the error is transient. Throws `UsherError`. */
  async unary<I, O>(
    method: DescMethod,
    fn: (request: I, options: CallOptions) => Promise<O>,
    request: I,
    options: UsherCallOptions = {},
  ): Promise<O> {
    const sent = keyed(method, request);
    const retried = options.idempotent ?? idempotent(method, sent);
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(sent, {
          ...options,
          timeoutMs: options.timeoutMs ?? this.timeoutMs,
          headers: await this.headers(options.headers),
        });
      } catch (reason) {
        const error = usherError(reason);
        const again = retried && error.retryable && attempt < this.retry.maxAttempts;
        if (!again || options.signal?.aborted) throw error;
        await sleep(backoffMs(this.retry, attempt, error), options.signal);
      }
    }
  }

  /** One server stream with the credential; its errors are `UsherError`s. */
  async *serverStream<I, O>(
    fn: (request: I, options: CallOptions) => AsyncIterable<O>,
    request: I,
    options: CallOptions = {},
  ): AsyncGenerator<O> {
    try {
      yield* fn(request, { ...options, headers: await this.headers(options.headers) });
    } catch (reason) {
      throw usherError(reason);
    }
  }

  /** A reconnecting feed (see `EventStream`): `request(after)` builds the request that resumes
   * after an event id; `items` and `eventId` read what a response carries. */
  feed<I, O, Item>(
    fn: (request: I, options: CallOptions) => AsyncIterable<O>,
    request: (resumeAfterEventId: bigint) => I,
    items: (response: O) => Iterable<Item>,
    eventId: ((item: Item) => bigint) | undefined,
    options: FeedOptions = {},
  ): EventStream<O, Item> {
    return new EventStream<O, Item>(
      async (after, signal) => this.serverStream(fn, request(after), { signal }),
      items,
      eventId,
      { ...options, retry: this.retry },
    );
  }
}

/** The client of `service` over `context` (see `ServiceClient`). */
export function serviceClient<S extends DescService>(
  service: S,
  context: CallContext,
): ServiceClient<S> {
  const raw = createClient(service, context.transport) as unknown as Record<string, any>;
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = raw[method.localName];
    if (method.methodKind === "unary") {
      client[method.localName] = (request: unknown, options?: UsherCallOptions) =>
        context.unary(method, fn, request, options);
    } else if (method.methodKind === "server_streaming") {
      client[method.localName] = (request: unknown, options?: CallOptions) =>
        context.serverStream(fn, request, options);
    }
  }
  return client as ServiceClient<S>;
}

