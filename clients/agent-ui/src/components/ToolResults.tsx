import { useEffect, useRef, useState } from "preact/hooks";
import {
  type JsonObject,
  type JsonValue,
  type ToolCall,
  ToolCallStatus,
  ToolDecisionKind,
  describeError,
} from "@callpilot/sdk";
import { client } from "../api";
import { formatDuration, formatMoney, jsonSummary, toolLabel } from "../format";

/**
 * The lookups the assistant ran and the actions it proposes, newest first, as
 * compact cards. `onDecided` gets a decided tool call as SubmitFeedback answers it.
 */
export function ToolResults({
  callId,
  tools,
  live,
  onDecided,
}: {
  callId: string;
  tools: readonly { tool: ToolCall; repeats: number }[];
  live: boolean;
  onDecided: (tool: ToolCall) => void;
}) {
  const newest = [...tools].reverse();
  return (
    <section class="panel tools-panel" aria-labelledby="tools-title" tabIndex={0}>
      <h2 id="tools-title" class="panel-title">
        Lookups
      </h2>
      {newest.length === 0 && <p class="empty">The assistant's lookups (orders, policies, articles) show here.</p>}
      <div class="tool-cards">
        {newest.map(({ tool, repeats }) => (
          <ToolCard key={tool.toolCallId} callId={callId} tool={tool} repeats={repeats} live={live} onDecided={onDecided} />
        ))}
      </div>
    </section>
  );
}

function humanKey(key: string): string {
  const text = key.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// Shown first when present; ids already in the arguments and long text are left out.
const FIRST = ["name", "title", "status", "total", "tier", "items", "orders", "tickets", "hits"];
const SKIP = new Set(["body", "snippet", "currency_code", "type"]);

/** The interesting fields of a result: unwrap {"order": {...}}, keep scalars, summarise lists. */
function resultRows(result: JsonObject | undefined, args: JsonObject | undefined): [string, string][] {
  if (result === undefined) {
    return [];
  }
  let body: JsonObject = result;
  const keys = Object.keys(result);
  const only = keys.length === 1 && keys[0] !== undefined ? result[keys[0]] : undefined;
  if (only !== undefined && only !== null && typeof only === "object" && !Array.isArray(only)) {
    body = only;
  }
  const argValues = new Set(Object.values(args ?? {}).map((v) => String(v)));
  const entries = Object.entries(body).filter(
    ([key, value]) => !SKIP.has(key) && !(typeof value === "string" && argValues.has(value)),
  );
  const rank = (key: string): number => {
    const i = FIRST.indexOf(key);
    return i === -1 ? FIRST.length : i;
  };
  entries.sort((a, b) => rank(a[0]) - rank(b[0]));
  const currency = typeof body["currency_code"] === "string" ? body["currency_code"] : "";
  return entries.slice(0, 6).map(([key, value]) => {
    const text = key === "total" && typeof value === "string" ? formatMoney(value, currency) : jsonSummary(value as JsonValue);
    return [humanKey(key), text];
  });
}

/** The first sentence of a policy's or article's text. */
function resultExcerpt(result: JsonObject | undefined): string {
  const values = Object.values(result ?? {});
  const inner = values.length === 1 ? values[0] : undefined;
  const record = inner !== null && typeof inner === "object" && !Array.isArray(inner) ? inner : result;
  const body = record?.["body"];
  if (typeof body !== "string" || body === "") {
    return "";
  }
  const sentence = body.split(/(?<=[.!?])\s/)[0] ?? body;
  return sentence.length > 160 ? `${sentence.slice(0, 157)}…` : sentence;
}

const STATUS: Record<number, { label: string; badge: string }> = {
  [ToolCallStatus.SUCCEEDED]: { label: "ok", badge: "badge-good" },
  [ToolCallStatus.FAILED]: { label: "failed", badge: "badge-bad" },
  [ToolCallStatus.PENDING_CONFIRMATION]: { label: "needs you", badge: "badge-warn" },
  [ToolCallStatus.CANCELLED]: { label: "cancelled", badge: "" },
};

const DECIDED: Record<number, string> = {
  [ToolDecisionKind.CONFIRM]: "Confirmed by the agent",
  [ToolDecisionKind.REVISE]: "Revised by the agent",
  [ToolDecisionKind.CANCEL]: "Cancelled by the agent",
};

/** What became of a proposed action: who decided, and why it did not run. */
function outcome(tool: ToolCall): string {
  const decided = tool.decision === undefined ? "" : (DECIDED[tool.decision.kind] ?? "");
  const comment = tool.decision?.comment ?? "";
  const parts = [decided, comment !== "" ? `“${comment}”` : ""];
  if (tool.status === ToolCallStatus.CANCELLED && tool.error !== "") {
    parts.push(tool.error.charAt(0).toUpperCase() + tool.error.slice(1));
  }
  return parts.filter((p) => p !== "").join(" · ");
}

function ToolCard({
  callId,
  tool,
  repeats,
  live,
  onDecided,
}: {
  callId: string;
  tool: ToolCall;
  repeats: number;
  live: boolean;
  onDecided: (tool: ToolCall) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [revising, setRevising] = useState(false);
  const [error, setError] = useState("");
  const failed = tool.status === ToolCallStatus.FAILED;
  const pending = tool.status === ToolCallStatus.PENDING_CONFIRMATION;
  const status = STATUS[tool.status] ?? { label: "", badge: "" };
  const args = Object.entries(tool.arguments ?? {}).map(([k, v]) => `${humanKey(k)}: ${jsonSummary(v as JsonValue)}`);
  // A proposal has not run: its result is only the model's "awaiting confirmation" note.
  const rows = pending ? [] : resultRows(tool.result, tool.arguments);
  const excerpt = pending ? "" : resultExcerpt(tool.result);
  const decided = outcome(tool);

  const decide = async (kind: ToolDecisionKind, revised?: JsonObject, comment?: string): Promise<void> => {
    setBusy(true);
    setError("");
    try {
      // The decided call is shown at once; the event stream brings the same call again.
      const decision = {
        toolCallId: tool.toolCallId,
        kind,
        ...(revised !== undefined ? { arguments: revised } : {}),
        ...(comment !== undefined && comment !== "" ? { comment } : {}),
      };
      onDecided(await client.decideTool(callId, decision));
      setRevising(false);
    } catch (reason) {
      setError(describeError(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <article
      class={`tool-card${failed ? " tool-failed" : ""}${pending ? " tool-pending" : ""}`}
      data-tool-call-id={tool.toolCallId}
      data-tool-name={tool.toolName}
      data-tool-status={status.label}
    >
      <header class="tool-head">
        <span class="tool-name">{toolLabel(tool.toolName)}</span>
        {repeats > 1 && (
          <span class="badge repeats" title={`Looked up ${repeats} times with the same answer`}>
            ×{repeats}
          </span>
        )}
        {status.label !== "" && <span class={`badge ${status.badge}`}>{status.label}</span>}
        <span class="muted small">{formatDuration(tool.duration)}</span>
      </header>
      {args.length > 0 && <div class="tool-args muted small">{args.join(" · ")}</div>}
      {failed ? (
        <p class="error">{tool.error || "The lookup failed."}</p>
      ) : (
        <>
          <dl class="kv kv-compact">
            {rows.map(([k, v]) => [<dt key={`${k}-k`}>{k}</dt>, <dd key={`${k}-v`}>{v}</dd>])}
          </dl>
          {excerpt !== "" && <p class="tool-excerpt">{excerpt}</p>}
        </>
      )}
      {decided !== "" && (
        <p class="tool-outcome small" data-decision={ToolDecisionKind[tool.decision?.kind ?? ToolDecisionKind.UNSPECIFIED]}>
          {decided}
        </p>
      )}
      {pending && live && !revising && (
        <div class="tool-actions">
          <span class="small">The assistant proposes this action. Run it?</span>
          <button type="button" class="btn btn-primary btn-small" disabled={busy} onClick={() => void decide(ToolDecisionKind.CONFIRM)}>
            Confirm
          </button>
          <button type="button" class="btn btn-small" disabled={busy} onClick={() => setRevising(true)}>
            Revise
          </button>
          <button type="button" class="btn btn-small" disabled={busy} onClick={() => void decide(ToolDecisionKind.CANCEL)}>
            Cancel
          </button>
        </div>
      )}
      {pending && live && revising && (
        <ReviseForm
          tool={tool}
          busy={busy}
          onSubmit={(revised, comment) => void decide(ToolDecisionKind.REVISE, revised, comment)}
          onBack={() => setRevising(false)}
        />
      )}
      {error !== "" && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </article>
  );
}

/**
 * Edit a proposed action's arguments before it runs (REVISE). Scalar
 * arguments get a field each and keep their JSON type; others are left as proposed.
 */
function ReviseForm({
  tool,
  busy,
  onSubmit,
  onBack,
}: {
  tool: ToolCall;
  busy: boolean;
  onSubmit: (revised: JsonObject, comment: string) => void;
  onBack: () => void;
}) {
  const proposed: JsonObject = tool.arguments ?? {};
  // Ids (customer_id, ...) come last: the words are what an agent usually corrects.
  const editable = Object.entries(proposed)
    .filter(([, v]) => typeof v === "string" || typeof v === "number" || typeof v === "boolean")
    .sort((a, b) => Number(a[0].endsWith("_id")) - Number(b[0].endsWith("_id")));
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(editable.map(([k, v]) => [k, String(v)])),
  );
  const [comment, setComment] = useState("");
  const [problem, setProblem] = useState("");
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  const idFor = (key: string): string => `revise-${tool.toolCallId}-${key}`;

  const submit = (event: Event): void => {
    event.preventDefault();
    const revised: JsonObject = { ...proposed };
    for (const [key, original] of editable) {
      const text = (values[key] ?? "").trim();
      if (typeof original === "number") {
        const n = Number(text);
        if (text === "" || !Number.isFinite(n)) {
          setProblem(`${humanKey(key)} must be a number.`);
          return;
        }
        revised[key] = n;
      } else if (typeof original === "boolean") {
        revised[key] = text === "true";
      } else {
        if (text === "" && original !== "") {
          setProblem(`${humanKey(key)} cannot be empty.`);
          return;
        }
        revised[key] = text;
      }
    }
    setProblem("");
    onSubmit(revised, comment.trim());
  };

  return (
    <form class="revise-form" onSubmit={submit} aria-label={`Revise ${toolLabel(tool.toolName)}`}>
      {editable.map(([key], i) => (
        <div class="revise-field" key={key}>
          <label class="field-label" for={idFor(key)}>
            {humanKey(key)}
          </label>
          <input
            id={idFor(key)}
            ref={i === 0 ? first : undefined}
            class="field"
            data-argument={key}
            value={values[key] ?? ""}
            onInput={(e) => setValues({ ...values, [key]: (e.target as HTMLInputElement).value })}
          />
        </div>
      ))}
      <div class="revise-field">
        <label class="field-label" for={idFor("__comment")}>
          Note (optional)
        </label>
        <input
          id={idFor("__comment")}
          class="field"
          value={comment}
          onInput={(e) => setComment((e.target as HTMLInputElement).value)}
        />
      </div>
      {problem !== "" && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      <div class="tool-actions">
        <button type="submit" class="btn btn-primary btn-small" disabled={busy}>
          Run with these changes
        </button>
        <button type="button" class="btn btn-small" disabled={busy} onClick={onBack}>
          Back
        </button>
      </div>
    </form>
  );
}
