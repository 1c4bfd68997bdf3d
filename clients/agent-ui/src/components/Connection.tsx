import type { Connection } from "../hooks";
import { type CallStatus, STATUS_LABELS } from "../status";

/**
 * The call's one state, in one badge: live, reconnecting, disconnected, ended
 * or not found. `data-call-state` holds the status, `data-connection` the
 * event stream's own state (the browser tests read both).
 */
export function StatusBadge({ status, connection }: { status: CallStatus; connection: Connection }) {
  return (
    <span
      class={`connection callstate callstate-${status}`}
      data-call-state={status}
      data-connection={connection.state}
      title={connection.detail}
    >
      <span class="connection-dot" aria-hidden="true" />
      <span class="connection-label">{STATUS_LABELS[status]}</span>
    </span>
  );
}

/**
 * What the agent can do about a lost connection, in words. Rendered in a
 * fixed slot (an empty live region when all is well) so it never shifts the page.
 */
export function OutageBanner({
  status,
  connection,
  onRetry,
}: {
  status: CallStatus;
  connection: Connection;
  onRetry: () => void;
}) {
  const down = status === "reconnecting" || status === "disconnected";
  return (
    <div class="outage-slot" role="status" aria-live="polite">
      {down && (
        <div class={`outage banner outage-${status}`} data-outage={status}>
          <p>
            <strong>
              {status === "reconnecting"
                ? `Lost the connection to Callpilot — reconnecting (attempt ${connection.attempts}).`
                : "Disconnected from Callpilot."}
            </strong>{" "}
            {status === "reconnecting"
              ? "Keep talking to the customer: the transcript and suggestions catch up by themselves when it is back. "
              : "The call may still be going on. Press Retry; "}
            If this lasts more than a minute, check your network, then ask your supervisor or IT whether the
            Callpilot gateway is running.
          </p>
          {connection.error !== "" && <p class="muted small outage-detail">{connection.error}</p>}
          {status === "disconnected" && (
            <button type="button" class="btn btn-primary btn-small" onClick={onRetry}>
              Retry
            </button>
          )}
        </div>
      )}
    </div>
  );
}
