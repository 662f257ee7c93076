/** Backoff for retried calls and reconnected streams. */

import type { UsherError } from "./errors.js";

/**
 * Only idempotent calls are retried: reads, and writes that carry an idempotency key. A retry
 * waits `initialBackoffMs * multiplier ** (n - 1)` (capped at `maxBackoffMs`, scaled by a
 * random factor in `[1 - jitter, 1 + jitter]`), or longer if the server's `RetryInfo` asks.
 */
export interface RetryPolicy {
  /** Attempts per unary call in all, the first included; 1 disables retries. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly jitter: number;
  /** Consecutive failed reconnects before a stream gives up; undefined: never. */
  readonly maxStreamReconnects?: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
  multiplier: 2,
  jitter: 0.2,
});

/** Milliseconds to wait before retry number `retry` (1, 2, ...). */
export function backoffMs(policy: RetryPolicy, retry: number, error?: UsherError): number {
  const base = Math.min(
    policy.maxBackoffMs,
    policy.initialBackoffMs * policy.multiplier ** (retry - 1),
  );
  const scaled = base * (1 - policy.jitter + Math.random() * 2 * policy.jitter);
  return Math.max(scaled, error?.retryDelayMs ?? 0);
}

/** Resolve after `ms`, or reject with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
