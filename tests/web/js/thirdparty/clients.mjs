// Two grpc-web clients that Callpilot did not write, against the gateway:
// @connectrpc/connect-web's grpc-web transport (fetch, binary) and Google's
// grpc-web runtime (XHR, text and binary). Each makes a unary call, a call
// that fails (to see the status and its details), and a server-streaming
// WatchCall. The messages are the protoc-gen-es ones from @callpilot/sdk;
// Google's client gets them through MethodDescriptors with
// serialize/deserialize functions (what protoc-gen-grpc-web would generate).
//
// Shared by the node script (thirdparty_node.mjs) and the browser page (main.mjs).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { GrpcWebClientBase, MethodDescriptor, MethodType } from "grpc-web";
import {
  AssistService,
  DirectoryService,
  GetOrderRequestSchema,
  GetOrderResponseSchema,
  WatchCallRequestSchema,
  WatchCallResponseSchema,
} from "@callpilot/sdk";
import { ErrorInfoSchema } from "@callpilot/sdk/gen/google/rpc/error_details_pb";

/** Run connect-web's grpc-web transport: unary, error with details, WatchCall replay. */
export async function runConnect(baseUrl, callId) {
  const transport = createGrpcWebTransport({ baseUrl });
  const directory = createClient(DirectoryService, transport);
  const assist = createClient(AssistService, transport);
  const out = { client: "connect-web" };

  const order = await directory.getOrder({ orderNumber: "78901" });
  out.unary = { orderNumber: order.order?.orderNumber, item: order.order?.items[0]?.name };

  try {
    await directory.getOrder({ orderNumber: "00000" });
    out.error = { code: "none" };
  } catch (err) {
    const e = ConnectError.from(err);
    out.error = {
      code: Code[e.code],
      message: e.rawMessage,
      reason: e.findDetails(ErrorInfoSchema)[0]?.reason ?? "",
      wire: e.isWireError,
    };
  }

  const sequences = [];
  const cases = [];
  for await (const response of assist.watchCall({ callId, fromSequence: 1n })) {
    sequences.push(Number(response.event?.sequence ?? 0));
    cases.push(response.event?.payload.case ?? "");
  }
  out.stream = { sequences, cases };
  return out;
}

class Untyped {}

const getOrderMethod = new MethodDescriptor(
  "/callpilot.v1.DirectoryService/GetOrder",
  MethodType.UNARY,
  Untyped,
  Untyped,
  (request) => toBinary(GetOrderRequestSchema, request),
  (bytes) => fromBinary(GetOrderResponseSchema, bytes),
);

const watchCallMethod = new MethodDescriptor(
  "/callpilot.v1.AssistService/WatchCall",
  MethodType.SERVER_STREAMING,
  Untyped,
  Untyped,
  (request) => toBinary(WatchCallRequestSchema, request),
  (bytes) => fromBinary(WatchCallResponseSchema, bytes),
);

function watchWithGoogle(client, baseUrl, callId) {
  return new Promise((resolve) => {
    const sequences = [];
    const cases = [];
    let status = null;
    const request = create(WatchCallRequestSchema, { callId, fromSequence: 1n });
    const stream = client.serverStreaming(`${baseUrl}/callpilot.v1.AssistService/WatchCall`, request, {}, watchCallMethod);
    const timer = setTimeout(() => {
      stream.cancel();
      resolve({ sequences, cases, status, ended: false, error: "timed out" });
    }, 20000);
    stream.on("data", (response) => {
      sequences.push(Number(response.event?.sequence ?? 0));
      cases.push(response.event?.payload.case ?? "");
    });
    stream.on("status", (s) => {
      status = { code: s.code, details: s.details };
    });
    stream.on("error", (err) => {
      clearTimeout(timer);
      resolve({ sequences, cases, status, ended: false, error: `${err.code}: ${err.message}` });
    });
    stream.on("end", () => {
      clearTimeout(timer);
      resolve({ sequences, cases, status, ended: true, error: "" });
    });
  });
}

/** Run Google's grpc-web client in `format` "text" (grpc-web-text) or "binary". */
export async function runGoogle(baseUrl, callId, format) {
  const client = new GrpcWebClientBase({ format });
  const out = { client: `grpc-web-${format}` };
  const url = `${baseUrl}/callpilot.v1.DirectoryService/GetOrder`;

  const order = await client.unaryCall(url, create(GetOrderRequestSchema, { orderNumber: "78901" }), {}, getOrderMethod);
  out.unary = { orderNumber: order.order?.orderNumber, item: order.order?.items[0]?.name };

  try {
    await client.unaryCall(url, create(GetOrderRequestSchema, { orderNumber: "00000" }), {}, getOrderMethod);
    out.error = { code: "none" };
  } catch (err) {
    out.error = { code: err.code, message: err.message, hasDetails: "grpc-status-details-bin" in (err.metadata ?? {}) };
  }

  out.stream = await watchWithGoogle(client, baseUrl, callId);
  return out;
}

/** Everything, one client after another. */
export async function runAll(baseUrl, callId, { googleFormats = ["text", "binary"] } = {}) {
  const results = [];
  const guard = async (name, fn) => {
    try {
      results.push(await fn());
    } catch (err) {
      results.push({ client: name, failed: String(err?.stack ?? err) });
    }
  };
  await guard("connect-web", () => runConnect(baseUrl, callId));
  for (const format of googleFormats) {
    await guard(`grpc-web-${format}`, () => runGoogle(baseUrl, callId, format));
  }
  return results;
}
