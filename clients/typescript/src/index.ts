/**
 * Usher's TypeScript SDK: typed clients for gateways, agents, supervisors and admins (and a
 * client of any other `usher.v1` service), with a bearer credential, deadlines, retries of
 * idempotent calls, event feeds that resume from the last event id, and errors that expose the
 * `google.rpc.Status` details. Transports: `usher-client/node` and `usher-client/web`.
 * Generated messages and services: `usher-client/gen/usher/v1/<file>_pb.js`.
 */

export {
  type CallContext,
  type ClientOptions,
  type FeedOptions,
  idempotent,
  keyed,
  type ServiceClient,
  type UsherCallOptions,
  uuid4,
} from "./client.js";
export {
  type AdminClient,
  type AgentClient,
  createAdminClient,
  createAgentClient,
  createGatewayClient,
  createRecordClient,
  createServiceClient,
  createSupervisorClient,
  type GatewayClient,
  type RecordClient,
  type SupervisorClient,
} from "./clients.js";
export { Code, UsherError, usherError } from "./errors.js";
export { backoffMs, DEFAULT_RETRY, type RetryPolicy } from "./retry.js";
export { EventStream, type EventStreamOptions } from "./stream.js";
