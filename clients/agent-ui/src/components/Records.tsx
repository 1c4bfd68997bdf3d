import { useEffect, useRef } from "preact/hooks";
import { type Source, SourceKind } from "@callpilot/sdk";
import { client } from "../api";
import { formatDate, formatDateTime, formatMoney, policyTypeFromId } from "../format";
import { useLoad } from "../hooks";
import type { RecordKind } from "../router";

export function recordKindOf(source: Source): RecordKind | undefined {
  switch (source.kind) {
    case SourceKind.ORDER:
      return "orders";
    case SourceKind.POLICY:
      return "policies";
    case SourceKind.ARTICLE:
      return "articles";
    case SourceKind.CUSTOMER:
      return "customers";
    case SourceKind.TICKET:
      return "tickets";
    default:
      return undefined;
  }
}

/** One directory record (order, policy, article, customer), fetched through the SDK. */
export function RecordView({ kind, id, title }: { kind: RecordKind; id: string; title?: string }) {
  switch (kind) {
    case "orders":
      return <OrderRecord orderNumber={id} />;
    case "policies":
      return <PolicyRecord id={id} />;
    case "articles":
      return <ArticleRecord id={id} title={title ?? ""} />;
    case "customers":
      return <CustomerRecord id={id} />;
    case "tickets":
      return (
        <div class="record">
          <h2>Ticket {id}</h2>
          <p class="muted">{title}</p>
          <p class="muted">Tickets are listed on the customer's card.</p>
        </div>
      );
  }
}

function Failure({ error }: { error: string }) {
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

function OrderRecord({ orderNumber }: { orderNumber: string }) {
  const load = useLoad(orderNumber, (n) => client.getOrder(n));
  if (load.status === "error") return <Failure error={load.error} />;
  if (load.status !== "done") return <p class="muted">Loading order {orderNumber}…</p>;
  const o = load.value;
  return (
    <div class="record" data-record="order">
      <h2>Order #{o.orderNumber}</h2>
      <dl class="kv">
        <dt>Status</dt>
        <dd>{o.status}</dd>
        <dt>Total</dt>
        <dd>{formatMoney(o.total, o.currencyCode)}</dd>
        <dt>Placed</dt>
        <dd>{formatDateTime(o.orderTime)}</dd>
        <dt>Delivered</dt>
        <dd>{o.deliveredTime !== undefined ? formatDate(o.deliveredTime) : "not yet"}</dd>
        <dt>Customer</dt>
        <dd>{o.customerId}</dd>
      </dl>
      <table class="items">
        <thead>
          <tr>
            <th scope="col">Item</th>
            <th scope="col">SKU</th>
            <th scope="col">Qty</th>
            <th scope="col">Price</th>
          </tr>
        </thead>
        <tbody>
          {o.items.map((item) => (
            <tr key={item.sku}>
              <td>{item.name}</td>
              <td class="mono">{item.sku}</td>
              <td>{item.quantity}</td>
              <td>{formatMoney(item.unitPrice, o.currencyCode)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function PolicyRecord({ id }: { id: string }) {
  const load = useLoad(id, (key) => client.getPolicy(policyTypeFromId(key)));
  if (load.status === "error") return <Failure error={load.error} />;
  if (load.status !== "done") return <p class="muted">Loading the policy…</p>;
  return (
    <div class="record" data-record="policy">
      <h2>{load.value.title}</h2>
      <p class="record-body">{load.value.body}</p>
    </div>
  );
}

function ArticleRecord({ id, title }: { id: string; title: string }) {
  const load = useLoad(`${id}\n${title}`, async () => {
    for (const query of [title, id].filter((q) => q !== "")) {
      const hit = (await client.searchKnowledge(query, 20)).find((h) => h.article?.articleId === id);
      if (hit?.article !== undefined) {
        return hit.article;
      }
    }
    return undefined;
  });
  if (load.status === "error") return <Failure error={load.error} />;
  if (load.status !== "done") return <p class="muted">Loading article {id}…</p>;
  if (load.value === undefined) return <Failure error={`Article ${id} was not found in the knowledge base.`} />;
  return (
    <div class="record" data-record="article">
      <h2>{load.value.title}</h2>
      <p class="muted small">{load.value.articleId}</p>
      <p class="record-body">{load.value.body}</p>
    </div>
  );
}

function CustomerRecord({ id }: { id: string }) {
  const load = useLoad(id, (key) => client.getCustomer(key));
  if (load.status === "error") return <Failure error={load.error} />;
  if (load.status !== "done") return <p class="muted">Loading the customer…</p>;
  const c = load.value.customer;
  return (
    <div class="record" data-record="customer">
      <h2>{c?.name ?? id}</h2>
      <dl class="kv">
        <dt>Id</dt>
        <dd>{c?.customerId}</dd>
        <dt>Tier</dt>
        <dd>{c?.tier}</dd>
        <dt>Status</dt>
        <dd>{c?.status}</dd>
        <dt>Email</dt>
        <dd>{c?.email}</dd>
        <dt>Phone</dt>
        <dd>{c?.phone}</dd>
      </dl>
    </div>
  );
}

/** A modal with one record; Escape or the close button closes it. */
export function RecordDialog({ source, onClose }: { source: Source; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = dialog.current;
    if (el !== null && !el.open) {
      el.showModal();
    }
  }, []);
  const kind = recordKindOf(source);
  return (
    <dialog ref={dialog} class="record-dialog" onClose={onClose} aria-label={source.title || source.id}>
      <form method="dialog" class="dialog-close">
        <button type="submit" class="btn btn-small" aria-label="Close">
          Close ✕
        </button>
      </form>
      {kind === undefined ? <p>{source.title}</p> : <RecordView kind={kind} id={source.id} title={source.title} />}
    </dialog>
  );
}
