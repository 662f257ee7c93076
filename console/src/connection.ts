/**
 * Whether the console is reconnecting: a feed that dropped says so (`down`); it is back when it
 * delivers again (`up`) or when a cheap read goes through while it reopens (the SDK's feeds
 * resume after their last event id by themselves, so nothing is lost meanwhile).
 */

import { Observable } from "./observable.js";

const PROBE_EVERY_MS = 2_000;

export class Connection extends Observable {
  readonly #down = new Set<string>();
  #probe: ReturnType<typeof setInterval> | undefined;

  /** `probe` is a cheap call that succeeds when the server answers again. */
  constructor(private readonly check: () => Promise<unknown>) {
    super();
  }

  get reconnecting(): boolean {
    return this.#down.size > 0;
  }

  down(feed: string): void {
    const was = this.reconnecting;
    this.#down.add(feed);
    if (!this.#probe) {
      this.#probe = setInterval(() => {
        this.check().then(
          () => this.#clear(),
          () => undefined,
        );
      }, PROBE_EVERY_MS);
    }
    if (!was) this.emit();
  }

  up(feed: string): void {
    if (this.#down.delete(feed) && this.#down.size === 0) this.#clear();
  }

  #clear(): void {
    clearInterval(this.#probe);
    this.#probe = undefined;
    const was = this.reconnecting;
    this.#down.clear();
    if (was) this.emit();
  }

  stop(): void {
    clearInterval(this.#probe);
    this.#probe = undefined;
  }
}
