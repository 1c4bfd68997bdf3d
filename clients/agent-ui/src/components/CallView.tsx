import { useEffect, useState } from "preact/hooks";
import { type Source, ToolCallStatus, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { formatDateTime } from "../format";
import { useLiveCall } from "../hooks";
import { identity, segmentOffsetMs, transcript, visibleSuggestions, visibleTools } from "../model";
import { linkHandler } from "../router";
import { callStatus } from "../status";
import { OutageBanner, StatusBadge } from "./Connection";
import { CustomerCard } from "./CustomerCard";
import { Insights } from "./Insights";
import { NotFound } from "./NotFound";
import { RecordDialog } from "./Records";
import { Suggestions } from "./Suggestions";
import { ToolResults } from "./ToolResults";
import { Transcript } from "./Transcript";
import { WrapUpPanel } from "./WrapUp";

/**
 * One call: transcript, suggestions, customer, lookups and insights while it
 * is live; the wrap-up panel once it ended. Its state on screen is one value
 * (see status.ts), and who the customer is comes from one place (model.identity).
 */
export function CallView({ callId }: { callId: string }) {
  const { view, connection, setFeedback, setTool, retry } = useLiveCall(callId);
  const [openSource, setOpenSource] = useState<Source | undefined>(undefined);
  const [endError, setEndError] = useState("");
  // The supervisor's view from the floor (?readonly=1): the same desk, every action off.
  const readOnly = new URLSearchParams(window.location.search).get("readonly") === "1";
  const status = callStatus(view, connection);
  const live = status !== "ended";
  const who = identity(view);
  const name = who?.name ?? "";
  // Tickets the agent confirmed on this call: the customer card reloads to show them.
  const ticketsCreated = view.tools.filter(
    (t) => t.toolName === "create_ticket" && t.status === ToolCallStatus.SUCCEEDED,
  ).length;

  useEffect(() => {
    document.title = status === "not-found" ? "Call not found · Callpilot" : `${name || "Call"} · Callpilot`;
  }, [name, status]);

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

  if (status === "not-found") {
    return (
      <NotFound title="Call not found">
        <p>
          There is no call with the id <code class="mono">{callId}</code>. Check the id, or pick the call from the
          list.
        </p>
      </NotFound>
    );
  }

  const endCall = async (): Promise<void> => {
    setEndError("");
    try {
      await client.endCall(callId, "ended by the agent");
    } catch (reason) {
      setEndError(describeError(reason));
    }
  };

  const lines = transcript(view).map((segment) => ({ segment, offsetMs: segmentOffsetMs(view, segment) }));
  return (
    <div class={`call-view call-${status}`} data-status={status}>
      <div class="call-header">
        <a class="back" href="/" onClick={linkHandler("/")}>
          ← Calls
        </a>
        <div class="call-title">
          <h1 data-identity={who?.from ?? ""}>{name || (who !== undefined ? who.customerId : "Unidentified caller")}</h1>
          <StatusBadge status={status} connection={connection} />
          {view.call?.createTime !== undefined && (
            <span class="muted small">started {formatDateTime(view.call.createTime)}</span>
          )}
          <span class="muted small mono call-id">{callId}</span>
        </div>
        {status === "live" && !readOnly && (
          <button type="button" class="btn btn-small btn-end" onClick={() => void endCall()}>
            End call
          </button>
        )}
      </div>
      {readOnly && (
        <p class="notice banner readonly-banner" role="status" data-readonly="1">
          Supervisor view: read-only. Suggestions, tools, the wrap-up and ending the call are the agent's.
        </p>
      )}
      <OutageBanner status={status} connection={connection} onRetry={retry} />
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
      <Insights context={view.context} />
      <div class={`call-grid${view.ended !== undefined ? " call-grid-ended" : ""}`}>
        <Transcript lines={lines} live={live} />
        {view.ended !== undefined && <WrapUpPanel callId={callId} ended={view.ended} readOnly={readOnly} />}
        {/* Read-only: a disabled fieldset turns off every feedback and tool button inside (links still open). */}
        <fieldset class="call-actions" disabled={readOnly}>
          <Suggestions
            callId={callId}
            suggestions={visibleSuggestions(view)}
            onFeedback={setFeedback}
            onOpenSource={setOpenSource}
          />
          <ToolResults callId={callId} tools={visibleTools(view)} live={live} onDecided={setTool} />
        </fieldset>
        <CustomerCard identified={who} refresh={ticketsCreated} />
      </div>
      {openSource !== undefined && <RecordDialog source={openSource} onClose={() => setOpenSource(undefined)} />}
    </div>
  );
}
