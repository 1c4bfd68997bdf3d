// Words for the enums and records the view shows.

import {
  CallEndReason,
  CallState,
  type Duration,
  EntityType,
  type JsonValue,
  PolicyType,
  Sentiment,
  type Source,
  SourceKind,
  type Timestamp,
  Topic,
  durationMs,
  timestampDate,
} from "@callpilot/sdk";

export function topicLabel(topic: Topic): string {
  switch (topic) {
    case Topic.BILLING:
      return "Billing";
    case Topic.REFUND:
      return "Refund";
    case Topic.RETURN:
      return "Return";
    case Topic.SHIPPING:
      return "Shipping";
    case Topic.TECHNICAL:
      return "Technical";
    case Topic.CANCELLATION:
      return "Cancellation";
    case Topic.ACCOUNT:
      return "Account";
    default:
      return "Other";
  }
}

export function entityLabel(type: EntityType): string {
  switch (type) {
    case EntityType.ORDER_NUMBER:
      return "Order";
    case EntityType.MONEY:
      return "Amount";
    case EntityType.EMAIL:
      return "Email";
    case EntityType.PHONE_NUMBER:
      return "Phone";
    case EntityType.PERSON_NAME:
      return "Name";
    default:
      return "Entity";
  }
}

export function sentimentLabel(sentiment: Sentiment): string {
  switch (sentiment) {
    case Sentiment.NEGATIVE:
      return "Negative";
    case Sentiment.NEUTRAL:
      return "Neutral";
    case Sentiment.POSITIVE:
      return "Positive";
    default:
      return "Unknown";
  }
}

export function callStateLabel(state: CallState): string {
  switch (state) {
    case CallState.ACTIVE:
      return "Live";
    case CallState.ENDED:
      return "Ended";
    default:
      return "Unknown";
  }
}

export function endReasonLabel(reason: CallEndReason): string {
  switch (reason) {
    case CallEndReason.CLIENT_ENDED:
      return "ended by the caller's platform";
    case CallEndReason.END_CALL_RPC:
      return "ended from the desk";
    case CallEndReason.STREAM_ABORTED:
      return "the audio stream broke off";
    case CallEndReason.INVALID_INPUT:
      return "stopped on bad input";
    case CallEndReason.SERVER_SHUTDOWN:
      return "the server shut down";
    case CallEndReason.SERVER_RESTART:
      return "the server restarted after a failure";
    case CallEndReason.INTERNAL_ERROR:
      return "stopped by an internal error";
    default:
      return "ended";
  }
}

/** "get_order_details" -> "Order details". */
export function toolLabel(name: string): string {
  const words = name.replace(/^(get|check|search|lookup|find)_/, "").split("_").filter(Boolean);
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function formatTime(ts: Timestamp | undefined): string {
  if (ts === undefined) {
    return "";
  }
  return timestampDate(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatDateTime(ts: Timestamp | undefined): string {
  if (ts === undefined) {
    return "";
  }
  return timestampDate(ts).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function formatDate(ts: Timestamp | undefined): string {
  if (ts === undefined) {
    return "";
  }
  return timestampDate(ts).toLocaleDateString([], { dateStyle: "medium" });
}

export function formatDuration(d: Duration | undefined): string {
  if (d === undefined) {
    return "";
  }
  const ms = durationMs(d);
  return ms < 1000 ? `${Math.max(1, Math.round(ms))} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function formatMoney(amount: string, currency: string): string {
  const value = Number(amount);
  if (!Number.isFinite(value) || currency === "") {
    return amount;
  }
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${amount} ${currency}`;
  }
}

/** Where a suggestion's source links to in the app. */
export function sourceHref(source: Source): string {
  const id = encodeURIComponent(source.id);
  switch (source.kind) {
    case SourceKind.ORDER:
      return `/orders/${id}`;
    case SourceKind.POLICY:
      return `/policies/${id}`;
    case SourceKind.ARTICLE:
      return `/articles/${id}?title=${encodeURIComponent(source.title)}`;
    case SourceKind.CUSTOMER:
      return `/customers/${id}`;
    case SourceKind.TICKET:
      return `/tickets/${id}`;
    default:
      return "#";
  }
}

export function sourceKindLabel(kind: SourceKind): string {
  switch (kind) {
    case SourceKind.ORDER:
      return "Order";
    case SourceKind.POLICY:
      return "Policy";
    case SourceKind.ARTICLE:
      return "Article";
    case SourceKind.CUSTOMER:
      return "Customer";
    case SourceKind.TICKET:
      return "Ticket";
    default:
      return "Source";
  }
}

/** "return" / "RETURN" / "POLICY_TYPE_RETURN" -> PolicyType.RETURN. */
export function policyTypeFromId(id: string): PolicyType {
  const name = id.toUpperCase().replace(/^POLICY_TYPE_/, "");
  switch (name) {
    case "RETURN":
      return PolicyType.RETURN;
    case "REFUND":
      return PolicyType.REFUND;
    case "WARRANTY":
      return PolicyType.WARRANTY;
    case "SLA":
      return PolicyType.SLA;
    default:
      return PolicyType.UNSPECIFIED;
  }
}

const LABEL_KEYS = ["name", "title", "order_number", "ticket_id", "article_id", "customer_id", "id"];
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** What names a JSON record: its name, title or id. */
function recordLabel(value: JsonValue): string | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return undefined;
  }
  for (const key of LABEL_KEYS) {
    const label = value[key];
    if (typeof label === "string" && label !== "") {
      return key === "order_number" ? `#${label}` : label;
    }
  }
  return undefined;
}

/** A JSON value in one short line. */
export function jsonSummary(value: JsonValue | undefined): string {
  if (value === undefined || value === null) {
    return "—";
  }
  if (typeof value === "string") {
    if (ISO_TIME.test(value)) {
      const date = new Date(value);
      if (!Number.isNaN(date.getTime())) {
        return date.toLocaleDateString([], { dateStyle: "medium" });
      }
    }
    return value.length > 80 ? `${value.slice(0, 77)}…` : value;
  }
  if (typeof value === "number" || typeof value === "boolean") {
    return String(value);
  }
  if (Array.isArray(value)) {
    if (value.length === 0) {
      return "none";
    }
    const labels = value.map((v) => (typeof v === "object" && v !== null ? recordLabel(v) : jsonSummary(v)));
    if (labels.every((l) => l !== undefined)) {
      const shown = labels.slice(0, 3).join(", ");
      return value.length > 3 ? `${shown} +${value.length - 3} more` : shown;
    }
    return `${value.length} item${value.length === 1 ? "" : "s"}`;
  }
  return recordLabel(value) ?? `${Object.keys(value).length} fields`;
}

/** 83_000 -> "1:23"; 3_723_000 -> "1:02:03". */
export function formatOffset(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
