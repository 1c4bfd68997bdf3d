// The minimal agent answer page (/answer).
import { api, CallLeg, LevelMeter, setCredential, withCredential } from "/webrtc/webrtc.js";

// The agent's key or token when the gateway runs with auth on: the one the agent app keeps for
// this tab (sessionStorage), or one pasted here. Without auth nothing is asked.
const STORAGE = "callpilot.credential";
setCredential(sessionStorage.getItem(STORAGE) || "");

const $ = (id) => document.getElementById(id);
// Read by the browser tests; harmless for people.
const page = (window.callpilotPage = { callId: "", states: [], call: null, errors: [], leg: null,
                                       ended: "", finals: [], events: 0 });
let micMeter = null, remoteMeter = null, timer = null, source = null;
function tick() {
  if (remoteMeter) $("level").value = remoteMeter.level();
  if (micMeter) $("mic").value = micMeter.level();
}

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

async function refreshWaiting() {
  if (page.leg && !page.leg.ended) return;
  try {
    const { calls } = await api("/api/calls/waiting");
    const list = $("waiting");
    list.replaceChildren();
    if (!calls.length) list.innerHTML = '<li class="muted">Nobody is waiting.</li>';
    for (const call of calls) {
      const li = document.createElement("li");
      const since = new Date(call.created * 1000).toLocaleTimeString();
      const who = document.createElement("span");
      who.textContent = `${call.customer_id || "Unidentified caller"} · waiting since ${since}`;
      li.append(who);
      const button = document.createElement("button");
      button.textContent = "Answer";
      button.className = "primary";
      button.type = "button";
      button.setAttribute("aria-label", `Answer ${call.customer_id || "the unidentified caller"}`);
      button.onclick = () => answer(call.call_id);
      li.append(button);
      list.append(li);
    }
    document.getElementById("signin").hidden = true;
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      document.getElementById("signin").hidden = false;
      document.getElementById("signin-reason").textContent = err.message;
    }
  }
}

const ROLE = { SPEAKER_ROLE_CUSTOMER: "customer", SPEAKER_ROLE_AGENT: "agent" };
function followEvents(callId) {
  source = new EventSource(withCredential(`/api/calls/${encodeURIComponent(callId)}/events`));
  const interims = new Map();
  source.onmessage = (msg) => {
    const event = JSON.parse(msg.data);
    page.events += 1;
    if (event.transcript) {
      const t = event.transcript, role = ROLE[t.role] || "customer";
      let line = interims.get(t.segmentId);
      if (!line) {
        line = document.createElement("p");
        interims.set(t.segmentId, line);
        $("transcript").append(line);
      }
      line.className = role + (t.isFinal ? "" : " interim");
      line.innerHTML = `<b>${role}:</b> `;
      line.append(document.createTextNode(t.text));
      if (t.isFinal) page.finals.push({ role, text: t.text });
    } else if (event.suggestionCompleted) {
      $("suggestion").className = "";
      $("suggestion").textContent = event.suggestionCompleted.text;
    } else if (event.callEnded) {
      source.close();
    }
  };
  source.addEventListener("end", () => source.close());
}

async function answer(callId) {
  $("error").textContent = "";
  if (!callId) { showError("enter a call id or pick a waiting customer"); return; }
  $("answer").disabled = true;
  setState("answering…");
  try {
    const leg = new CallLeg({ callId, role: "agent", headset: $("headset").checked });
    page.leg = leg;
    page.callId = callId;
    leg.addEventListener("state", (e) => {
      page.states.push(e.detail);
      setState(e.detail === "connected" ? "connected" : e.detail);
    });
    leg.addEventListener("call", (e) => {
      page.call = e.detail;
      const customer = e.detail.legs.customer;
      if (customer && customer.state === "ended" && !leg.ended) setState(`connected — the customer left (${customer.reason})`);
    });
    leg.addEventListener("remote", (e) => {
      $("remote").srcObject = e.detail;
      if (remoteMeter) remoteMeter.close();
      remoteMeter = new LevelMeter(e.detail);
    });
    leg.addEventListener("error", (e) => showError(e.detail));
    leg.addEventListener("ended", (e) => {
      page.ended = e.detail;
      setState(`call ended (${e.detail})`);
      $("hangup").disabled = true;
      $("answer").disabled = false;
      clearInterval(timer);
      for (const m of [micMeter, remoteMeter]) if (m) m.close();
      micMeter = remoteMeter = null;
    });
    await leg.start();
    micMeter = new LevelMeter(leg.local);
    clearInterval(timer);
    timer = setInterval(tick, 100);
    $("hangup").disabled = false;
    followEvents(callId);
    window.addEventListener("pagehide", () => leg.beacon());
  } catch (err) {
    showError(err);
    setState("not connected");
    if (page.leg) page.leg.finish("error");
    $("answer").disabled = false;
  }
}

$("answer").onclick = () => answer($("callid").value.trim());
$("signin-form").onsubmit = (e) => {
  e.preventDefault();
  const key = $("agent-key").value.trim();
  $("agent-key").value = "";
  if (key) sessionStorage.setItem(STORAGE, key);
  setCredential(key);
  refreshWaiting();
};
$("hangup").onclick = () => page.leg && page.leg.hangup();
const preset = new URLSearchParams(window.location.search).get("call_id");
if (preset) $("callid").value = preset;
refreshWaiting();
setInterval(refreshWaiting, 2000);
