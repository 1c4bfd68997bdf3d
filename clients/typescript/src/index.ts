// @callpilot/sdk: the Callpilot API for browsers and node, over grpc-web.
//
//   const cp = new CallpilotClient({ baseUrl: "http://127.0.0.1:8080" });
//   for await (const event of cp.watchCall(callId)) { ... }
//
// Generated types (protoc-gen-es) are re-exported; enums are TypeScript
// enums (SpeakerRole.CUSTOMER), int64 fields are bigint, google.protobuf.Struct
// fields are plain JSON objects.

export { bearerAuth, type BearerAuthOptions } from "./auth.js";
export { CallpilotClient, type CallpilotClientOptions, type RequestOptions } from "./client.js";
export { CallpilotError, describeError, statusName, type FieldViolation, type StatusName } from "./errors.js";
export { CallWatch, type WatchCallOptions, type WatchState, type WatchCallFn } from "./watch.js";
export { timestampDate, timestampMs, durationMs } from "@bufbuild/protobuf/wkt";
export type { Timestamp, Duration } from "@bufbuild/protobuf/wkt";
export {
  create,
  toJson,
  toJsonString,
  toBinary,
  fromBinary,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";

export * from "./gen/callpilot/v1/common_pb.js";
export * from "./gen/callpilot/v1/call_pb.js";
export * from "./gen/callpilot/v1/directory_pb.js";
export * from "./gen/callpilot/v1/events_pb.js";
export * from "./gen/callpilot/v1/assist_service_pb.js";
export * from "./gen/callpilot/v1/directory_service_pb.js";
export { SupervisorClient, type SupervisorClientOptions } from "./supervisor.js";
export * from "./gen/callpilot/v1/floor_service_pb.js";
export * from "./gen/callpilot/v1/insights_service_pb.js";
export * from "./gen/callpilot/v1/webhook_service_pb.js";
