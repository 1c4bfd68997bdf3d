import { useState } from "preact/hooks";
import { FeedbackKind, type Source, describeError } from "@callpilot/sdk";
import { client } from "../api";
import { sourceHref, sourceKindLabel } from "../format";
import type { SuggestionFeedbackView, SuggestionView } from "../model";
import { useTypewriter } from "../typewriter";

export interface SuggestionsProps {
  callId: string;
  suggestions: SuggestionView[];
  onFeedback: (suggestionId: string, feedback: SuggestionFeedbackView) => void;
  onOpenSource: (source: Source) => void;
}

/**
 * Suggestions newest first; superseded ones collapsed underneath. A polite
 * live region announces each new completed suggestion once (the typed-out
 * card itself is not a live region, so screen readers do not read every delta).
 */
export function Suggestions({ callId, suggestions, onFeedback, onOpenSource }: SuggestionsProps) {
  const current = suggestions.filter((s) => s.supersededBy === "");
  const superseded = suggestions.filter((s) => s.supersededBy !== "");
  const newest = current.find((s) => !s.streaming);
  return (
    <section class="panel suggestions-panel" aria-labelledby="suggestions-title" tabIndex={0}>
      <h2 id="suggestions-title" class="panel-title">
        Suggestions
      </h2>
      <div
        class="visually-hidden suggestion-announcer"
        role="status"
        aria-live="polite"
        aria-atomic="true"
        data-announced={newest?.id ?? ""}
      >
        {newest !== undefined ? `New suggestion: ${newest.text}` : ""}
      </div>
      {suggestions.length === 0 && <p class="empty">Suggestions appear here as the customer explains.</p>}
      {current.map((s) => (
        <SuggestionCard key={s.id} callId={callId} suggestion={s} onFeedback={onFeedback} onOpenSource={onOpenSource} />
      ))}
      {superseded.map((s) => (
        <details key={s.id} class="superseded" data-suggestion-id={s.id}>
          <summary>Superseded: {s.text.length > 70 ? `${s.text.slice(0, 67)}…` : s.text}</summary>
          <SuggestionCard callId={callId} suggestion={s} onFeedback={onFeedback} onOpenSource={onOpenSource} />
        </details>
      ))}
    </section>
  );
}

function feedbackWords(feedback: SuggestionFeedbackView | undefined): string {
  if (feedback === undefined) {
    return "";
  }
  switch (feedback.kind) {
    case FeedbackKind.USED:
      return "Used";
    case FeedbackKind.DISMISSED:
      return "Dismissed";
    case FeedbackKind.RATED:
      return `Rated ${feedback.rating} of 5`;
    default:
      return "";
  }
}

async function copyToClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false; // not allowed here (permissions, insecure context): still recorded as used
  }
}

function SuggestionCard({
  callId,
  suggestion,
  onFeedback,
  onOpenSource,
}: {
  callId: string;
  suggestion: SuggestionView;
  onFeedback: (suggestionId: string, feedback: SuggestionFeedbackView) => void;
  onOpenSource: (source: Source) => void;
}) {
  const typed = useTypewriter(suggestion.text, suggestion.live);
  const typing = suggestion.streaming || typed.length < suggestion.text.length;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [copied, setCopied] = useState<boolean | undefined>(undefined);
  const state = suggestion.supersededBy !== "" ? "superseded" : suggestion.streaming ? "streaming" : "complete";

  const send = async (kind: FeedbackKind, rating = 0): Promise<void> => {
    setBusy(true);
    setError("");
    try {
      if (kind === FeedbackKind.USED) {
        setCopied(await copyToClipboard(suggestion.text));
      }
      const stored = await client.submitFeedback(callId, { suggestionId: suggestion.id, kind, rating });
      const fb = stored.feedback;
      onFeedback(suggestion.id, { kind: fb?.kind ?? kind, rating: fb?.rating ?? rating });
    } catch (reason) {
      setError(`Feedback was not saved: ${describeError(reason)}`);
    } finally {
      setBusy(false);
    }
  };

  const done = feedbackWords(suggestion.feedback);
  return (
    <article class={`suggestion suggestion-${state}`} data-suggestion-id={suggestion.id} data-state={state}>
      <p class="suggestion-text" aria-busy={typing}>
        {typed}
        {typing && <span class="caret" aria-hidden="true" />}
      </p>
      {suggestion.sources.length > 0 && (
        <ul class="sources" aria-label="Sources">
          {suggestion.sources.map((source) => (
            <li key={`${source.kind}:${source.id}`}>
              <a
                class="source-link"
                href={sourceHref(source)}
                data-source-kind={sourceKindLabel(source.kind).toLowerCase()}
                data-source-id={source.id}
                onClick={(event: MouseEvent) => {
                  if (event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey) {
                    event.preventDefault();
                    onOpenSource(source);
                  }
                }}
              >
                <span class="source-kind">{sourceKindLabel(source.kind)}</span> {source.title || source.id}
              </a>
            </li>
          ))}
        </ul>
      )}
      {!suggestion.streaming && (
        <div class="suggestion-actions">
          <button type="button" class="btn btn-primary" disabled={busy} onClick={() => void send(FeedbackKind.USED)}>
            Use
          </button>
          <button type="button" class="btn" disabled={busy} onClick={() => void send(FeedbackKind.DISMISSED)}>
            Dismiss
          </button>
          <span class="rating" role="group" aria-label="Rate this suggestion">
            {[1, 2, 3, 4, 5].map((n) => (
              <button
                key={n}
                type="button"
                class={`star${suggestion.feedback?.kind === FeedbackKind.RATED && n <= suggestion.feedback.rating ? " star-on" : ""}`}
                disabled={busy}
                aria-label={`Rate ${n} of 5`}
                title={`Rate ${n} of 5`}
                onClick={() => void send(FeedbackKind.RATED, n)}
              >
                ★
              </button>
            ))}
          </span>
          {done !== "" && (
            <span class="feedback-done" data-feedback={done}>
              {done}
              {copied === true && suggestion.feedback?.kind === FeedbackKind.USED ? " · copied" : ""}
            </span>
          )}
        </div>
      )}
      {error !== "" && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </article>
  );
}
