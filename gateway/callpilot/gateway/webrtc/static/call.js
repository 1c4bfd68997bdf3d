// The customer call page (/call).
import { api, CallLeg, LevelMeter, setCredential } from "/webrtc/webrtc.js";

const $ = (id) => document.getElementById(id);
// Read by the browser tests; harmless for people.
const page = (window.callpilotPage = { callId: "", states: [], call: null, errors: [], leg: null, ended: "" });
let meter = null, timer = null;

// The status pill's colour: live while connected, amber while getting there, grey once ended.
function toneOf(text) {
  if (text.startsWith("connected")) return "live";
  if (text.startsWith("call ended")) return "ended";
  if (text === "not connected") return "";
  return "busy";
}
function setState(text) {
  $("state").textContent = text;
  $("state").dataset.tone = toneOf(text);
}
function showError(err) {
  const message = err && err.message ? err.message : String(err);
  page.errors.push(message);
  $("error").textContent = message;
}

// The call link's join token (`/call?join=…` or `/call#join=…`, with `call=<id>` when the link
// names the call), minted by the integrator; taken out of the address bar once read, so it does
// not linger in history or get shared with a copied URL. Single use: the gateway spends it.
const link = (() => {
  const query = new URLSearchParams(window.location.search);
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const join = fragment.get("join") || query.get("join") || "";
  const call = fragment.get("call") || query.get("call") || "";
  if (join) {
    query.delete("join"); query.delete("call");
    const rest = query.toString();
    history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  return { join, call };
})();

function hint() {
  const value = $("hint").value.trim();
  if (!value) return undefined;
  if (value.includes("@")) return { email: value };
  if (/^C-/i.test(value)) return { customer_id: value.toUpperCase() };
  return { phone: value };
}

$("call").onclick = async () => {
  $("error").textContent = "";
  $("call").disabled = true;
  setState("starting the call…");
  try {
    const body = hint() ? { customer_hint: hint() } : {};
    if (link.join) { body.join_token = link.join; link.join = ""; }
    if (link.call) body.call_id = link.call;
    const started = await api("/api/calls/start", body);
    setCredential(started.customer_token);
    page.callId = started.call_id;
    $("callinfo").textContent = `Call ${started.call_id}`;
    const params = new URLSearchParams(window.location.search);
    const leg = new CallLeg({ callId: started.call_id, role: "customer",
                              trickle: params.get("trickle") !== "0", headset: $("headset").checked });
    page.leg = leg;
    leg.addEventListener("state", (e) => {
      page.states.push(e.detail);
      if (e.detail === "connected") setState("connected — waiting for an agent");
      else if (e.detail === "connecting") setState("connecting…");
    });
    leg.addEventListener("call", (e) => {
      page.call = e.detail;
      const agent = e.detail.legs.agent;
      if (agent && agent.state === "connected") setState("connected — talking to an agent");
      else if (agent && agent.state === "ended" && !leg.ended) setState("connected — the agent left");
    });
    leg.addEventListener("remote", (e) => { $("remote").srcObject = e.detail; });
    leg.addEventListener("error", (e) => showError(e.detail));
    leg.addEventListener("ended", (e) => {
      page.ended = e.detail;
      setState(`call ended (${e.detail})`);
      $("hangup").disabled = true;
      $("call").disabled = false;
      clearInterval(timer);
      if (meter) meter.close();
    });
    setState("connecting…");
    await leg.start();
    meter = new LevelMeter(leg.local);
    timer = setInterval(() => { $("mic").value = meter.level(); }, 100);
    $("hangup").disabled = false;
    window.addEventListener("pagehide", () => leg.beacon());
  } catch (err) {
    if (err.status === 401 || err.status === 403) err.message = `This call link cannot be used: ${err.message}`;
    showError(err);
    setState("not connected");
    if (page.leg) page.leg.finish("error");
    $("call").disabled = false;
  }
};

$("hangup").onclick = () => page.leg && page.leg.hangup();
