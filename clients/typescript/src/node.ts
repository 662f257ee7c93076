/**
 * Transports for Node: `nodeTransport("http://127.0.0.1:8090")` speaks the Connect protocol to
 * Usher's web port (`usher serve --web-port`); `{ protocol: "grpc-web" }` speaks gRPC-Web.
 * (Node may also speak plain gRPC to the gRPC port with connect-node's `createGrpcTransport`.)
 */

import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { TransportOptions } from "./web.js";

export function nodeTransport(baseUrl: string, options: TransportOptions = {}): Transport {
  const common = { baseUrl, httpVersion: "1.1" as const, useBinaryFormat: options.binary ?? true };
  return options.protocol === "grpc-web"
    ? createGrpcWebTransport(common)
    : createConnectTransport(common);
}

export * from "./index.js";
