import type { Connection } from "../hooks";

const LABELS: Record<Connection["state"], string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Call ended",
  failed: "Disconnected",
  closed: "Closed",
};

/** Where the event stream stands, in words, with a retry button once it gave up. */
export function ConnectionBadge({ connection, onRetry }: { connection: Connection; onRetry: () => void }) {
  const { state, error, attempts } = connection;
  const detail =
    state === "reconnecting"
      ? `${error} Retry ${attempts}; the view resumes where it left off.`
      : state === "failed"
        ? error
        : "";
  return (
    <div
      class={`connection connection-${state}`}
      role="status"
      aria-live="polite"
      data-connection={state}
      title={connection.detail}
    >
      <span class="connection-dot" aria-hidden="true" />
      <span class="connection-label">{LABELS[state]}</span>
      {detail !== "" && <span class="connection-detail">{detail}</span>}
      {state === "failed" && (
        <button type="button" class="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}
