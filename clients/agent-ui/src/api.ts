// The app's one connection to Callpilot: grpc-web to the gateway that served
// the page (same origin, so no CORS is involved), with the agent's credential
// (see session.ts) on every call.

import { CallpilotClient } from "@callpilot/sdk";
import { session } from "./session";

export const client = new CallpilotClient({
  baseUrl: window.location.origin,
  credential: () => session.credential(),
  onUnauthenticated: (error) => session.refused(error.reason || "UNAUTHENTICATED", error.detail),
});
