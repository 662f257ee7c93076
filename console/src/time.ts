/** Timestamps and durations as the console uses them. */

interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

/** Milliseconds since the epoch of a protobuf Timestamp; 0 when unset. */
export function millis(timestamp: TimestampLike | undefined): number {
  if (!timestamp) return 0;
  return Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6);
}

/** The Date of a protobuf Timestamp, or undefined when unset. */
export function dateOf(timestamp: TimestampLike | undefined): Date | undefined {
  return timestamp ? new Date(millis(timestamp)) : undefined;
}

/** Whole seconds left until `deadline` (ms since the epoch), never below 0. */
export function secondsLeft(deadline: number, now: number = Date.now()): number {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

/** `m:ss` of a number of seconds. */
export function minutesSeconds(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}
