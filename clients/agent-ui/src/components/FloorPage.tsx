import { useEffect, useState } from "preact/hooks";
import { describeError } from "@callpilot/sdk";
import { sentimentLabel, topicLabel } from "../format";
import { linkHandler } from "../router";
import { supervisor } from "../api";
import { alertLabel, applyFloor, customerOf, type FloorAlert, type FloorRow, trendWords } from "../floor";

const RETRY_MS = 2000;

type FloorStatus = "connecting" | "live" | "reconnecting";

/** The floor stream: a fresh snapshot on every (re)connection, then live changes. */
function useFloor(): { rows: Map<string, FloorRow>; alerts: FloorAlert[]; status: FloorStatus; error: string } {
  const [rows, setRows] = useState<Map<string, FloorRow>>(new Map());
  const [alerts, setAlerts] = useState<FloorAlert[]>([]);
  const [status, setStatus] = useState<FloorStatus>("connecting");
  const [error, setError] = useState("");
  useEffect(() => {
    const abort = new AbortController();
    let current = new Map<string, FloorRow>();
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          for await (const update of supervisor.watchFloor(abort.signal)) {
            const { rows: next, raised } = applyFloor(current, update);
            current = next;
            setRows(next);
            setStatus("live");
            setError("");
            if (raised.length > 0) setAlerts((old) => [...raised.reverse(), ...old].slice(0, 20));
          }
        } catch (reason) {
          if (abort.signal.aborted) return;
          setError(describeError(reason));
        }
        setStatus("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    })();
    return () => abort.abort();
  }, []);
  return { rows, alerts, status, error };
}

/** Seconds since each call started, refreshed every second. */
function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

function elapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

/** The supervisor's floor: every live call as a row, alerts as they fire. */
export function FloorPage() {
  const { rows, alerts, status, error } = useFloor();
  const now = useNow();
  const calls = [...rows.values()].sort((a, b) => a.createMs - b.createMs);
  return (
    <div class="floor-page">
      <div class="page-head">
        <h1>Floor</h1>
        <span class={`connection connection-${status}`} data-floor-status={status}>
          <span class="connection-dot" aria-hidden="true" />
          {status === "live" ? "Live" : status === "connecting" ? "Connecting…" : "Reconnecting…"}
        </span>
      </div>
      {error !== "" && (
        <div class="error banner" role="alert">
          <p>
            <strong>The floor lost its connection.</strong> It reconnects by itself and shows a fresh view when
            it does.
          </p>
          <p class="muted small">{error}</p>
        </div>
      )}
      <section class="panel" aria-labelledby="floor-alerts-title">
        <h2 id="floor-alerts-title" class="panel-title">
          Latest alerts <span class="count">{alerts.length}</span>
        </h2>
        <div role="log" aria-live="polite" aria-relevant="additions" class="floor-alerts" data-floor-alerts>
          {alerts.length === 0 ? (
            <p class="empty">No alerts since you opened the floor.</p>
          ) : (
            <ul class="floor-alert-list">
              {alerts.map((a) => (
                <li key={`${a.callId}/${a.alert.alertId}`} class="floor-alert" data-alert-kind={a.alert.kind}>
                  <span class="badge badge-bad">{alertLabel(a.alert.kind)}</span>{" "}
                  <a href={deskHref(a.callId)} onClick={linkHandler(deskHref(a.callId))}>
                    {a.customer}
                  </a>
                  : {a.alert.reason}
                </li>
              ))}
            </ul>
          )}
        </div>
      </section>
      <section class="panel" aria-labelledby="floor-calls-title">
        <h2 id="floor-calls-title" class="panel-title">
          Live calls <span class="count" data-floor-count>{calls.length}</span>
        </h2>
        {calls.length === 0 ? (
          <p class="empty">{status === "live" ? "No live calls right now." : "Loading the floor…"}</p>
        ) : (
          <div class="table-scroll">
            <table class="floor-table">
              <thead>
                <tr>
                  <th scope="col">Customer</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Topic</th>
                  <th scope="col">Sentiment</th>
                  <th scope="col">Alerts</th>
                </tr>
              </thead>
              <tbody>
                {calls.map((row) => (
                  <FloorRowView key={row.callId} row={row} now={now} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

/** The call's desk as the supervisor sees it: read-only (see CallView). */
function deskHref(callId: string): string {
  return `/calls/${encodeURIComponent(callId)}?readonly=1`;
}

function FloorRowView({ row, now }: { row: FloorRow; now: number }) {
  const trend = trendWords(row.scores);
  const last = row.scores[row.scores.length - 1];
  const topics = row.context?.topics ?? [];
  const href = deskHref(row.callId);
  return (
    <tr class="floor-row" data-call-id={row.callId} data-alerts={row.alerts.length}>
      <th scope="row">
        <a href={href} onClick={linkHandler(href)}>
          {customerOf(row)}
        </a>
        <span class="mono small muted floor-call-id">{row.callId}</span>
      </th>
      <td class="mono" data-label="Duration">{row.createMs > 0 ? elapsed(now - row.createMs) : "—"}</td>
      <td data-label="Topic">{topics.length === 0 ? <span class="muted">—</span> : topics.map(topicLabel).join(", ")}</td>
      <td data-label="Sentiment">
        {last === undefined ? (
          <span class="muted">—</span>
        ) : (
          <span class={`floor-trend floor-trend-${trend.words.replace(/ /g, "-")}`}>
            <span aria-hidden="true">{trend.arrow} </span>
            {sentimentLabel(row.context?.sentiment ?? 0)} {last.toFixed(2)}, {trend.words}
          </span>
        )}
      </td>
      <td data-label="Alerts">
        {row.alerts.length === 0 ? (
          <span class="muted">None</span>
        ) : (
          <ul class="chips">
            {row.alerts.map((a) => (
              <li key={a.alertId} class="chip chip-alert" title={a.reason}>
                {alertLabel(a.kind)}
              </li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  );
}
