/** The bar over every view: who is signed in, the status menu with custom statuses and their
 * auto-replies, the connection state, the language menu and sign-out. */

import { useState } from "preact/hooks";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import type { Connection } from "../connection.js";
import type { Desk } from "../desk.js";
import { t } from "../i18n.js";
import { useModel } from "../observable.js";
import type { SessionManager } from "../session.js";
import type { TeamChat } from "../teamchat.js";
import { LanguageMenu, StatusDot, statusLabel } from "./common.js";

const BASE = [AgentStatus.ONLINE, AgentStatus.AWAY, AgentStatus.BREAK, AgentStatus.OFFLINE];

function StatusMenu({ desk }: { desk: Desk }) {
  useModel(desk);
  const value = desk.customStatus ? `custom:${desk.customStatus}` : String(desk.status);
  const chosen = desk.customStatuses.find((c) => c.name === desk.customStatus);
  function change(raw: string) {
    if (raw.startsWith("custom:")) {
      const custom = desk.customStatuses.find((c) => c.name === raw.slice(7));
      if (custom) void desk.setStatus(custom.base, custom.name);
    } else {
      void desk.setStatus(Number(raw) as AgentStatus);
    }
  }
  return (
    <label class="status-menu" title={chosen?.autoReply ? t("status.autoReply", { text: chosen.autoReply }) : ""}>
      <StatusDot status={desk.status} />
      <span class="sr-only">{t("status.label")}</span>
      <select class="status-select" value={value} onChange={(e) => change(e.currentTarget.value)}>
        {desk.status === AgentStatus.UNSPECIFIED && <option value="0">{t("status.unknown")}</option>}
        {BASE.map((s) => (
          <option key={s} value={String(s)}>
            {statusLabel(s)}
          </option>
        ))}
        {desk.customStatuses.length > 0 && (
          <optgroup label={t("status.custom")}>
            {desk.customStatuses.map((c) => (
              <option key={c.name} value={`custom:${c.name}`}>
                {c.name} ({statusLabel(c.base)})
              </option>
            ))}
          </optgroup>
        )}
      </select>
      {chosen?.autoReply && <span class="auto-reply">{t("status.autoReply", { text: chosen.autoReply })}</span>}
    </label>
  );
}

export function TopBar({
  manager,
  desk,
  connection,
  chat,
}: {
  manager: SessionManager;
  desk: Desk | undefined;
  connection: Connection;
  chat: TeamChat | undefined;
}) {
  useModel(connection);
  useModel(chat);
  const session = manager.session!;
  const [leaving, setLeaving] = useState(false);

  async function signOut() {
    if (desk && !leaving && desk.status !== AgentStatus.OFFLINE) {
      // signing out of the console signs the agent out of routing, unless they still hold
      // conversations (the tenant may refuse it: the server's message says why)
      if (!(await desk.setStatus(AgentStatus.OFFLINE))) {
        setLeaving(true);
        return;
      }
    }
    await manager.signOut();
  }

  return (
    <header class="topbar">
      <span class="brand">{t("app.title")}</span>
      <span class="who">
        <strong class="who-name">{session.displayName}</strong>
        <span class="who-role">{t(`role.${session.role}`)}</span>
      </span>
      {desk && <StatusMenu desk={desk} />}
      <span class="spacer" />
      {connection.reconnecting && (
        <span class="reconnecting" role="status">
          {t("connection.reconnecting")}
        </span>
      )}
      {chat && (
        <button type="button" class={`team-toggle${chat.shown ? " selected" : ""}`} onClick={() => chat.show(!chat.shown)}>
          {t("team.title")}
          {chat.totalUnread > 0 && <span class="count unread">{chat.totalUnread}</span>}
        </button>
      )}
      <LanguageMenu />
      <button type="button" class="signout" onClick={() => void signOut()}>
        {leaving ? t("signout.anyway") : t("signout")}
      </button>
    </header>
  );
}
