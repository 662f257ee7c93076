/** Transfer a conversation: to a colleague (the department tree with each one's status and
 * load: an offer they accept or reject), a queue or a department (at once). */

import { useEffect, useState } from "preact/hooks";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import type { ConversationTab } from "../conversation.js";
import type { Desk } from "../desk.js";
import { type Directory, readDirectory } from "../directory.js";
import { t } from "../i18n.js";
import { StatusDot, statusLabel } from "./common.js";

export function TransferDialog({ desk, tab, onClose }: { desk: Desk; tab: ConversationTab; onClose: () => void }) {
  const [directory, setDirectory] = useState<Directory | null>(null);
  const [note, setNote] = useState("");
  useEffect(() => {
    void readDirectory(desk.api).then(setDirectory);
  }, []);

  async function go(target: { case: "agent" | "queue" | "department"; value: string }) {
    if (await desk.transfer(tab, target, note)) onClose();
  }

  return (
    <div class="dialog-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="dialog transfer-dialog" role="dialog" aria-label={t("transfer.title")}>
        <header>
          <h3>{t("transfer.title")}</h3>
          <button type="button" class="link" onClick={onClose} aria-label={t("action.close")}>
            ×
          </button>
        </header>
        <label>
          {t("transfer.note")}
          <input class="transfer-note" value={note} onInput={(e) => setNote(e.currentTarget.value)} />
        </label>
        {!directory && <p>{t("loading")}</p>}
        {directory && (
          <div class="tree">
            <h4>{t("transfer.toAgent")}</h4>
            {directory.branches.length === 0 && <p class="empty">{t("transfer.noColleagues")}</p>}
            {directory.branches.map((branch) => (
              <details key={branch.name || "-"} open class="branch">
                <summary>
                  {branch.name ? branch.displayName : t("transfer.noDepartment")}
                  {branch.name && (
                    <button
                      type="button"
                      class="link to-department"
                      onClick={(e) => {
                        e.preventDefault();
                        void go({ case: "department", value: branch.name });
                      }}
                    >
                      {t("transfer.toThisDepartment")}
                    </button>
                  )}
                </summary>
                <ul>
                  {branch.colleagues
                    .filter((c) => c.name !== desk.me)
                    .map((c) => (
                      <li key={c.name} class="colleague" data-agent={c.name}>
                        <StatusDot status={c.status} />
                        <span class="colleague-name">{c.displayName}</span>
                        <span class="colleague-status">{statusLabel(c.status, c.customStatus)}</span>
                        <span class="load" title={t("load.title")}>
                          <meter min={0} max={c.capacity || 1} value={c.load} />
                          {c.load}/{c.capacity}
                        </span>
                        <button
                          type="button"
                          class="transfer-to"
                          disabled={c.status !== AgentStatus.ONLINE && c.status !== AgentStatus.AWAY && c.status !== AgentStatus.BREAK}
                          onClick={() => void go({ case: "agent", value: c.name })}
                        >
                          {t("transfer.send")}
                        </button>
                      </li>
                    ))}
                </ul>
              </details>
            ))}
            {directory.queues.length > 0 && (
              <>
                <h4>{t("transfer.toQueue")}</h4>
                <ul class="queues">
                  {directory.queues.map((q) => (
                    <li key={q.name}>
                      <button type="button" class="link to-queue" onClick={() => void go({ case: "queue", value: q.name })}>
                        {q.displayName || q.name.replace("queues/", "")}
                      </button>
                    </li>
                  ))}
                </ul>
              </>
            )}
          </div>
        )}
      </div>
    </div>
  );
}
