/** The SDK's pure rules: which calls are retried, idempotency keys, error details, and how a
 * feed resumes (its reconnect logic over a scripted sequence of server streams). */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { idempotent, keyed, usherError, uuid4, EventStream, UsherError } from "../index.js";
import { QuotaFailureSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { AgentService } from "../gen/usher/v1/agent_service_pb.js";
import { ConversationService } from "../gen/usher/v1/conversation_service_pb.js";

describe("retries", () => {
  it("are for reads and for writes with an idempotency key", () => {
    const agent = AgentService.method;
    const gateway = ConversationService.method;
    assert.equal(idempotent(agent.listMessages, {}), true);
    assert.equal(idempotent(agent.getConversation, {}), true);
    assert.equal(idempotent(agent.acceptOffer, { offer: "offers/1" }), false);
    assert.equal(idempotent(agent.sendMessage, keyed(agent.sendMessage, {})), true);
    assert.equal(idempotent(gateway.postCustomerMessage, {}), false);
    assert.equal(idempotent(gateway.postCustomerMessage, { providerMessageId: "wamid.1" }), true);
    assert.equal(
      idempotent(gateway.receiveCustomerMessage, { message: { providerMessageId: "m1" } }),
      true,
    );
  });

  it("keep the caller's request id, else carry a fresh UUID", () => {
    const send = AgentService.method.sendMessage;
    assert.equal(keyed(send, { requestId: "mine" }).requestId, "mine");
    const fresh = keyed(send, { text: "hi" } as { text: string; requestId?: string });
    assert.match(fresh.requestId!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(uuid4(), uuid4());
    const accept = AgentService.method.acceptOffer; // no request_id field: left as given
    assert.deepEqual(keyed(accept, { offer: "offers/1" }), { offer: "offers/1" });
  });
});

describe("UsherError", () => {
  it("decodes QuotaFailure and RetryInfo, and is a ConnectError", () => {
    const raw = new ConnectError("too many", Code.ResourceExhausted, undefined, [
      { desc: QuotaFailureSchema, value: { violations: [{ subject: "credential", description: "32 open" }] } },
      { desc: RetryInfoSchema, value: { retryDelay: { seconds: 1n, nanos: 500_000_000 } } },
    ]);
    const error = usherError(raw);
    assert.ok(error instanceof UsherError);
    assert.ok(error instanceof ConnectError);
    assert.ok(!(raw instanceof UsherError));
    assert.deepEqual(
      error.quotaViolations.map((v) => v.subject),
      ["credential"],
    );
    assert.equal(error.retryDelayMs, 1500);
    assert.equal(error.retryable, true);
    assert.equal(usherError(new ConnectError("x", Code.ResourceExhausted)).retryable, false);
  });
});

type Item = { id: bigint };
const fast = { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 1, multiplier: 1, jitter: 0 };

describe("EventStream", () => {
  it("resumes after the last id, drops repeats, and stops on close", async () => {
    const asked: bigint[] = [];
    const script: (Item[] | Error)[] = [
      [{ id: 1n }, { id: 2n }],
      new ConnectError("dropped", Code.Unavailable),
      [{ id: 2n }, { id: 3n }], // the server replays from the resume point
    ];
    const stream = new EventStream<Item[], Item>(
      async (after) => {
        asked.push(after);
        const step = script.shift() ?? [];
        return (async function* () {
          if (step instanceof Error) throw step;
          yield step;
        })();
      },
      (batch) => batch,
      (item) => item.id,
      { retry: fast, resumeAfterEventId: 0n },
    );
    const seen: bigint[] = [];
    for await (const item of stream) {
      seen.push(item.id);
      if (item.id === 3n) stream.close();
    }
    assert.deepEqual(seen, [1n, 2n, 3n]);
    assert.deepEqual(asked, [0n, 2n, 2n]);
    assert.equal(stream.lastEventId, 3n);
  });

  it("ends with errors that retrying cannot fix", async () => {
    const stream = new EventStream<Item[], Item>(
      async () =>
        (async function* () {
          throw new ConnectError("who?", Code.Unauthenticated);
        })(),
      (batch) => batch,
      (item) => item.id,
      { retry: fast },
    );
    await assert.rejects(
      async () => {
        for await (const _ of stream) assert.fail("nothing to yield");
      },
      (error: unknown) => error instanceof UsherError && error.code === Code.Unauthenticated,
    );
  });
});
