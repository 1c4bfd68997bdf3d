// The app's one connection to Callpilot: grpc-web to the gateway that served
// the page (same origin, so no CORS is involved).

import { CallpilotClient } from "@callpilot/sdk";

export const client = new CallpilotClient({ baseUrl: window.location.origin });
