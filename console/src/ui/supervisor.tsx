/** The supervisor's view: live queues and agents by status and load (StreamDashboard) with a
 * chart, the tenant's lists, and one conversation to read, monitor silently, force-assign or
 * have its routing explained. */

import { useState } from "preact/hooks";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import { ConversationState } from "usher-client/gen/usher/v1/conversation_pb";
import type { ConversationRecord } from "usher-client/gen/usher/v1/record_service_pb";
import { clock, t } from "../i18n.js";
import type { ConversationList } from "../lists.js";
import { useModel } from "../observable.js";
import type { Watchtower } from "../supervisor.js";
import { dateOf } from "../time.js";
import { idOf, ProblemBox, StatusDot, stateLabel, statusLabel } from "./common.js";
import { LoadChart } from "./chart.js";
import { ListsPanel } from "./lists.js";
import { LoginLog } from "./logins.js";
import { Transcript } from "./transcript.js";

const STATUS_ORDER = [AgentStatus.ONLINE, AgentStatus.AWAY, AgentStatus.BREAK, AgentStatus.OFFLINE, AgentStatus.UNSPECIFIED];

function seconds(d: { seconds: bigint; nanos: number } | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

function Dashboard({ tower }: { tower: Watchtower }) {
  const snapshot = tower.snapshot;
  if (!snapshot) return <p class="placeholder">{t("loading")}</p>;
  const agents = [...snapshot.agents].sort(
    (a, b) => STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status) || b.load - a.load,
  );
  return (
    <section class="dashboard">
      <LoadChart points={tower.history} />
      <div class="dash-tables">
        <table class="queues-table">
          <caption>{t("dash.queues")}</caption>
          <thead>
            <tr>
              <th>{t("dash.queue")}</th>
              <th>{t("dash.waiting")}</th>
              <th>{t("dash.offered")}</th>
              <th>{t("dash.longest")}</th>
              <th>{t("dash.open")}</th>
            </tr>
          </thead>
          <tbody>
            {snapshot.queues.map((q) => (
              <tr key={q.queue} data-queue={q.queue}>
                <td>{idOf(q.queue)}</td>
                <td class="num waiting">{q.waiting}</td>
                <td class="num offered">{q.offered}</td>
                <td class="num">{Math.round(seconds(q.longestWait))} s</td>
                <td>{q.open ? t("dash.yes") : t("dash.no")}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table class="agents-table">
          <caption>{t("dash.agents")}</caption>
          <thead>
            <tr>
              <th>{t("dash.agent")}</th>
              <th>{t("dash.status")}</th>
              <th>{t("dash.load")}</th>
              <th>{t("dash.offers")}</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((a) => (
              <tr key={a.agent} data-agent={a.agent}>
                <td>{idOf(a.agent)}</td>
                <td>
                  <StatusDot status={a.status} /> {statusLabel(a.status, a.customStatus)}
                </td>
                <td class="load-cell">
                  <meter min={0} max={a.capacity || 1} value={a.load} />
                  <span class="load-figure">
                    {a.load}/{a.capacity}
                  </span>
                </td>
                <td class="num">{a.offers.length}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Pane({ tower }: { tower: Watchtower }) {
  const tab = tower.tab;
  const [agent, setAgent] = useState("");
  const [override, setOverride] = useState(false);
  if (!tab) return null;
  const c = tab.conversation;
  const live = c?.state === ConversationState.ACTIVE;
  const agents = tower.snapshot?.agents ?? [];
  return (
    <section class="pane conversation" data-conversation={tab.name}>
      <header class="conversation-head">
        <div>
          <h2 class="conversation-title">{c?.customer?.name || c?.customer?.externalId || idOf(tab.name)}</h2>
          <span class="state">{stateLabel(c?.state)}</span>
          {c?.owner && <span class="owner"> · {t("conversation.owner", { agent: idOf(c.owner) })}</span>}
          {tower.monitoring && <span class="monitoring"> · {t("monitor.on")}</span>}
        </div>
        <div class="conversation-actions">
          {!tower.monitoring && live && (
            <button type="button" class="monitor" onClick={() => void tower.monitor()}>
              {t("monitor.start")}
            </button>
          )}
          {tower.monitoring && (
            <button type="button" class="stop-monitor" onClick={() => void tower.stopMonitoring()}>
              {t("monitor.stop")}
            </button>
          )}
          <button type="button" class="explain" onClick={() => void tower.explain()}>
            {t("explain.action")}
          </button>
        </div>
      </header>
      <form
        class="force-assign"
        onSubmit={(e) => {
          e.preventDefault();
          if (agent) void tower.forceAssign(agent, override);
        }}
      >
        <select class="force-agent" value={agent} onChange={(e) => setAgent(e.currentTarget.value)}>
          <option value="">{t("force.choose")}</option>
          {agents.map((a) => (
            <option key={a.agent} value={a.agent}>
              {idOf(a.agent)} · {statusLabel(a.status, a.customStatus)} · {a.load}/{a.capacity}
            </option>
          ))}
        </select>
        <label class="check">
          <input type="checkbox" checked={override} onChange={(e) => setOverride(e.currentTarget.checked)} />
          {t("force.override")}
        </label>
        <button type="submit" class="force" disabled={!agent}>
          {t("force.action")}
        </button>
      </form>
      {tower.decisions && (
        <div class="explanation">
          <h3>{t("explain.title")}</h3>
          {tower.decisions.length === 0 && <p class="empty">{t("explain.none")}</p>}
          <ol>
            {tower.decisions.map((d) => {
              const when = dateOf(d.time);
              return (
                <li key={d.offer} class="decision">
                  <p>
                    {when ? `${clock(when)} · ` : ""}
                    {t("explain.decision", {
                      step: d.step,
                      strategy: d.strategy,
                      winners: d.winners.map(idOf).join(", "),
                      reason: d.reason,
                    })}
                  </p>
                  {d.filters && <p class="filters">{d.filters}</p>}
                  <ul>
                    {d.candidates.map((c) => (
                      <li key={c.agent}>
                        {idOf(c.agent)}: {c.verdict}
                      </li>
                    ))}
                  </ul>
                </li>
              );
            })}
          </ol>
        </div>
      )}
      <Transcript tab={tab} />
    </section>
  );
}

export function SupervisorView({ tower }: { tower: Watchtower }) {
  useModel(tower);
  const [logins, setLogins] = useState(false);
  const open = (record: ConversationRecord) => tower.open(record.conversation!.name, record.customerId);
  const none = (_: ConversationList | null, __: ConversationRecord) => null;
  return (
    <div class="supervisor">
      <aside class="side">
        <ListsPanel lists={tower.lists} onOpen={open} actions={none} />
      </aside>
      <main class="work">
        <ProblemBox problem={tower.problem} />
        <nav class="views">
          <button type="button" class={`view-dashboard${logins ? "" : " selected"}`} onClick={() => setLogins(false)}>
            {t("dash.title")}
          </button>
          <button type="button" class={`view-logins${logins ? " selected" : ""}`} onClick={() => setLogins(true)}>
            {t("logins.title")}
          </button>
        </nav>
        {logins ? <LoginLog api={tower.api} /> : <Dashboard tower={tower} />}
        <Pane tower={tower} />
      </main>
    </div>
  );
}
