/** The console: sign-in, then the agent's desk or the supervisor's view, a language menu, the
 * connection state and sign-out. */

import { useEffect, useMemo, useState } from "preact/hooks";
import { Desk } from "./desk.js";
import { locale, t } from "./i18n.js";
import { useModel } from "./observable.js";
import type { SessionManager } from "./session.js";
import { Watchtower } from "./supervisor.js";
import { SignIn } from "./ui/signin.js";
import { DeskView } from "./ui/desk.js";
import { SupervisorView } from "./ui/supervisor.js";
import { TopBar } from "./ui/topbar.js";

export function App({ manager }: { manager: SessionManager }) {
  useModel(manager);
  useModel(locale);
  const session = manager.session;
  if (!session) return <SignIn manager={manager} />;
  return <Signed manager={manager} key={session.token === "" ? "none" : session.agent + session.role} />;
}

function Signed({ manager }: { manager: SessionManager }) {
  const session = manager.session!;
  const signedOut = () => manager.revoked();
  const desk = useMemo(
    () => (session.role === "agent" ? new Desk(manager.api, session.agent, signedOut) : undefined),
    [],
  );
  const tower = useMemo(
    () => (session.role !== "agent" ? new Watchtower(manager.api, signedOut) : undefined),
    [],
  );
  useEffect(() => {
    desk?.start();
    tower?.start();
    return () => {
      desk?.stop();
      tower?.stop();
    };
  }, []);
  const [view] = useState<"desk" | "supervisor">(desk ? "desk" : "supervisor");
  useEffect(() => {
    document.title = `${t("app.title")} · ${session.displayName}`;
  });
  return (
    <div class="shell">
      <TopBar manager={manager} desk={desk} connection={(desk ?? tower)!.connection} />
      {view === "desk" && desk ? <DeskView desk={desk} /> : tower && <SupervisorView tower={tower} />}
    </div>
  );
}
