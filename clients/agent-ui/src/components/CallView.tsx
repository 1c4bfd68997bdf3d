import { useEffect, useState } from "preact/hooks";
import { CallState, type Source, ToolCallStatus, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { endReasonLabel, formatDateTime } from "../format";
import { useLiveCall } from "../hooks";
import { suggestionsNewestFirst, transcript } from "../model";
import { linkHandler } from "../router";
import { ConnectionBadge } from "./Connection";
import { CustomerCard } from "./CustomerCard";
import { Insights } from "./Insights";
import { RecordDialog } from "./Records";
import { Suggestions } from "./Suggestions";
import { ToolResults } from "./ToolResults";
import { Transcript } from "./Transcript";

/** One call, live: transcript, suggestions, customer, lookups and insights. */
export function CallView({ callId }: { callId: string }) {
  const { view, connection, setFeedback, setTool, retry } = useLiveCall(callId);
  const [openSource, setOpenSource] = useState<Source | undefined>(undefined);
  const [endError, setEndError] = useState("");
  const live = view.ended === undefined && view.call?.state !== CallState.ENDED;
  const customer = view.context?.customer;
  // Tickets the agent confirmed on this call: the customer card reloads to show them.
  const ticketsCreated = view.tools.filter(
    (t) => t.toolName === "create_ticket" && t.status === ToolCallStatus.SUCCEEDED,
  ).length;

  useEffect(() => {
    document.title = `${customer?.name ?? callId} · Callpilot`;
  }, [customer?.name, callId]);

  useEffect(() => {
    // "/" jumps to the customer search, as in most web apps.
    const onKey = (event: KeyboardEvent): void => {
      const target = event.target as HTMLElement | null;
      const typing = target !== null && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
      if (event.key === "/" && !typing && !event.metaKey && !event.ctrlKey) {
        event.preventDefault();
        document.getElementById("customer-search-input")?.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const endCall = async (): Promise<void> => {
    setEndError("");
    try {
      await client.endCall(callId, "ended by the agent");
    } catch (reason) {
      setEndError(describeError(reason));
    }
  };

  return (
    <div class="call-view">
      <div class="call-header">
        <a class="back" href="/" onClick={linkHandler("/")}>
          ← Calls
        </a>
        <div class="call-title">
          <h1>{customer?.name ?? "Call"}</h1>
          <span class="muted small mono">{callId}</span>
          {view.call?.createTime !== undefined && (
            <span class="muted small">started {formatDateTime(view.call.createTime)}</span>
          )}
          <span class={`badge ${live ? "badge-live" : "badge-ended"}`} data-call-state={live ? "live" : "ended"}>
            {live ? "Live" : "Ended"}
          </span>
        </div>
        <ConnectionBadge connection={connection} onRetry={retry} />
        {live && view.call !== undefined && (
          <button type="button" class="btn btn-small" onClick={() => void endCall()}>
            End call
          </button>
        )}
      </div>
      {endError !== "" && (
        <p class="error banner" role="alert">
          {endError}
        </p>
      )}
      {view.notices.map((n, i) => (
        <p key={i} class="notice banner" role="status" data-notice={n.code}>
          {n.text}
        </p>
      ))}
      {view.ended !== undefined && (
        <div class="ended banner" role="status">
          <p>
            <strong>Call ended</strong> — {endReasonLabel(view.ended.reason)}
            {view.ended.detail !== "" ? ` (${view.ended.detail})` : ""}.
          </p>
          {view.ended.summary !== "" && (
            <details class="summary">
              <summary>Summary</summary>
              <p>{view.ended.summary}</p>
            </details>
          )}
        </div>
      )}
      <Insights context={view.context} />
      <div class="call-grid">
        <Transcript segments={transcript(view)} live={live} />
        <Suggestions
          callId={callId}
          suggestions={suggestionsNewestFirst(view)}
          onFeedback={setFeedback}
          onOpenSource={setOpenSource}
        />
        <ToolResults callId={callId} tools={view.tools} live={live} onDecided={setTool} />
        <CustomerCard identified={customer} refresh={ticketsCreated} />
      </div>
      {openSource !== undefined && <RecordDialog source={openSource} onClose={() => setOpenSource(undefined)} />}
    </div>
  );
}
