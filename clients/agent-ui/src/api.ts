// The app's one connection to Callpilot: grpc-web to the gateway that served
// the page (same origin, so no CORS is involved), with the agent's credential
// (see session.ts) on every call.

import { CallpilotClient, SupervisorClient } from "@callpilot/sdk";
import { session } from "./session";

const auth = {
  credential: () => session.credential(),
  onUnauthenticated: (error: { reason: string; detail: string }) =>
    session.refused(error.reason || "UNAUTHENTICATED", error.detail),
};

export const client = new CallpilotClient({ baseUrl: window.location.origin, ...auth });

/** The floor and insights APIs (FloorService, InsightsService). */
export const supervisor = new SupervisorClient({ baseUrl: window.location.origin, ...auth });
