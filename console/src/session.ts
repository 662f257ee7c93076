/**
 * Who is signed in: a session from AuthService.SignIn (agent number or name and password; a
 * short-lived token refreshed before it expires) or from an API token pasted in. Kept in
 * sessionStorage (one per browser tab), so a reload keeps the agent signed in. A token the server
 * no longer accepts (revoked, expired, signed out elsewhere) ends the session: back to sign-in.
 */

import { Code, usherError } from "usher-client";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import { Role } from "usher-client/gen/usher/v1/credential_pb";
import { createApi, pageTransport, type Api, type Transport } from "./api.js";
import { t } from "./i18n.js";
import { Observable } from "./observable.js";
import { millis } from "./time.js";

export type ConsoleRole = "agent" | "supervisor" | "admin";

export interface Session {
  tenant: string;
  token: string;
  /** `password`: from SignIn, refreshed; `token`: an API token, used as it is. */
  kind: "password" | "token";
  role: ConsoleRole;
  /** `agents/{agent}`; empty for a supervisor or admin without an agent. */
  agent: string;
  displayName: string;
  /** When the token expires (ms since the epoch); 0: never (API tokens). */
  expireTime: number;
}

const STORAGE_KEY = "usher.console.session";
/** Refresh at least this long before the token expires. */
const REFRESH_AHEAD_MS = 5 * 60_000;

/** How long to wait before refreshing a token that expires at `expireTime` (ms since the
 * epoch): half its remaining life, and at least five minutes before it expires (1 s at least). */
export function refreshDelay(expireTime: number, now: number = Date.now()): number {
  const left = expireTime - now;
  return Math.max(1_000, Math.min(left - REFRESH_AHEAD_MS, left / 2));
}

export function roleOf(role: Role): ConsoleRole {
  if (role === Role.ADMIN) return "admin";
  if (role === Role.SUPERVISOR) return "supervisor";
  return "agent";
}

export class SessionManager extends Observable {
  session: Session | null = null;
  /** Why the last session ended, shown on the sign-in page. */
  notice = "";
  readonly transport: Transport;
  readonly api: Api;
  #refresh: ReturnType<typeof setTimeout> | undefined;

  constructor(transport: Transport = pageTransport()) {
    super();
    this.transport = transport;
    this.api = createApi(transport, () => this.session?.token ?? "");
    const kept = globalThis.sessionStorage?.getItem(STORAGE_KEY);
    if (kept) {
      try {
        this.#start(JSON.parse(kept) as Session);
      } catch {
        globalThis.sessionStorage?.removeItem(STORAGE_KEY);
      }
    }
  }

  /** Sign in by agent number or name and password (AuthService.SignIn). Throws UsherError. */
  async signIn(tenant: string, login: string, password: string): Promise<void> {
    const answer = await this.api.auth.signIn({ tenant, login, password });
    this.#start({
      tenant,
      token: answer.accessToken,
      kind: "password",
      role: roleOf(answer.role),
      agent: answer.agent,
      displayName: answer.displayName,
      expireTime: millis(answer.expireTime),
    });
  }

  /** Sign in with an API token: an agent's goes online (SetStatus tells who it is); a
   * supervisor's or admin's is recognised by what it may read. Throws UsherError. */
  async signInWithToken(tenant: string, token: string): Promise<void> {
    const probe = createApi(this.transport, () => token);
    let session: Session;
    try {
      const { agent } = await probe.agent.setStatus({ status: AgentStatus.ONLINE });
      session = {
        tenant,
        token,
        kind: "token",
        role: "agent",
        agent: agent?.name ?? "",
        displayName: agent?.displayName || agent?.name || "",
        expireTime: 0,
      };
    } catch (reason) {
      if (usherError(reason).code !== Code.PermissionDenied) throw usherError(reason);
      await probe.supervisor.explainRouting({ conversation: "conversations/-" }).catch((e) => {
        if (usherError(e).code === Code.PermissionDenied) throw usherError(e);
      });
      const admin = await probe.admin.listCredentials({ pageSize: 1 }).then(
        () => true,
        () => false,
      );
      session = {
        tenant,
        token,
        kind: "token",
        role: admin ? "admin" : "supervisor",
        agent: "",
        displayName: admin ? t("role.admin") : t("role.supervisor"),
        expireTime: 0,
      };
    }
    this.#start(session);
  }

  /** Sign out: the server revokes a signed-in token (an API token stays valid). */
  async signOut(): Promise<void> {
    if (this.session?.kind === "password") {
      await this.api.auth.signOut({}).catch(() => undefined);
    }
    this.#end("");
  }

  /** The server refused the token (revoked, expired): back to sign-in with a notice. */
  revoked(): void {
    if (this.session) this.#end(t("signin.ended"));
  }

  #start(session: Session): void {
    this.session = session;
    this.notice = "";
    globalThis.sessionStorage?.setItem(STORAGE_KEY, JSON.stringify(session));
    this.#schedule();
    this.emit();
  }

  #end(notice: string): void {
    clearTimeout(this.#refresh);
    this.session = null;
    this.notice = notice;
    globalThis.sessionStorage?.removeItem(STORAGE_KEY);
    this.emit();
  }

  #schedule(): void {
    clearTimeout(this.#refresh);
    const session = this.session;
    if (!session || session.kind !== "password" || !session.expireTime) return;
    this.#refresh = setTimeout(() => void this.refresh(), refreshDelay(session.expireTime));
  }

  /** A new token for the session (AuthService.RefreshSession); refused (the session is too old
   * or was revoked) → back to sign-in. */
  async refresh(): Promise<void> {
    const session = this.session;
    if (!session || session.kind !== "password") return;
    try {
      const answer = await this.api.auth.refreshSession({});
      this.#start({ ...session, token: answer.accessToken, expireTime: millis(answer.expireTime) });
    } catch (reason) {
      const code = usherError(reason).code;
      if (code === Code.Unauthenticated || code === Code.PermissionDenied || code === Code.FailedPrecondition) {
        this.#end(t("signin.ended"));
      } else {
        this.#refresh = setTimeout(() => void this.refresh(), 15_000);
      }
    }
  }
}
