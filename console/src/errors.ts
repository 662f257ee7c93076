/** What to tell a person about a refused or failed call: the server's own message and, for
 * INVALID_ARGUMENT, each field it names. */

import { Code, UsherError, usherError } from "usher-client";
import { t } from "./i18n.js";

export interface Problem {
  code: Code;
  message: string;
  fields: { field: string; description: string }[];
  reason: string | undefined;
}

export function problemOf(reason: unknown): Problem {
  const error: UsherError = reason instanceof UsherError ? reason : usherError(reason);
  const unreachable = error.code === Code.Unavailable || error.code === Code.DeadlineExceeded;
  return {
    code: error.code,
    message: unreachable ? t("error.unreachable") : error.rawMessage || t("error.unknown"),
    fields: error.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    reason: error.reason,
  };
}

/** Whether the credential is no longer accepted (revoked, expired, signed out elsewhere). */
export function isSignedOut(reason: unknown): boolean {
  const error = reason instanceof UsherError ? reason : usherError(reason);
  return error.code === Code.Unauthenticated;
}

/** After a stream ended UNAUTHENTICATED: whether the session's current token still works. A
 * refresh swaps the token and the old one's streams end (CREDENTIAL_REVOKED): reopen them with
 * the new one and resume. A token refused too means the session is over. */
export async function tokenStillWorks(check: () => Promise<unknown>): Promise<boolean> {
  try {
    await check();
    return true;
  } catch (reason) {
    return !isSignedOut(reason);
  }
}
