import { useState } from "preact/hooks";
import { type Call, CallState, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { formatDateTime } from "../format";
import { usePolling } from "../hooks";
import { linkHandler, navigate } from "../router";

const POLL_MS = 3000;

// Customer names by id, shared by every render of the list: each id is fetched once.
const names = new Map<string, string | Promise<void>>();

/** The names of the customers in `calls`; unknown ones are fetched (a failure leaves the id shown). */
function useCustomerNames(calls: Call[] | undefined): ReadonlyMap<string, string | Promise<void>> {
  const [, setVersion] = useState(0);
  for (const c of calls ?? []) {
    const id = c.customerId;
    if (id !== "" && !names.has(id)) {
      names.set(
        id,
        client.getCustomer(id).then(
          (r) => {
            names.set(id, r.customer?.name ?? "");
            setVersion((v) => v + 1);
          },
          () => {
            names.set(id, "");
            setVersion((v) => v + 1);
          },
        ),
      );
    }
  }
  return names;
}

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

  const customerNames = useCustomerNames(calls);
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
        <div class="error banner outage" role="alert" data-outage="calls">
          <p>
            <strong>Cannot reach Callpilot.</strong> The list retries every few seconds by itself. If this lasts
            more than a minute, check your network, then ask your supervisor or IT whether the Callpilot gateway
            is running.
          </p>
          <p class="muted small outage-detail">{error}</p>
        </div>
      )}
      {calls === undefined && error === "" && <p class="muted">Loading calls…</p>}
      {calls !== undefined && (
        <>
          <CallTable title="Live" calls={live} names={customerNames} empty="No live calls right now." />
          <CallTable title="Recent" calls={recent} names={customerNames} empty="No recent calls." />
        </>
      )}
    </div>
  );
}

function CallTable({
  title,
  calls,
  names: customerNames,
  empty,
}: {
  title: string;
  calls: Call[];
  names: ReadonlyMap<string, string | Promise<void>>;
  empty: string;
}) {
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
                <CustomerName id={c.customerId} name={customerNames.get(c.customerId)} />
                <span class="muted small">{formatDateTime(c.createTime)}</span>
                <span class="call-summary muted small">{summaryLine(c.summary)}</span>
                <span class="mono small muted call-id">{c.callId}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function CustomerName({ id, name }: { id: string; name: string | Promise<void> | undefined }) {
  if (id === "") {
    return <span class="call-customer muted">Unidentified caller</span>;
  }
  const known = typeof name === "string" && name !== "";
  return (
    <span class="call-customer" data-customer-id={id}>
      {known ? name : id}
      {known && <span class="muted small call-customer-id"> {id}</span>}
    </span>
  );
}

/** The summary's first line that says more than who called (the row already names the customer). */
function summaryLine(summary: string): string {
  const lines = summary.split("\n").filter((l) => l.trim() !== "");
  return lines.find((l) => !/^customer:/i.test(l.trim())) ?? lines[0] ?? "";
}
