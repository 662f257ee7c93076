/**
 * Transports for browsers (and any runtime with `fetch`): `webTransport("https://usher.example.com")`
 * speaks the Connect protocol to Usher's web port; `{ protocol: "grpc-web" }` speaks gRPC-Web.
 * Server streams work over both (fetch streams the response). The page's origin must be allowed
 * by the deployment (`usher serve --cors-origin`).
 */

import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

export interface TransportOptions {
  /** "connect" (the default) or "grpc-web". */
  protocol?: "connect" | "grpc-web";
  /** Protobuf binary (the default) or, with false, JSON on the wire (Connect only). */
  binary?: boolean;
}

export function webTransport(baseUrl: string, options: TransportOptions = {}): Transport {
  const useBinaryFormat = options.binary ?? true;
  return options.protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl, useBinaryFormat })
    : createConnectTransport({ baseUrl, useBinaryFormat });
}

export * from "./index.js";
