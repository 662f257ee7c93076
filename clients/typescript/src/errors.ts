/**
 * Errors: Usher answers a refused call with a `google.rpc.Status` — a canonical code, a message
 * and details. `UsherError` is the `ConnectError` every client method throws, with the details
 * decoded: `fieldViolations` (INVALID_ARGUMENT's `BadRequest`), `reason` (`ErrorInfo`),
 * `quotaViolations` (RESOURCE_EXHAUSTED's `QuotaFailure`), `retryDelayMs` (`RetryInfo`),
 * `resourceInfo` (NOT_FOUND / ALREADY_EXISTS) and `preconditionViolations`.
 */

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
  type BadRequest_FieldViolation,
  type ErrorInfo,
  type PreconditionFailure_Violation,
  type QuotaFailure_Violation,
  type ResourceInfo,
} from "./gen/google/rpc/error_details_pb.js";

export { Code } from "@connectrpc/connect";

/** A failed call: `code`, `rawMessage` (the server's message) and the decoded details. It is a
 * `ConnectError` too (`instanceof ConnectError` holds, its `name` is ConnectError's). */
export class UsherError extends ConnectError {
  /** By the prototype chain: ConnectError's own test accepts any ConnectError look-alike. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  constructor(error: ConnectError) {
    super(error.rawMessage, error.code, error.metadata, undefined, error.cause ?? error);
    this.details = error.details;
  }

  /** Every detail of the given message type, decoded (e.g. `BadRequestSchema`). */
  detail<Desc extends DescMessage>(schema: Desc): MessageShape<Desc> | undefined {
    return this.findDetails(schema)[0];
  }

  /** INVALID_ARGUMENT: which request fields are wrong and why (`BadRequest`). */
  get fieldViolations(): BadRequest_FieldViolation[] {
    return this.detail(BadRequestSchema)?.fieldViolations ?? [];
  }

  /** The machine-readable `ErrorInfo` (`reason` such as `OFFER_GONE`, domain `usher.v1`). */
  get errorInfo(): ErrorInfo | undefined {
    return this.detail(ErrorInfoSchema);
  }

  /** `ErrorInfo.reason`, if the server gave one. */
  get reason(): string | undefined {
    return this.errorInfo?.reason;
  }

  /** RESOURCE_EXHAUSTED on a quota: which limits were hit (`QuotaFailure`). */
  get quotaViolations(): QuotaFailure_Violation[] {
    return this.detail(QuotaFailureSchema)?.violations ?? [];
  }

  /** FAILED_PRECONDITION: what state stands in the way (`PreconditionFailure`). */
  get preconditionViolations(): PreconditionFailure_Violation[] {
    return this.detail(PreconditionFailureSchema)?.violations ?? [];
  }

  /** NOT_FOUND / ALREADY_EXISTS: the resource concerned (`ResourceInfo`). */
  get resourceInfo(): ResourceInfo | undefined {
    return this.detail(ResourceInfoSchema);
  }

  /** Milliseconds the server asks to wait before trying again (`RetryInfo`), if it said. */
  get retryDelayMs(): number | undefined {
    const delay = this.detail(RetryInfoSchema)?.retryDelay;
    if (delay === undefined) return undefined;
    return Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
  }

  /** Whether trying the same idempotent call again may succeed. */
  get retryable(): boolean {
    switch (this.code) {
      case Code.Unavailable:
      case Code.DeadlineExceeded:
      case Code.Aborted:
        return true;
      case Code.ResourceExhausted: // a rate limit says when; a capacity or a quota never will
        return this.retryDelayMs !== undefined;
      default:
        return false;
    }
  }
}

/** The `UsherError` for anything a call threw (a `ConnectError`, or an error of the transport). */
export function usherError(reason: unknown): UsherError {
  if (reason instanceof UsherError) return reason;
  return new UsherError(ConnectError.from(reason));
}
