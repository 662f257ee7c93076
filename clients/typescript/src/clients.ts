/**
 * One client per audience, each a typed `ServiceClient` of its service plus its feeds:
 *
 *     const agent = createAgentClient(transport, { token });
 *     await agent.setStatus({ status: AgentStatus.ONLINE });
 *     for await (const event of agent.events()) { ... }
 *
 * `transport` comes from `usher-client/node` (Node) or `usher-client/web` (browsers), over the
 * Connect protocol or gRPC-Web. Any other service: `createServiceClient(Service, transport,
 * { token })`.
 */

import type { DescService } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { CallContext, type ClientOptions, type FeedOptions, serviceClient, type ServiceClient } from "./client.js";
import { AdminService } from "./gen/usher/v1/admin_service_pb.js";
import {
  type AgentEvent,
  AgentService,
  type StreamEventsResponse,
} from "./gen/usher/v1/agent_service_pb.js";
import {
  ConversationService,
  type OutboundItem,
  type StreamOutboundResponse,
} from "./gen/usher/v1/conversation_service_pb.js";
import {
  type ConversationList,
  RecordService,
  type WatchConversationListsRequest,
  type WatchConversationListsResponse,
} from "./gen/usher/v1/record_service_pb.js";
import {
  type ConversationEvent,
  type DashboardSnapshot,
  type StreamConversationResponse,
  type StreamDashboardResponse,
  SupervisorService,
} from "./gen/usher/v1/supervisor_service_pb.js";
import type { EventStream } from "./stream.js";

/** A typed client of any `usher.v1` service (see `ServiceClient`). */
export function createServiceClient<S extends DescService>(
  service: S,
  transport: Transport,
  options: ClientOptions,
): ServiceClient<S> {
  return serviceClient(service, new CallContext(transport, options));
}

/** ConversationService for channel gateways (a GATEWAY credential). Retried: StartConversation
 * and PostBotMessage (an empty `requestId` is filled with a fresh UUID), customer messages that
 * carry a `providerMessageId`, and the reads. */
export type GatewayClient = ServiceClient<typeof ConversationService> & {
  /** What to deliver to customers (one channel, or all with `channel` ""), in order. */
  events(options?: FeedOptions & { channel?: string }): EventStream<StreamOutboundResponse, OutboundItem>;
};

export function createGatewayClient(transport: Transport, options: ClientOptions): GatewayClient {
  const context = new CallContext(transport, options);
  const client = serviceClient(ConversationService, context);
  return {
    ...client,
    events: ({ channel = "", ...feed } = {}) =>
      context.feed(
        client.streamOutbound,
        (after) => ({ channel, resumeAfterEventId: after }),
        (response) => response.items,
        (item) => item.eventId,
        feed,
      ),
  };
}

/** AgentService for agent consoles (an AGENT credential). Retried: the reads and SendMessage
 * (an empty `requestId` is filled with a fresh UUID). */
export type AgentClient = ServiceClient<typeof AgentService> & {
  /** The agent's feed: offers, messages, transfers, reminders, assignment changes. */
  events(options?: FeedOptions): EventStream<StreamEventsResponse, AgentEvent>;
};

export function createAgentClient(transport: Transport, options: ClientOptions): AgentClient {
  const context = new CallContext(transport, options);
  const client = serviceClient(AgentService, context);
  return {
    ...client,
    events: (feed = {}) =>
      context.feed(
        client.streamEvents,
        (after) => ({ resumeAfterEventId: after }),
        (response) => response.events,
        (event) => event.eventId,
        feed,
      ),
  };
}

/** SupervisorService for wallboards and supervisors' consoles. Retried: ExplainRouting. */
export type SupervisorClient = ServiceClient<typeof SupervisorService> & {
  /** Complete snapshots of the queues (all, or `queues`) and agents as they change. */
  dashboard(
    options?: FeedOptions & { queues?: string[]; minIntervalMs?: number },
  ): EventStream<StreamDashboardResponse, DashboardSnapshot>;
  /** One conversation's messages, notes, typing and changes (`conversations/{id}`). */
  conversationEvents(
    conversation: string,
    options?: FeedOptions,
  ): EventStream<StreamConversationResponse, ConversationEvent>;
};

export function createSupervisorClient(
  transport: Transport,
  options: ClientOptions,
): SupervisorClient {
  const context = new CallContext(transport, options);
  const client = serviceClient(SupervisorService, context);
  return {
    ...client,
    dashboard: ({ queues = [], minIntervalMs, ...feed } = {}) =>
      context.feed(
        client.streamDashboard,
        () => ({
          queues,
          minInterval:
            minIntervalMs === undefined
              ? undefined
              : {
                  seconds: BigInt(Math.floor(minIntervalMs / 1000)),
                  nanos: (minIntervalMs % 1000) * 1e6,
                },
        }),
        (response) => (response.snapshot ? [response.snapshot] : []),
        undefined,
        feed,
      ),
    conversationEvents: (conversation, feed = {}) =>
      context.feed(
        client.streamConversation,
        (after) => ({ conversation, resumeAfterEventId: after }),
        (response) => response.events,
        (event) => event.eventId,
        feed,
      ),
  };
}

/** AdminService for configuring the caller's tenant (an ADMIN credential). Retried: the reads. */
export type AdminClient = ServiceClient<typeof AdminService>;

export function createAdminClient(transport: Transport, options: ClientOptions): AdminClient {
  return createServiceClient(AdminService, transport, options);
}

/** RecordService for consoles' lists, counts and pins. */
export type RecordClient = ServiceClient<typeof RecordService> & {
  /** The watched lists kept live: a reset, then changes and counts, resuming after the last
   * message's `eventId` on a reconnect. */
  watchLists(
    lists: ConversationList[],
    options?: FeedOptions & Partial<Pick<WatchConversationListsRequest, "departments" | "closedSince">>,
  ): EventStream<WatchConversationListsResponse, WatchConversationListsResponse>;
};

export function createRecordClient(transport: Transport, options: ClientOptions): RecordClient {
  const context = new CallContext(transport, options);
  const client = serviceClient(RecordService, context);
  return {
    ...client,
    watchLists: (lists, { departments = [], closedSince, ...feed } = {}) =>
      context.feed(
        client.watchConversationLists,
        (after) => ({ lists, departments, closedSince, resumeAfterEventId: after }),
        (response) => [response],
        (response) => response.eventId,
        feed,
      ),
  };
}
