// The agent's wrap-up of an ended call: summary, disposition, follow-ups and
// notes, editable. Saving needs a server RPC that does not exist yet, so the
// edits live in the app's state (this module, per call id) for as long as the
// tab is open: leaving the call and coming back keeps them.

import { useCallback, useState } from "preact/hooks";

export type Disposition = "" | "resolved" | "follow-up" | "escalated" | "callback" | "unresolved";

export const DISPOSITIONS: readonly { value: Disposition; label: string }[] = [
  { value: "", label: "Choose…" },
  { value: "resolved", label: "Resolved on the call" },
  { value: "follow-up", label: "Resolved, follow-up needed" },
  { value: "escalated", label: "Escalated" },
  { value: "callback", label: "Customer to call back" },
  { value: "unresolved", label: "Not resolved" },
];

export interface WrapUp {
  readonly summary: string;
  readonly disposition: Disposition;
  readonly followUps: readonly string[];
  readonly notes: string;
  /** True once the agent changed anything (the server's summary is no longer the whole story). */
  readonly edited: boolean;
}

const store = new Map<string, WrapUp>();

/** The follow-ups the server's summary lists ("Follow-ups: ..."), one per sentence. */
export function followUpsFromSummary(summary: string): string[] {
  const line = summary.split("\n").find((l) => /^follow-ups?:/i.test(l.trim()));
  if (line === undefined) {
    return [];
  }
  const text = line.replace(/^\s*follow-ups?:\s*/i, "").trim();
  if (text === "" || /^none recorded\.?$/i.test(text)) {
    return [];
  }
  return text
    .split(/(?<=[.!?])\s+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function initialWrapUp(summary: string): WrapUp {
  return { summary, disposition: "", followUps: followUpsFromSummary(summary), notes: "", edited: false };
}

/** The wrap-up of `callId`, created from the server's summary the first time. */
export function useWrapUp(callId: string, summary: string): [WrapUp, (change: Partial<WrapUp>) => void] {
  const [wrapUp, setWrapUp] = useState<WrapUp>(() => store.get(callId) ?? initialWrapUp(summary));
  const current = store.get(callId) ?? wrapUp;
  // A summary that arrived after the panel opened fills it in, unless the agent already edited it.
  const shown = !current.edited && current.summary === "" && summary !== "" ? initialWrapUp(summary) : current;
  const update = useCallback(
    (change: Partial<WrapUp>) => {
      const next = { ...(store.get(callId) ?? shown), ...change, edited: true };
      store.set(callId, next);
      setWrapUp(next);
    },
    [callId, shown],
  );
  return [shown, update];
}
