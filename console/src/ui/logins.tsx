/** The sign-in log (AuthService.ListLogins): sign-ins, refreshes, sign-outs and refused
 * attempts with their time, agent, address and browser, newest first. */

import { useEffect, useState } from "preact/hooks";
import { LoginFailure, LoginKind, type LoginRecord } from "usher-client/gen/usher/v1/auth_service_pb";
import type { Api } from "../api.js";
import { type Problem, problemOf } from "../errors.js";
import { dateTime, type MessageKey, t } from "../i18n.js";
import { dateOf } from "../time.js";
import { idOf, ProblemBox } from "./common.js";

const KINDS: Record<LoginKind, MessageKey> = {
  [LoginKind.UNSPECIFIED]: "logins.other",
  [LoginKind.SIGN_IN]: "logins.signIn",
  [LoginKind.REFRESH]: "logins.refresh",
  [LoginKind.SIGN_OUT]: "logins.signOut",
  [LoginKind.SIGN_IN_FAILED]: "logins.failed",
};

const FAILURES: Record<LoginFailure, MessageKey | null> = {
  [LoginFailure.UNSPECIFIED]: null,
  [LoginFailure.UNKNOWN_LOGIN]: "logins.unknownLogin",
  [LoginFailure.WRONG_PASSWORD]: "logins.wrongPassword",
  [LoginFailure.NO_PASSWORD]: "logins.noPassword",
  [LoginFailure.RATE_LIMITED]: "logins.rateLimited",
};

export function LoginLog({ api }: { api: Api }) {
  const [rows, setRows] = useState<LoginRecord[] | null>(null);
  const [problem, setProblem] = useState<Problem | undefined>();
  useEffect(() => {
    api.auth
      .listLogins({ pageSize: 100 })
      .then((page) => setRows(page.logins))
      .catch((reason) => setProblem(problemOf(reason)));
  }, []);
  return (
    <section class="logins">
      <ProblemBox problem={problem} />
      {rows === null && !problem && <p>{t("loading")}</p>}
      {rows && (
        <table class="logins-table">
          <caption>{t("logins.title")}</caption>
          <thead>
            <tr>
              <th>{t("logins.time")}</th>
              <th>{t("dash.agent")}</th>
              <th>{t("logins.what")}</th>
              <th>{t("logins.address")}</th>
              <th>{t("logins.browser")}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const when = dateOf(r.time);
              const failure = FAILURES[r.failure];
              return (
                <tr key={r.name} class={`login login-${LoginKind[r.kind]?.toLowerCase()}`}>
                  <td>{when ? dateTime(when) : ""}</td>
                  <td>{r.agent ? idOf(r.agent) : r.login}</td>
                  <td>
                    {t(KINDS[r.kind] ?? "logins.other")}
                    {failure ? ` (${t(failure)})` : ""}
                  </td>
                  <td>{r.clientAddress}</td>
                  <td class="user-agent" title={r.userAgent}>
                    {r.userAgent}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
