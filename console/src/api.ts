/** The clients of one signed-in console, all over the page's own origin (the web port). */

import {
  type AgentClient,
  type AdminClient,
  createAdminClient,
  createAgentClient,
  createRecordClient,
  createServiceClient,
  createSupervisorClient,
  type RecordClient,
  type ServiceClient,
  type SupervisorClient,
} from "usher-client";
import { webTransport } from "usher-client/web";
import { AuthService } from "usher-client/gen/usher/v1/auth_service_pb";
import { CannedReplyService } from "usher-client/gen/usher/v1/canned_reply_service_pb";
import { CustomerService } from "usher-client/gen/usher/v1/customer_service_pb";
import { FollowUpService } from "usher-client/gen/usher/v1/follow_up_service_pb";
import { TeamChatService } from "usher-client/gen/usher/v1/team_chat_service_pb";

export type Transport = ReturnType<typeof webTransport>;

/** The transport to the Usher that served this page. */
export function pageTransport(): Transport {
  return webTransport(globalThis.location?.origin ?? "http://127.0.0.1:8090");
}

export interface Api {
  agent: AgentClient;
  records: RecordClient;
  supervisor: SupervisorClient;
  admin: AdminClient;
  customers: ServiceClient<typeof CustomerService>;
  canned: ServiceClient<typeof CannedReplyService>;
  followUps: ServiceClient<typeof FollowUpService>;
  auth: ServiceClient<typeof AuthService>;
  teamChat: ServiceClient<typeof TeamChatService>;
}

/** Clients that send the current token (`token()` is asked before every call and reconnect). */
export function createApi(transport: Transport, token: () => string): Api {
  const options = { token, timeoutMs: 15_000 };
  return {
    agent: createAgentClient(transport, options),
    records: createRecordClient(transport, options),
    supervisor: createSupervisorClient(transport, options),
    admin: createAdminClient(transport, options),
    customers: createServiceClient(CustomerService, transport, options),
    canned: createServiceClient(CannedReplyService, transport, options),
    followUps: createServiceClient(FollowUpService, transport, options),
    auth: createServiceClient(AuthService, transport, options),
    teamChat: createServiceClient(TeamChatService, transport, options),
  };
}
