import { useEffect, useRef, useState } from "preact/hooks";
import type { CallEnded } from "@callpilot/sdk";
import { endReasonLabel, formatDateTime } from "../format";
import { DISPOSITIONS, type Disposition, type SaveState } from "../wrapup";
import { useWrapUp } from "../wrapup-save";

/**
 * Opens when the call ends, where the agent looks: the summary, a
 * disposition, the follow-ups and notes, all editable and saved to the call's
 * record (SaveWrapUp; the last save wins). `readOnly` (the supervisor's view)
 * shows what was saved and offers no edits.
 */
export function WrapUpPanel({ callId, ended, readOnly = false }: { callId: string; ended: CallEnded; readOnly?: boolean }) {
  const { wrapUp, save, update, submit } = useWrapUp(callId, ended.summary);
  const [draft, setDraft] = useState("");
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (readOnly) {
      return;
    }
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
        readOnly={readOnly}
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
        disabled={readOnly}
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
              {!readOnly && (
                <button
                  type="button"
                  class="btn btn-small"
                  aria-label={`Remove follow-up: ${f}`}
                  onClick={() => update({ followUps: wrapUp.followUps.filter((_, j) => j !== i) })}
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {!readOnly && (
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
      )}
      <label class="field-label" for="wrapup-notes">
        Notes
      </label>
      <textarea
        id="wrapup-notes"
        class="field"
        rows={3}
        value={wrapUp.notes}
        readOnly={readOnly}
        onInput={(e) => update({ notes: (e.target as HTMLTextAreaElement).value })}
      />
      <div class="wrapup-actions">
        {!readOnly && (
          <button
            type="button"
            class="btn btn-primary"
            data-action="save-wrapup"
            disabled={save.kind === "saving"}
            onClick={() => void submit()}
          >
            {save.kind === "saving" ? "Saving…" : "Save wrap-up"}
          </button>
        )}
        <SaveStatus save={save} readOnly={readOnly} />
      </div>
    </section>
  );
}

function SaveStatus({ save, readOnly }: { save: SaveState; readOnly: boolean }) {
  if (save.kind === "error") {
    return (
      <p class="wrapup-save error small" role="alert" data-save="error">
        Not saved: {save.message}. Your edits are kept here; try again.
      </p>
    );
  }
  if (save.kind === "saved") {
    const when = save.at === undefined ? "" : ` ${formatDateTime(save.at)}`;
    return (
      <p class="wrapup-save muted small" role="status" data-save="saved">
        Saved{when}
        {save.by !== "" ? ` by ${save.by}` : ""}.
      </p>
    );
  }
  return (
    <p class="wrapup-save muted small" role="status" data-save={save.kind}>
      {save.kind === "saving"
        ? "Saving…"
        : readOnly
          ? "No wrap-up has been saved for this call yet."
          : "Not saved yet: save to keep it on the call's record."}
    </p>
  );
}
