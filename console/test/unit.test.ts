// The console's pure parts: languages, list queries, the composer's shortcut and link types,
// times, the department tree, the dashboard's totals. Run by `npm test` (make check-console).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentStatus } from "usher-client/gen/usher/v1/agent_pb";
import { Role } from "usher-client/gen/usher/v1/credential_pb";
import { ConversationState } from "usher-client/gen/usher/v1/conversation_pb";
import { messageNumber } from "../src/conversation.js";
import { tree } from "../src/directory.js";
import { browserLanguage, languageOf } from "../src/i18n.js";
import { ConversationList, listQuery, localMidnight } from "../src/lists.js";
import { en } from "../src/locales/en.js";
import { th } from "../src/locales/th.js";
import { zhHans } from "../src/locales/zh-Hans.js";
import { zhHant } from "../src/locales/zh-Hant.js";
import { refreshDelay, roleOf } from "../src/session.js";
import { pointOf } from "../src/supervisor.js";
import { millis, minutesSeconds, secondsLeft } from "../src/time.js";
import { shortcutOf, typeOf } from "../src/ui/composer.js";

test("browser languages map to the catalogs", () => {
  assert.equal(languageOf("zh-TW"), "zh-Hant");
  assert.equal(languageOf("zh-HK"), "zh-Hant");
  assert.equal(languageOf("zh-Hant-TW"), "zh-Hant");
  assert.equal(languageOf("zh-CN"), "zh-Hans");
  assert.equal(languageOf("zh"), "zh-Hans");
  assert.equal(languageOf("th-TH"), "th");
  assert.equal(languageOf("fr-FR"), null);
  assert.equal(browserLanguage(["fr-FR", "th", "en"]), "th");
  assert.equal(browserLanguage(["de"]), "en");
});

test("every catalog has every key, with the same placeholders", () => {
  const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const catalog of [zhHant, zhHans, th]) {
    assert.deepEqual(Object.keys(catalog).sort(), Object.keys(en).sort());
    for (const [key, text] of Object.entries(en)) {
      assert.deepEqual(placeholders(catalog[key as keyof typeof en]), placeholders(text), key);
    }
  }
});

test("each list is read with the filter its count uses", () => {
  const since = new Date(2026, 0, 2);
  const mine = listQuery(ConversationList.MINE, "agents/ann", since);
  assert.deepEqual(mine.filter, {
    owner: "agents/ann",
    states: [ConversationState.ACTIVE, ConversationState.WRAP_UP],
  });
  const ended = listQuery(ConversationList.CLOSED_TODAY, "agents/ann", since);
  assert.equal(millis(ended.filter.closeTime?.startTime as never), since.getTime());
  assert.deepEqual(listQuery(ConversationList.LEFT_MESSAGES, "", since).filter.closeReasons, [
    "left_message",
  ]);
  assert.deepEqual(listQuery(ConversationList.PINNED, "", since).filter, { pinned: true });
  const midnight = localMidnight(new Date(2026, 4, 6, 13, 45));
  assert.equal(midnight.getHours() + midnight.getMinutes(), 0);
});

test("a shortcut is the draft while it is one word starting with /", () => {
  assert.equal(shortcutOf("/ref"), "/ref");
  assert.equal(shortcutOf("/退款"), "/退款");
  assert.equal(shortcutOf("/ref please"), null);
  assert.equal(shortcutOf("hello"), null);
  assert.equal(typeOf("https://x.example/a/Photo.JPG?size=2"), "image/jpeg");
  assert.equal(typeOf("https://x.example/file"), "application/octet-stream");
});

test("times, countdowns and message numbers", () => {
  assert.equal(millis({ seconds: 12n, nanos: 345_000_000 }), 12_345);
  assert.equal(millis(undefined), 0);
  assert.equal(secondsLeft(10_500, 10_000), 1);
  assert.equal(secondsLeft(1_000, 5_000), 0);
  assert.equal(minutesSeconds(75), "1:15");
  assert.equal(messageNumber("conversations/c1/messages/42"), 42n);
  assert.equal(messageNumber("conversations/c1/messages/x"), 0n);
});

test("the department tree puts colleagues under each of their departments", () => {
  const colleague = (name: string, departments: string[]) => ({
    name: `agents/${name}`,
    displayName: name,
    status: AgentStatus.ONLINE,
    customStatus: "",
    load: 0,
    capacity: 2,
    departments,
  });
  const departments = [
    { name: "departments/sales", displayName: "Sales" },
    { name: "departments/care", displayName: "Care" },
  ] as never[];
  const branches = tree(
    [colleague("bob", ["departments/sales"]), colleague("ann", ["departments/sales", "departments/care"]), colleague("cy", [])],
    departments,
  );
  assert.deepEqual(
    branches.map((b) => [b.displayName, b.colleagues.map((c) => c.displayName)]),
    [
      ["Care", ["ann"]],
      ["Sales", ["ann", "bob"]],
      ["", ["cy"]],
    ],
  );
});

test("the chart's totals count the signed-in agents' capacity", () => {
  const point = pointOf({
    time: { seconds: 100n, nanos: 0 },
    queues: [{ waiting: 2, offered: 1 }, { waiting: 1, offered: 0 }],
    agents: [
      { status: AgentStatus.ONLINE, load: 1, capacity: 2 },
      { status: AgentStatus.OFFLINE, load: 0, capacity: 3 },
    ],
  } as never);
  assert.deepEqual(point, { time: 100_000, waiting: 3, offered: 1, load: 1, capacity: 2 });
});

test("a session's token is refreshed ahead of its expiry", () => {
  const hour = 3_600_000;
  assert.equal(refreshDelay(hour, 0), hour / 2);
  assert.equal(refreshDelay(8 * 60_000, 0), 3 * 60_000); // five minutes ahead, when sooner
  assert.equal(refreshDelay(500, 0), 1_000);
  assert.equal(roleOf(Role.SUPERVISOR), "supervisor");
  assert.equal(roleOf(Role.ADMIN), "admin");
  assert.equal(roleOf(Role.AGENT), "agent");
});
