// The app's one connection to Callpilot: grpc-web to the gateway that served
// the page (same origin, so no CORS is involved).

import { CallpilotClient, SupervisorClient } from "@callpilot/sdk";

export const client = new CallpilotClient({ baseUrl: window.location.origin });

/** The floor and insights APIs (FloorService, InsightsService). */
export const supervisor = new SupervisorClient({ baseUrl: window.location.origin });
