import { useState } from "preact/hooks";
import { type Call, CallState, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { formatDateTime } from "../format";
import { usePolling } from "../hooks";
import { linkHandler, navigate } from "../router";

const POLL_MS = 3000;

/** Live calls first, then recent ones; refreshed every few seconds. */
export function CallList() {
  const [calls, setCalls] = useState<Call[] | undefined>(undefined);
  const [error, setError] = useState("");
  const [goTo, setGoTo] = useState("");

  usePolling(() => {
    client.listCalls({ pageSize: 50 }).then(
      (response) => {
        setCalls(response.calls);
        setError("");
      },
      (reason: unknown) => setError(describeError(reason)),
    );
  }, POLL_MS);

  const live = (calls ?? []).filter((c) => c.state === CallState.ACTIVE);
  const recent = (calls ?? []).filter((c) => c.state !== CallState.ACTIVE);

  return (
    <div class="call-list-page">
      <div class="page-head">
        <h1>Calls</h1>
        <form
          class="goto"
          onSubmit={(e) => {
            e.preventDefault();
            if (goTo.trim() !== "") navigate(`/calls/${encodeURIComponent(goTo.trim())}`);
          }}
        >
          <label for="goto-input" class="visually-hidden">
            Open a call by id
          </label>
          <input
            id="goto-input"
            placeholder="Open a call by id"
            value={goTo}
            onInput={(e) => setGoTo((e.target as HTMLInputElement).value)}
          />
          <button type="submit" class="btn">
            Open
          </button>
        </form>
      </div>
      {error !== "" && (
        <p class="error banner" role="alert">
          {error}
        </p>
      )}
      {calls === undefined && error === "" && <p class="muted">Loading calls…</p>}
      {calls !== undefined && (
        <>
          <CallTable title="Live" calls={live} empty="No live calls right now." />
          <CallTable title="Recent" calls={recent} empty="No recent calls." />
        </>
      )}
    </div>
  );
}

function CallTable({ title, calls, empty }: { title: string; calls: Call[]; empty: string }) {
  const id = `calls-${title.toLowerCase()}`;
  return (
    <section class="panel" aria-labelledby={id}>
      <h2 id={id} class="panel-title">
        {title} <span class="count">{calls.length}</span>
      </h2>
      {calls.length === 0 ? (
        <p class="empty">{empty}</p>
      ) : (
        <ul class="calls">
          {calls.map((c) => (
            <li key={c.callId} class="call-row" data-call-id={c.callId}>
              <a href={`/calls/${encodeURIComponent(c.callId)}`} onClick={linkHandler(`/calls/${c.callId}`)}>
                <span class={`badge ${c.state === CallState.ACTIVE ? "badge-live" : "badge-ended"}`}>
                  {c.state === CallState.ACTIVE ? "Live" : "Ended"}
                </span>
                <span class="call-customer">{c.customerId || "Unknown customer"}</span>
                <span class="muted small">{formatDateTime(c.createTime)}</span>
                <span class="call-summary muted small">{c.summary.split("\n")[0] ?? ""}</span>
                <span class="mono small muted call-id">{c.callId}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
