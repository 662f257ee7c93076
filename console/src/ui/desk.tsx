/** The agent's desk: offers and transfers to answer, the lists, and one tab per conversation. */

import type { ConversationRecord } from "usher-client/gen/usher/v1/record_service_pb";
import { type Desk } from "../desk.js";
import { t } from "../i18n.js";
import { ConversationList } from "../lists.js";
import { useModel } from "../observable.js";
import { millis } from "../time.js";
import { Countdown, idOf, ProblemBox } from "./common.js";
import { ConversationView } from "./conversation.js";
import { customerName, ListsPanel } from "./lists.js";

function Offers({ desk }: { desk: Desk }) {
  const offers = [...desk.offers.values()];
  const transfers = [...desk.incoming.values()];
  if (offers.length === 0 && transfers.length === 0) return null;
  return (
    <section class="inbox" aria-label={t("list.offered")}>
      <h2 class="inbox-title">
        {t("list.offered")} <span class="count">{offers.length + transfers.length}</span>
      </h2>
      <ul class="offers">
        {offers.map((offer) => (
          <li key={offer.name} class="offer" data-offer={offer.name}>
            <div class="offer-who">
              <strong>{offer.customer?.name || offer.customer?.externalId || idOf(offer.conversation)}</strong>
              <span class="offer-meta">
                {offer.channel} · {idOf(offer.queue)}
              </span>
            </div>
            {offer.preview && <p class="offer-preview">{offer.preview}</p>}
            <div class="offer-actions">
              <Countdown deadline={millis(offer.deadline)} />
              <button type="button" class="primary accept" onClick={() => void desk.accept(offer)}>
                {t("offer.accept")}
              </button>
              <button type="button" class="reject" onClick={() => void desk.reject(offer)}>
                {t("offer.reject")}
              </button>
            </div>
          </li>
        ))}
        {transfers.map((transfer) => (
          <li key={transfer.name} class="offer transfer-request" data-transfer={transfer.name}>
            <div class="offer-who">
              <strong>{t("transfer.from", { agent: idOf(transfer.fromAgent) })}</strong>
              <span class="offer-meta">{idOf(transfer.conversation)}</span>
            </div>
            {transfer.note && <p class="offer-preview">{transfer.note}</p>}
            <div class="offer-actions">
              {transfer.deadline && <Countdown deadline={millis(transfer.deadline)} />}
              <button
                type="button"
                class="primary accept-transfer"
                onClick={() => void desk.answerTransfer(transfer, true)}
              >
                {t("offer.accept")}
              </button>
              <button type="button" class="reject-transfer" onClick={() => void desk.answerTransfer(transfer, false)}>
                {t("offer.reject")}
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function DeskView({ desk }: { desk: Desk }) {
  useModel(desk);
  const open = (record: ConversationRecord) =>
    desk.open(record.conversation!.name, { customerId: record.customerId });
  const actions = (list: ConversationList | null, record: ConversationRecord) => {
    const name = record.conversation!.name;
    if (list === ConversationList.WAITING) {
      return (
        <button type="button" class="take" onClick={() => void desk.take(name)}>
          {t("action.take")}
        </button>
      );
    }
    if (list === ConversationList.BOT) {
      return (
        <button type="button" class="take-over" onClick={() => void desk.takeOver(name)}>
          {t("action.takeOver")}
        </button>
      );
    }
    if (list === ConversationList.LEFT_MESSAGES) {
      return (
        <span class="row-actions">
          <button type="button" class="answer-left" onClick={() => void desk.answerLeftMessage(name)}>
            {t("left.answer")}
          </button>
          <button type="button" class="handled" onClick={() => void desk.markHandled(name)}>
            {t("left.markHandled")}
          </button>
        </span>
      );
    }
    return (
      <button
        type="button"
        class={`pin${record.pinned ? " pinned" : ""}`}
        title={record.pinned ? t("action.unpin") : t("action.pin")}
        onClick={() => void desk.pin(name, !record.pinned)}
      >
        {record.pinned ? "★" : "☆"}
      </button>
    );
  };
  const tab = desk.active ? desk.tabs.get(desk.active) : undefined;
  return (
    <div class="desk">
      <aside class="side">
        <Offers desk={desk} />
        <ListsPanel lists={desk.lists} onOpen={open} actions={actions} />
      </aside>
      <main class="work">
        <ProblemBox problem={desk.problem} onClose={() => desk.dismissProblem()} />
        <nav class="tabs" aria-label={t("tabs")}>
          {[...desk.tabs.values()].map((item) => (
            <span
              key={item.name}
              class={`tab${item.name === desk.active ? " active" : ""}`}
              data-conversation={item.name}
            >
              <button type="button" class="tab-open" onClick={() => desk.focus(item.name)}>
                {item.conversation ? customerName({ conversation: item.conversation } as ConversationRecord) : idOf(item.name)}
                {item.unread > 0 && <span class="count unread">{item.unread}</span>}
                {item.customerTyping && <span class="tab-typing">…</span>}
              </button>
              <button type="button" class="tab-close" aria-label={t("action.close")} onClick={() => desk.closeTab(item.name)}>
                ×
              </button>
            </span>
          ))}
        </nav>
        {tab ? <ConversationView desk={desk} tab={tab} key={tab.name} /> : <p class="placeholder">{t("tabs.none")}</p>}
      </main>
      <div class="notices" aria-live="polite">
        {desk.notices.map((n) => (
          <p key={n.id} class="notice">
            {n.text}
          </p>
        ))}
      </div>
    </div>
  );
}
