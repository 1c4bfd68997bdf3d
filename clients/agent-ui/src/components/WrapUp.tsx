import { useEffect, useRef, useState } from "preact/hooks";
import type { CallEnded } from "@callpilot/sdk";
import { endReasonLabel } from "../format";
import { DISPOSITIONS, type Disposition, useWrapUp } from "../wrapup";

/**
 * Opens when the call ends, where the agent looks: the summary, a
 * disposition, the follow-ups and notes, all editable. Saving needs a server
 * RPC that does not exist yet; the edits stay in the app while the tab is open.
 */
export function WrapUpPanel({ callId, ended }: { callId: string; ended: CallEnded }) {
  const [wrapUp, update] = useWrapUp(callId, ended.summary);
  const [draft, setDraft] = useState("");
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    // The call just ended: take the agent to the wrap-up (focus, not a jump of the layout).
    heading.current?.focus({ preventScroll: true });
  }, []);

  const addFollowUp = (event: Event): void => {
    event.preventDefault();
    const text = draft.trim();
    if (text !== "") {
      update({ followUps: [...wrapUp.followUps, text] });
      setDraft("");
    }
  };

  return (
    <section class="panel wrapup-panel" aria-labelledby="wrapup-title" data-wrapup="open" tabIndex={0}>
      <h2 id="wrapup-title" class="wrapup-title" tabIndex={-1} ref={heading}>
        Wrap-up
      </h2>
      <p class="wrapup-reason" data-detail={ended.detail}>
        Call ended — {endReasonLabel(ended.reason)}.
      </p>
      <label class="field-label" for="wrapup-summary">
        Summary
      </label>
      <textarea
        id="wrapup-summary"
        class="field wrapup-summary"
        rows={6}
        value={wrapUp.summary}
        placeholder="No summary was produced for this call: write one."
        onInput={(e) => update({ summary: (e.target as HTMLTextAreaElement).value })}
      />
      <label class="field-label" for="wrapup-disposition">
        Disposition
      </label>
      <select
        id="wrapup-disposition"
        class="field"
        value={wrapUp.disposition}
        onChange={(e) => update({ disposition: (e.target as HTMLSelectElement).value as Disposition })}
      >
        {DISPOSITIONS.map((d) => (
          <option key={d.value} value={d.value}>
            {d.label}
          </option>
        ))}
      </select>
      <h3 class="field-label" id="wrapup-followups-title">
        Follow-ups
      </h3>
      {wrapUp.followUps.length === 0 ? (
        <p class="muted small">None yet.</p>
      ) : (
        <ul class="followups" aria-labelledby="wrapup-followups-title">
          {wrapUp.followUps.map((f, i) => (
            <li key={`${i}:${f}`}>
              <span>{f}</span>
              <button
                type="button"
                class="btn btn-small"
                aria-label={`Remove follow-up: ${f}`}
                onClick={() => update({ followUps: wrapUp.followUps.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <form class="followup-add" onSubmit={addFollowUp}>
        <label for="wrapup-followup-input" class="visually-hidden">
          New follow-up
        </label>
        <input
          id="wrapup-followup-input"
          class="field"
          placeholder="Add a follow-up (e.g. email the return label)"
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="btn">
          Add
        </button>
      </form>
      <label class="field-label" for="wrapup-notes">
        Notes
      </label>
      <textarea
        id="wrapup-notes"
        class="field"
        rows={3}
        value={wrapUp.notes}
        onInput={(e) => update({ notes: (e.target as HTMLTextAreaElement).value })}
      />
      <p class="wrapup-save muted small" data-save="pending">
        Your edits are kept in this tab. Saving them to the call's record is not available yet (it needs a
        wrap-up API on the server).
      </p>
    </section>
  );
}
