/** One conversation's tab: header with its state and actions (transfer, cancel a pending
 * transfer, end with an outcome, finish wrap-up, pin), the transcript, the composer, and the
 * customer beside it. */

import { useState } from "preact/hooks";
import { ConversationState, Outcome } from "usher-client/gen/usher/v1/conversation_pb";
import type { ConversationTab } from "../conversation.js";
import type { Desk } from "../desk.js";
import { t } from "../i18n.js";
import { useModel } from "../observable.js";
import { millis } from "../time.js";
import { Countdown, idOf, OUTCOMES, stateLabel } from "./common.js";
import { Composer } from "./composer.js";
import { Sidebar } from "./sidebar.js";
import { TransferDialog } from "./transfer.js";
import { Transcript } from "./transcript.js";

export function ConversationView({ desk, tab }: { desk: Desk; tab: ConversationTab }) {
  useModel(tab);
  const [transferring, setTransferring] = useState(false);
  const [outcome, setOutcome] = useState(Outcome.RESOLVED);
  const c = tab.conversation;
  const pending = desk.outgoing.get(tab.name);
  const customer = c?.customer?.name || c?.customer?.externalId || idOf(tab.name);
  return (
    <div class="conversation" data-conversation={tab.name}>
      <div class="conversation-main">
        <header class="conversation-head">
          <div>
            <h2 class="conversation-title">{customer}</h2>
            <span class={`state state-${c ? ConversationState[c.state].toLowerCase() : "unknown"}`}>{stateLabel(c?.state)}</span>
            {c?.owner && !tab.mine && <span class="owner"> · {t("conversation.owner", { agent: idOf(c.owner) })}</span>}
          </div>
          <div class="conversation-actions">
            {tab.live && !pending && (
              <button type="button" class="transfer" onClick={() => setTransferring(true)}>
                {t("action.transfer")}
              </button>
            )}
            {pending && (
              <span class="pending-transfer">
                {t("transfer.pending", { agent: idOf(pending.target.value ?? "") })}
                {pending.deadline && <Countdown deadline={millis(pending.deadline)} />}
                <button type="button" class="cancel-transfer" onClick={() => void desk.cancelTransfer(tab)}>
                  {t("action.cancel")}
                </button>
              </span>
            )}
            {tab.live && (
              <span class="end-group">
                <select
                  class="outcome"
                  value={String(outcome)}
                  aria-label={t("outcome.label")}
                  onChange={(e) => setOutcome(Number(e.currentTarget.value) as Outcome)}
                >
                  {OUTCOMES.map((o) => (
                    <option key={o.outcome} value={String(o.outcome)}>
                      {t(o.key)}
                    </option>
                  ))}
                </select>
                <button type="button" class="end" onClick={() => void desk.end(tab, outcome)}>
                  {t("action.end")}
                </button>
              </span>
            )}
            {tab.mine && c?.state === ConversationState.WRAP_UP && (
              <button type="button" class="finish-wrap-up" onClick={() => void desk.finishWrapUp(tab)}>
                {t("action.finishWrapUp")}
              </button>
            )}
          </div>
        </header>
        <Transcript tab={tab} />
        <Composer desk={desk} tab={tab} />
      </div>
      <Sidebar tab={tab} canEdit={tab.mine || Boolean(c?.lastAgent === desk.me)} onOpen={(name) => desk.open(name)} />
      {transferring && <TransferDialog desk={desk} tab={tab} onClose={() => setTransferring(false)} />}
    </div>
  );
}
