// The third-party grpc-web clients in node. Google's client needs an
// XMLHttpRequest: xhr2 provides one (as grpc-web's own docs suggest for node).
//   node thirdparty_node.mjs GATEWAY_URL CALL_ID
import XMLHttpRequest from "xhr2";
import { deadline } from "./browser.mjs";
import { runAll } from "./thirdparty/clients.mjs";

deadline(60_000, "thirdparty_node");
globalThis.XMLHttpRequest = XMLHttpRequest;
const [baseUrl, callId] = process.argv.slice(2);
const results = await runAll(baseUrl, callId);
console.log(JSON.stringify({ results }));
