// Browser entry: exposes the runs to the test driver (page.evaluate).
import { runAll, runConnect } from "./clients.mjs";

window.callpilotThirdParty = { runAll, runConnect };
window.callpilotThirdPartyReady = true;
