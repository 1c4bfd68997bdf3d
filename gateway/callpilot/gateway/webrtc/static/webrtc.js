// Callpilot browser calls: one party's connection to a call through the gateway.
//
// Used by the customer page (/call) and the minimal agent page (/answer);
// any other page (the agent web app) can follow the same steps, documented
// in docs/webrtc.md:
//   GET  /api/webrtc/ice-servers         -> RTCPeerConnection({iceServers})
//   ws   /ws/ice-candidates/{id}?role=R  -> trickle ICE both ways + call state
//   POST /api/webrtc/offer               -> the gateway's answer
//   POST /api/webrtc/hangup (or {"type": "hangup"} on the websocket)

// Microphone processing, chosen for speech recognition:
// - noiseSuppression and autoGainControl OFF: both reshape the speech signal
//   (spectral gating smears consonants, AGC pumps the level between words),
//   which raised Whisper's word error rate; the recogniser copes with room
//   noise and level changes far better than with their artefacts.
// - echoCancellation ON by default: without it, the other party's voice
//   coming out of the speakers is picked up by this microphone and
//   transcribed as THIS party's words, with the wrong role, and the assistant
//   would react to the agent's own sentences as if the customer said them.
//   With a headset there is no echo, so the pages offer to turn it off.
export function audioConstraints({ headset = false } = {}) {
  return {
    echoCancellation: !headset,
    noiseSuppression: false,
    autoGainControl: false,
    channelCount: 1,
  };
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the gateway answered HTTP ${status}`);
    this.status = status;
    this.code = error.code || "HTTP_" + status;
    this.field = error.field || "";
  }
}

// The credential this page presents to the gateway when it runs with auth on: the customer
// page's per-call token (from /api/calls/start), or the agent's key or token on /answer.
let credential = "";
export function setCredential(value) { credential = value || ""; }
export function withCredential(path) {
  if (!credential) return path;
  const url = new URL(path, window.location.href);
  url.searchParams.set("access_token", credential);
  return url.pathname + url.search;
}

export async function api(path, body) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (credential) headers.Authorization = `Bearer ${credential}`;
  const init = body === undefined
    ? { method: "GET", headers }
    : { method: "POST", headers, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error(`the gateway cannot be reached (${err.message})`);
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

function wsUrl(path) {
  const url = new URL(withCredential(path), window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

// An audio level from 0 to 1 for a MediaStream, sampled by an AnalyserNode.
export class LevelMeter {
  constructor(stream) {
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(stream);
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.peak = 0;
  }
  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    this.peak = Math.max(this.peak, rms);
    return Math.min(1, rms * 4);
  }
  close() { this.context.close().catch(() => {}); }
}

// One party (role "customer" or "agent") on one call.
//   events: "state" (detail: pc.connectionState), "call" (detail: the gateway's call snapshot),
//           "remote" (detail: MediaStream), "ended" (detail: reason), "error" (detail: Error)
export class CallLeg extends EventTarget {
  constructor({ callId, role, trickle = true, headset = false }) {
    super();
    this.callId = callId;
    this.role = role;
    this.trickle = trickle;
    this.headset = headset;
    this.pc = null;
    this.ws = null;
    this.local = null;
    this.remote = null;
    this.states = [];
    this.answerCandidates = new Set();
    this.ended = false;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async start() {
    const ice = await api("/api/webrtc/ice-servers");
    this.local = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints({ headset: this.headset }) });
    const pc = new RTCPeerConnection({ iceServers: ice.iceServers });
    this.pc = pc;
    for (const track of this.local.getAudioTracks()) pc.addTrack(track, this.local);
    pc.ontrack = (event) => {
      this.remote = event.streams[0] || new MediaStream([event.track]);
      this.emit("remote", this.remote);
    };
    pc.onconnectionstatechange = () => {
      this.states.push(pc.connectionState);
      this.emit("state", pc.connectionState);
      if (pc.connectionState === "failed") this.finish("the connection failed (ICE)");
    };
    if (this.trickle) {
      await this.openSocket();
      pc.onicecandidate = (event) => {
        const c = event.candidate;
        if (c && c.candidate) {
          this.send({ type: "candidate", candidate: c.candidate, sdpMid: c.sdpMid,
                      sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment });
        } else {
          this.send({ type: "end-of-candidates" });
        }
      };
    }
    await pc.setLocalDescription(await pc.createOffer());
    if (!this.trickle) await this.gatheringComplete(5000);
    const answer = await api("/api/webrtc/offer", {
      call_id: this.callId, role: this.role, sdp: pc.localDescription.sdp, type: "offer",
    });
    for (const line of answer.sdp.split(/\r?\n/)) {
      if (line.startsWith("a=candidate:")) this.answerCandidates.add(line.slice(2));
    }
    await pc.setRemoteDescription(answer);
    if (!this.trickle) await this.openSocket().catch(() => {});  // call state only
  }

  openSocket() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(`/ws/ice-candidates/${encodeURIComponent(this.callId)}?role=${this.role}`));
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("the signalling websocket could not be opened"));
      ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
      ws.onclose = () => { this.ws = null; };
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async onMessage(message) {
    if (message.type === "candidate") {
      if (this.answerCandidates.has(message.candidate) || !this.pc || !this.pc.remoteDescription) return;
      try { await this.pc.addIceCandidate(message); } catch (err) { /* stale candidate */ }
    } else if (message.type === "state" || message.type === "ended") {
      this.emit("call", message.call);
      const mine = message.call.legs[this.role];
      if (message.type === "ended" || (mine && mine.state === "ended" && this.pc && this.pc.remoteDescription)) {
        this.finish(message.call.end_reason || (mine && mine.reason) || "the call ended");
      }
    } else if (message.type === "error") {
      this.emit("error", new Error(message.error.message));
    }
  }

  gatheringComplete(timeoutMs) {
    const pc = this.pc;
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  async inboundAudioBytes() {
    if (!this.pc) return 0;
    let bytes = 0;
    (await this.pc.getStats()).forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "audio") bytes += report.bytesReceived || 0;
    });
    return bytes;
  }

  async hangup() {
    if (this.ended) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.send({ type: "hangup" });
    } else {
      await api("/api/webrtc/hangup", { call_id: this.callId, role: this.role }).catch(() => {});
    }
    this.finish("you hung up");
  }

  // Tell the gateway even when the tab is closing (the fetch would be cancelled).
  beacon() {
    if (this.ended) return;
    const body = new Blob([JSON.stringify({ call_id: this.callId, role: this.role })], { type: "application/json" });
    navigator.sendBeacon(withCredential("/api/webrtc/hangup"), body);
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    if (this.pc) this.pc.close();
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    if (this.ws) this.ws.close();
    this.emit("ended", reason);
  }
}
