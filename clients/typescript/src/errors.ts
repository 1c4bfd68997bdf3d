// Errors of the Callpilot API as one typed class, with the server's
// google.rpc details (BadRequest field violations, ErrorInfo) unpacked.

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** gRPC status code names, as the server and the other SDKs spell them. */
export type StatusName =
  | "OK"
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

const STATUS_NAMES: readonly StatusName[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** The name of a numeric gRPC status code ("UNKNOWN" for codes outside 0..16). */
export function statusName(code: number): StatusName {
  return STATUS_NAMES[code] ?? "UNKNOWN";
}

/** One field of a request that the server rejected, and why. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason: string;
}

/**
 * An error from the Callpilot API or from the way to it.
 *
 * `code` is the gRPC status; `serverSent` tells a status the server (or
 * gateway) sent from a failure to reach it (network error, dropped
 * connection), which is reported as UNAVAILABLE.
 */
export class CallpilotError extends Error {
  override readonly name = "CallpilotError";
  readonly code: StatusName;
  readonly grpcCode: number;
  /** The server's message, without the status prefix. */
  readonly detail: string;
  /** google.rpc.ErrorInfo reason, e.g. "ORDER_NOT_FOUND"; empty when none was sent. */
  readonly reason: string;
  /** google.rpc.ErrorInfo metadata. */
  readonly reasonMetadata: Readonly<Record<string, string>>;
  /** google.rpc.BadRequest field violations. */
  readonly violations: readonly FieldViolation[];
  /** True when the status came from the server or gateway, false for transport failures. */
  readonly serverSent: boolean;

  constructor(
    code: number,
    detail: string,
    init: {
      reason?: string;
      reasonMetadata?: Record<string, string>;
      violations?: FieldViolation[];
      serverSent?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(`${statusName(code)}: ${detail}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.grpcCode = code;
    this.code = statusName(code);
    this.detail = detail;
    this.reason = init.reason ?? "";
    this.reasonMetadata = init.reasonMetadata ?? {};
    this.violations = init.violations ?? [];
    this.serverSent = init.serverSent ?? true;
  }

  /** True for failures worth retrying: the server or the way to it is (temporarily) unavailable. */
  get retryable(): boolean {
    return this.code === "UNAVAILABLE";
  }

  /** Convert anything thrown by a call (ConnectError, fetch TypeError, ...) into a CallpilotError. */
  static from(reason: unknown): CallpilotError {
    if (reason instanceof CallpilotError) {
      return reason;
    }
    const err = ConnectError.from(reason);
    if (!err.isWireError) {
      if (err.code === Code.Unknown) {
        // fetch failed, the connection dropped, or the body ended without a
        // trailer: the gateway could not be reached or went away.
        return new CallpilotError(Code.Unavailable, `cannot reach the Callpilot gateway: ${err.rawMessage}`, {
          serverSent: false,
          cause: reason,
        });
      }
      // Raised on this side: cancelled, client-side deadline, protocol error.
      return new CallpilotError(err.code, err.rawMessage, { serverSent: false, cause: reason });
    }
    let violations: FieldViolation[] = [];
    let errorReason = "";
    let reasonMetadata: Record<string, string> = {};
    try {
      violations = err.findDetails(BadRequestSchema).flatMap((br) =>
        br.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: v.reason })),
      );
      const info = err.findDetails(ErrorInfoSchema)[0];
      if (info !== undefined) {
        errorReason = info.reason;
        reasonMetadata = { ...info.metadata };
      }
    } catch {
      // Undecodable details: keep the status and message.
    }
    return new CallpilotError(err.code, err.rawMessage, {
      reason: errorReason,
      reasonMetadata,
      violations,
      serverSent: true,
      cause: reason,
    });
  }
}

/** An error in words a person can act on (for status lines and toasts). */
export function describeError(reason: unknown): string {
  const err = CallpilotError.from(reason);
  switch (err.code) {
    case "UNAVAILABLE":
      return err.serverSent
        ? "The Callpilot server cannot be reached right now."
        : "Cannot reach the Callpilot gateway: check the network connection and that the gateway is running.";
    case "NOT_FOUND":
      return `Not found: ${err.detail}`;
    case "INVALID_ARGUMENT":
      return err.violations.length > 0
        ? `Check ${err.violations.map((v) => `${v.field} (${v.description})`).join("; ")}`
        : `Invalid request: ${err.detail}`;
    case "DEADLINE_EXCEEDED":
      return "Callpilot took too long to answer; try again.";
    case "PERMISSION_DENIED":
    case "UNAUTHENTICATED":
      return `Not allowed: ${err.detail}`;
    case "CANCELLED":
      return "Cancelled.";
    default:
      return `${err.detail || "Something went wrong"} (${err.code})`;
  }
}
