// The call's one state on screen, from the view and the event stream's
// connection together, so the page never says "Live" and "Disconnected" at once.

import { CallState } from "@callpilot/sdk";
import type { CallViewState } from "./model";

/**
 * - `connecting`: no answer from the server yet (nothing is claimed about the call);
 * - `live`: the call is active and its events are arriving;
 * - `reconnecting`: the stream dropped; the SDK is re-opening it;
 * - `disconnected`: the SDK gave up (retry by hand);
 * - `ended`: the call ended (wins over any connection trouble: nothing more will come);
 * - `not-found`: the server has no call with this id.
 */
export type CallStatus = "connecting" | "live" | "reconnecting" | "disconnected" | "ended" | "not-found";

export interface ConnectionFacts {
  readonly state: "connecting" | "live" | "reconnecting" | "ended" | "failed" | "closed";
  /** The error's code (e.g. "NOT_FOUND") when the stream failed; empty otherwise. */
  readonly code: string;
}

export function callStatus(view: CallViewState, connection: ConnectionFacts): CallStatus {
  if (view.ended !== undefined || view.call?.state === CallState.ENDED || connection.state === "ended") {
    return "ended";
  }
  switch (connection.state) {
    case "failed":
      return connection.code === "NOT_FOUND" && view.call === undefined ? "not-found" : "disconnected";
    case "reconnecting":
      return "reconnecting";
    case "live":
      // The stream is open, but until the call's first event arrives the call itself is unknown.
      return view.call === undefined && view.lastSequence === 0n ? "connecting" : "live";
    case "connecting":
      return "connecting";
    default:
      return "disconnected";
  }
}

export const STATUS_LABELS: Record<CallStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
  ended: "Ended",
  "not-found": "Not found",
};
