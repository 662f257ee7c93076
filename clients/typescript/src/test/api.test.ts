/**
 * The SDK against a real `usher serve` (see harness.ts), over each transport a console may use:
 * Node's (connect-node) and the browser's (connect-web, on Node's fetch), each speaking the
 * Connect protocol and gRPC-Web to the web port.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Transport } from "@connectrpc/connect";
import {
  Code,
  createAdminClient,
  createAgentClient,
  createGatewayClient,
  createServiceClient,
  UsherError,
} from "../index.js";
import { nodeTransport } from "../node.js";
import { webTransport } from "../web.js";
import { AgentStatus } from "../gen/usher/v1/agent_pb.js";
import { Role } from "../gen/usher/v1/credential_pb.js";
import { AgentService, type AgentEvent } from "../gen/usher/v1/agent_service_pb.js";
import { startUsher, type Usher } from "./harness.js";

const STREAM_CAP = 6; // tests/integration/node_server.py

let usher: Usher;

before(async () => {
  usher = await startUsher();
});

after(async () => {
  await usher?.stop();
});

const transports: [string, (url: string) => Transport][] = [
  ["node, Connect", (url) => nodeTransport(url)],
  ["node, gRPC-Web", (url) => nodeTransport(url, { protocol: "grpc-web" })],
  ["web (fetch), Connect", (url) => webTransport(url)],
  ["web (fetch), gRPC-Web", (url) => webTransport(url, { protocol: "grpc-web" })],
  ["web (fetch), Connect JSON", (url) => webTransport(url, { binary: false })],
];

/** The first item of `items` that `wanted` accepts (the iteration is left open). */
async function first<T>(items: AsyncIterator<T>, wanted: (item: T) => boolean): Promise<T> {
  for (;;) {
    const next = await items.next();
    assert.ok(!next.done, "the stream ended");
    if (wanted(next.value)) return next.value;
  }
}

async function refusal(call: Promise<unknown>): Promise<UsherError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof UsherError, `not an UsherError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

for (const [label, make] of transports) {
  describe(label, () => {
    let transport: Transport;
    before(() => {
      transport = make(usher.webUrl);
    });

    it("answers a unary call", async () => {
      const admin = createAdminClient(transport, { token: usher.tokens.admin });
      const { queues } = await admin.listQueues({});
      assert.deepEqual(
        queues.map((q) => q.name),
        ["queues/support"],
      );
    });

    it("streams an agent's offer, and resumes after an event id", async () => {
      const agent = createAgentClient(transport, { token: usher.tokens.agent });
      const gateway = createGatewayClient(transport, { token: usher.tokens.gateway });
      await agent.setStatus({ status: AgentStatus.ONLINE });
      const events = agent.events();
      const iterator = events[Symbol.asyncIterator]();
      const pending = first(iterator, () => true); // the stream is open once the call is made
      const started = await gateway.startConversation({
        channel: "webchat",
        queue: "queues/support",
        customer: { externalId: `visitor-${label}`, name: "Mei" },
        firstMessage: { text: "Where is my parcel?" },
      });
      const conversation = started.conversation!.name;
      const isOffer = (e: AgentEvent) => e.event.case === "offer" && e.conversation === conversation;
      const seen = await pending;
      const offer = isOffer(seen) ? seen : await first(iterator, isOffer);
      assert.equal(offer.event.case, "offer");
      assert.equal(events.lastEventId, offer.eventId);

      // A feed resumed just before the offer replays it, and nothing before it.
      const again = agent.events({ resumeAfterEventId: offer.eventId - 1n });
      const replayed = await first(again[Symbol.asyncIterator](), () => true);
      assert.equal(replayed.eventId, offer.eventId);
      assert.equal(replayed.event.case, "offer");
      again.close();

      await gateway.leaveConversation({ conversation }); // withdraws the offer
      const gone = await first(
        iterator,
        (e) => e.event.case === "offerRescinded" && e.conversation === conversation,
      );
      assert.ok(gone.eventId > offer.eventId);
      events.close();
      assert.deepEqual(await iterator.next(), { done: true, value: undefined });
    });

    it("decodes INVALID_ARGUMENT's field violations", async () => {
      const admin = createAdminClient(transport, { token: usher.tokens.admin });
      const error = await refusal(
        admin.createQueue({ queueId: "not a valid id!", queue: { displayName: "x" } }),
      );
      assert.equal(error.code, Code.InvalidArgument);
      assert.equal(error.reason, "INVALID_ARGUMENT");
      assert.equal(error.errorInfo?.domain, "usher.v1");
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        ["queue_id"],
      );
      assert.match(error.fieldViolations[0]!.description, /must be 1 to 64/);
      assert.equal(error.retryable, false);
    });

    it("refuses a bad credential UNAUTHENTICATED, once", async () => {
      let attempts = 0;
      const admin = createAdminClient(transport, {
        token: () => {
          attempts += 1;
          return "ush_nope";
        },
      });
      const error = await refusal(admin.listQueues({}));
      assert.equal(error.code, Code.Unauthenticated);
      assert.equal(attempts, 1, "an UNAUTHENTICATED read is not retried");
      const stream = createAgentClient(transport, { token: "ush_nope" }).events();
      const ended = await refusal(first(stream[Symbol.asyncIterator](), () => true));
      assert.equal(ended.code, Code.Unauthenticated);
    });

    it("decodes RESOURCE_EXHAUSTED's QuotaFailure (too many streams)", async () => {
      const admin = createAdminClient(transport, { token: usher.tokens.admin });
      const { token } = await admin.createCredential({
        credential: { role: Role.AGENT, agent: "agents/bob", displayName: `bob ${label}` },
      });
      const agent = createServiceClient(AgentService, transport, { token });
      const controllers: AbortController[] = [];
      const refused = new Promise<UsherError>((done) => {
        for (let i = 0; i < 2 * STREAM_CAP; i++) {
          const controller = new AbortController();
          controllers.push(controller);
          const stream = agent.streamEvents({}, { signal: controller.signal });
          stream[Symbol.asyncIterator]()
            .next()
            .catch((error: unknown) => {
              if (error instanceof UsherError && error.code === Code.ResourceExhausted) done(error);
            });
        }
      });
      const error = await refused; // at least STREAM_CAP of them are over the cap
      for (const controller of controllers) controller.abort();
      assert.equal(error.reason, "TOO_MANY_STREAMS");
      assert.ok(error.quotaViolations.length > 0);
    });
  });
}
