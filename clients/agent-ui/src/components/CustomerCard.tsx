import { useState } from "preact/hooks";
import { type Customer, type GetCustomerResponse, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { formatDate, formatMoney } from "../format";
import { useLoad } from "../hooks";
import type { Identity } from "../model";
import { linkHandler } from "../router";

/**
 * Who the customer is: filled when the call identifies them, or by a manual
 * search (SearchCustomers) when it has not (or identified the wrong person).
 */
export function CustomerCard({ identified, refresh = 0 }: { identified: Identity | undefined; refresh?: number }) {
  const [manualId, setManualId] = useState("");
  const customerId = manualId !== "" ? manualId : (identified?.customerId ?? "");
  // `refresh` changes when the call changed the customer's records (a ticket was created).
  const details = useLoad(customerId, (id) => client.getCustomer(id), refresh);

  return (
    <section class="panel customer-panel" aria-labelledby="customer-title" tabIndex={0}>
      <h2 id="customer-title" class="panel-title">
        Customer
      </h2>
      {customerId === "" && <p class="empty">Not identified yet. Search below to look the customer up.</p>}
      {details.status === "loading" && (
        <div class="customer-loading" aria-busy="true">
          <div class="customer-name">{manualId === "" && identified?.name ? identified.name : "Loading the customer…"}</div>
          <div class="muted small">{customerId} · loading the record…</div>
        </div>
      )}
      {details.status === "error" && (
        <p class="error" role="alert">
          {details.error}
        </p>
      )}
      {details.status === "done" && (
        <CustomerDetails
          details={details.value}
          source={manualId !== "" ? "Looked up manually" : "Identified from the call"}
        />
      )}
      {manualId !== "" && identified !== undefined && identified.customerId !== manualId && (
        <button type="button" class="btn btn-small" onClick={() => setManualId("")}>
          Back to {identified.name || identified.customerId} (identified from the call)
        </button>
      )}
      <CustomerSearch onPick={(c) => setManualId(c.customerId)} />
    </section>
  );
}

function CustomerDetails({ details, source }: { details: GetCustomerResponse; source: string }) {
  const c = details.customer;
  if (c === undefined) {
    return null;
  }
  return (
    <div class="customer-card" data-customer-id={c.customerId}>
      <div class="customer-head">
        <div>
          <div class="customer-name">{c.name}</div>
          <div class="muted small">
            {c.customerId} · {source}
          </div>
        </div>
        <div class="customer-badges">
          {c.tier !== "" && <span class={`badge tier tier-${c.tier}`}>{c.tier}</span>}
          {c.status !== "" && <span class={`badge status status-${c.status}`}>{c.status}</span>}
        </div>
      </div>
      <dl class="kv">
        <dt>Email</dt>
        <dd>{c.email || "—"}</dd>
        <dt>Phone</dt>
        <dd>{c.phone || "—"}</dd>
      </dl>
      <h3 class="sub-title">Latest orders</h3>
      {details.orders.length === 0 ? (
        <p class="muted small">No orders.</p>
      ) : (
        <ul class="mini-list">
          {details.orders.slice(0, 5).map((o) => (
            <li key={o.orderNumber}>
              <a href={`/orders/${encodeURIComponent(o.orderNumber)}`} onClick={linkHandler(`/orders/${o.orderNumber}`)}>
                #{o.orderNumber}
              </a>{" "}
              <span class="muted">{formatDate(o.orderTime)}</span>
              <span class={`badge order-status status-${o.status}`}>{o.status}</span>
              <span class="amount">{formatMoney(o.total, o.currencyCode)}</span>
            </li>
          ))}
        </ul>
      )}
      <h3 class="sub-title">Tickets</h3>
      {details.tickets.length === 0 ? (
        <p class="muted small">No tickets.</p>
      ) : (
        <ul class="mini-list">
          {details.tickets.slice(0, 5).map((t) => (
            <li key={t.ticketId}>
              <span class="mono">{t.ticketId}</span> {t.subject}
              <span class={`badge status-${t.status}`}>{t.status}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function CustomerSearch({ onPick }: { onPick: (customer: Customer) => void }) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<Customer[] | undefined>(undefined);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const search = async (event: Event): Promise<void> => {
    event.preventDefault();
    const q = query.trim();
    if (q === "") {
      setError("Type a name, email or phone number to search.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      setResults(await client.searchCustomers(q, 8));
    } catch (reason) {
      setError(describeError(reason));
      setResults(undefined);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="customer-search" role="search" onSubmit={(e) => void search(e)}>
      <label for="customer-search-input" class="visually-hidden">
        Search customers
      </label>
      <input
        id="customer-search-input"
        type="search"
        placeholder="Search customers (name, email, phone) — press /"
        value={query}
        onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="btn" disabled={busy}>
        Search
      </button>
      {error !== "" && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {results !== undefined && (
        <ul class="search-results" aria-label="Matching customers">
          {results.length === 0 && <li class="muted">No customer matches “{query}”.</li>}
          {results.map((c) => (
            <li key={c.customerId}>
              <button
                type="button"
                class="link-button"
                onClick={() => {
                  onPick(c);
                  setResults(undefined);
                }}
              >
                <strong>{c.name}</strong> <span class="muted">{c.customerId}</span>{" "}
                <span class="muted small">{c.email || c.phone}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}
