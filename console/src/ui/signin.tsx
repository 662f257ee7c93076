/** Sign in by agent number or name and password; or with an API token. */

import { useState } from "preact/hooks";
import { Code } from "usher-client";
import { type Problem, problemOf } from "../errors.js";
import { t } from "../i18n.js";
import type { SessionManager } from "../session.js";
import { LanguageMenu, ProblemBox } from "./common.js";

const TENANT_KEY = "usher.console.tenant";

function initialTenant(): string {
  const fromUrl = new URLSearchParams(globalThis.location?.search ?? "").get("tenant");
  return fromUrl ?? globalThis.localStorage?.getItem(TENANT_KEY) ?? "";
}

export function SignIn({ manager }: { manager: SessionManager }) {
  const [tenant, setTenant] = useState(initialTenant);
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");
  const [withToken, setWithToken] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setProblem(undefined);
    try {
      globalThis.localStorage?.setItem(TENANT_KEY, tenant.trim());
      if (withToken) await manager.signInWithToken(tenant.trim(), token.trim());
      else await manager.signIn(tenant.trim(), login.trim(), password);
    } catch (reason) {
      const found = problemOf(reason);
      if (found.code === Code.Unauthenticated) found.message = t("signin.wrong");
      if (found.code === Code.ResourceExhausted) found.message = t("signin.tooMany");
      setProblem(found);
      setPassword("");
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="signin">
      <form class="signin-card" onSubmit={submit}>
        <div class="signin-head">
          <h1>{t("app.title")}</h1>
          <LanguageMenu />
        </div>
        {manager.notice && <p class="notice signin-notice">{manager.notice}</p>}
        <label>
          {t("signin.tenant")}
          <input name="tenant" value={tenant} required autoComplete="organization" onInput={(e) => setTenant(e.currentTarget.value)} />
        </label>
        {withToken ? (
          <label>
            {t("signin.token")}
            <input name="token" value={token} required autoComplete="off" onInput={(e) => setToken(e.currentTarget.value)} />
          </label>
        ) : (
          <>
            <label>
              {t("signin.login")}
              <input name="login" value={login} required autoComplete="username" onInput={(e) => setLogin(e.currentTarget.value)} />
            </label>
            <label>
              {t("signin.password")}
              <input
                name="password"
                type="password"
                value={password}
                required
                autoComplete="current-password"
                onInput={(e) => setPassword(e.currentTarget.value)}
              />
            </label>
          </>
        )}
        <ProblemBox problem={problem} />
        <button type="submit" class="primary signin-submit" disabled={busy}>
          {busy ? t("signin.busy") : t("signin.submit")}
        </button>
        <button type="button" class="link signin-mode" onClick={() => setWithToken(!withToken)}>
          {withToken ? t("signin.withPassword") : t("signin.withToken")}
        </button>
      </form>
    </main>
  );
}
