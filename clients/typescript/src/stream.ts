/** Event feeds that survive reconnects: resume from the last event id, never repeat one. */

import { Code, ConnectError } from "@connectrpc/connect";
import { type UsherError, usherError } from "./errors.js";
import { backoffMs, type RetryPolicy, sleep } from "./retry.js";

/** Opens the server stream anew, resuming after an event id; ends the call when `signal` aborts. */
export type OpenStream<Resp> = (
  resumeAfterEventId: bigint,
  signal: AbortSignal,
) => Promise<AsyncIterable<Resp>>;

export interface EventStreamOptions {
  /** Where to start: 0 (the default) is a fresh stream. */
  resumeAfterEventId?: bigint;
  retry: RetryPolicy;
  /** Ends the stream (as `close()` does). */
  signal?: AbortSignal;
  /** Told before each reconnect: the error that ended the last attempt (none when the server
   * ended the stream) and the attempt's number (1, 2, ... since something was last received). */
  onReconnect?: (error: UsherError | undefined, attempt: number) => void;
}

/** Transient failures, and the INTERNAL/UNKNOWN a dropped connection can surface as. */
function reconnectable(error: UsherError): boolean {
  return error.retryable || error.code === Code.Internal || error.code === Code.Unknown;
}

/**
 * An endless feed of `Item` that reconnects by itself.
 *
 * `for await (const item of stream)` yields each item once, in order. When the connection drops
 * (or the server ends the stream) it reopens with backoff, asking to resume after
 * `lastEventId`, and drops any item whose event id it has already yielded: no gap, no
 * duplicate. Persist `lastEventId` to resume across reloads. Errors that retrying cannot fix
 * (UNAUTHENTICATED, PERMISSION_DENIED, OUT_OF_RANGE when the resume point is too old...) end
 * the iteration as an `UsherError`. `close()` (or leaving the loop) ends the call.
 */
export class EventStream<Resp, Item> implements AsyncIterable<Item> {
  readonly #open: OpenStream<Resp>;
  readonly #items: (response: Resp) => Iterable<Item>;
  readonly #eventId: ((item: Item) => bigint) | undefined;
  readonly #options: EventStreamOptions;
  readonly #abort = new AbortController();
  #last: bigint;
  #started = false;
  /** How many times the stream was reopened. */
  reconnects = 0;

  constructor(
    open: OpenStream<Resp>,
    items: (response: Resp) => Iterable<Item>,
    eventId: ((item: Item) => bigint) | undefined,
    options: EventStreamOptions,
  ) {
    this.#open = open;
    this.#items = items;
    this.#eventId = eventId;
    this.#options = options;
    this.#last = options.resumeAfterEventId ?? 0n;
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** The event id of the last item yielded (or the resume point given). */
  get lastEventId(): bigint {
    return this.#last;
  }

  /** End the stream: the call is cancelled and the iteration ends without an error. */
  close(): void {
    this.#abort.abort();
  }

  #fresh(item: Item): boolean {
    if (this.#eventId === undefined) return true;
    const id = this.#eventId(item);
    if (id <= this.#last) return false;
    this.#last = id;
    return true;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Item> {
    if (this.#started) throw new Error("an EventStream is iterated once");
    this.#started = true;
    const closed = this.#abort.signal;
    let failures = 0;
    try {
      while (!closed.aborted) {
        const attempt = new AbortController();
        const stop = () => attempt.abort();
        closed.addEventListener("abort", stop, { once: true });
        let error: UsherError | undefined;
        try {
          for await (const response of await this.#open(this.#last, attempt.signal)) {
            for (const item of this.#items(response)) {
              if (this.#fresh(item)) {
                failures = 0;
                yield item;
              }
            }
          }
        } catch (reason) {
          if (closed.aborted) return;
          error = usherError(reason);
          if (!reconnectable(error)) throw error;
        } finally {
          closed.removeEventListener("abort", stop);
          attempt.abort();
        }
        if (closed.aborted) return;
        failures += 1;
        const limit = this.#options.retry.maxStreamReconnects;
        if (limit !== undefined && failures > limit) {
          throw error ?? usherError(new ConnectError("the stream kept ending", Code.Unavailable));
        }
        this.#options.onReconnect?.(error, failures);
        try {
          await sleep(backoffMs(this.#options.retry, failures, error), closed);
        } catch {
          return; // closed while waiting
        }
        this.reconnects += 1;
      }
    } finally {
      this.#abort.abort();
    }
  }
}
