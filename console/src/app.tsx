/** The console: sign-in, then the agent's desk or the supervisor's view, team chat, a language
 * menu, the connection state and sign-out. */

import { useEffect, useMemo } from "preact/hooks";
import { Desk } from "./desk.js";
import { locale, t } from "./i18n.js";
import { useModel } from "./observable.js";
import type { SessionManager } from "./session.js";
import { Watchtower } from "./supervisor.js";
import { TeamChat } from "./teamchat.js";
import { DeskView } from "./ui/desk.js";
import { SignIn } from "./ui/signin.js";
import { SupervisorView } from "./ui/supervisor.js";
import { TeamChatPanel } from "./ui/teamchat.js";
import { TopBar } from "./ui/topbar.js";

export function App({ manager }: { manager: SessionManager }) {
  useModel(manager);
  useModel(locale);
  const session = manager.session;
  if (!session) return <SignIn manager={manager} />;
  // a new sign-in (another agent or role) starts afresh; a refreshed token keeps everything
  return <Signed manager={manager} key={`${session.tenant}/${session.agent}/${session.role}`} />;
}

function Signed({ manager }: { manager: SessionManager }) {
  const session = manager.session!;
  const models = useMemo(() => {
    const signedOut = () => manager.revoked();
    const desk = session.role === "agent" ? new Desk(manager.api, session.agent, signedOut) : undefined;
    const tower = desk ? undefined : new Watchtower(manager.api, signedOut);
    const connection = (desk ?? tower)!.connection;
    const chat = session.agent ? new TeamChat(manager.api, session.agent, connection, signedOut) : undefined;
    return { desk, tower, connection, chat };
  }, []);
  const { desk, tower, connection, chat } = models;
  useModel(chat);
  useEffect(() => {
    desk?.start();
    tower?.start();
    void chat?.start();
    return () => {
      desk?.stop();
      tower?.stop();
      chat?.stop();
    };
  }, []);
  useEffect(() => {
    document.title = `${t("app.title")} · ${session.displayName}`;
  });
  const chatting = Boolean(chat?.available && chat.shown);
  return (
    <div class="shell">
      <TopBar manager={manager} desk={desk} connection={connection} chat={chat?.available ? chat : undefined} />
      <div class={`body${chatting ? " chatting" : ""}`}>
        {desk ? <DeskView desk={desk} /> : tower && <SupervisorView tower={tower} />}
        {chatting && chat && <TeamChatPanel chat={chat} onClose={() => chat.show(false)} />}
      </div>
    </div>
  );
}
