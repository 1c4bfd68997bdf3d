// The call view's state, folded from the call's events. Pure functions only:
// the same events always give the same view (tested in test/model.test.ts).

import {
  type Call,
  type CallEnded,
  type CallEvent,
  type ContextUpdate,
  type FeedbackKind,
  type Notice,
  type Source,
  SpeakerRole,
  type ToolCall,
  ToolCallStatus,
} from "@callpilot/sdk";

/** One utterance of the transcript: interim (dimmed) until its final arrives. */
export interface Segment {
  readonly id: string;
  readonly role: SpeakerRole;
  readonly text: string;
  readonly final: boolean;
}

export interface SuggestionFeedbackView {
  readonly kind: FeedbackKind;
  readonly rating: number;
}

export interface SuggestionView {
  readonly id: string;
  /** Text so far: the concatenated deltas, then the completed text. */
  readonly text: string;
  /** True while deltas arrive and before `suggestion_completed`. */
  readonly streaming: boolean;
  /** True when it was streamed live (deltas seen), so the view types it out. */
  readonly live: boolean;
  readonly sources: readonly Source[];
  readonly supersedes: string;
  /** Id of the suggestion that replaced this one, if any. */
  readonly supersededBy: string;
  readonly feedback: SuggestionFeedbackView | undefined;
}

export interface CallViewState {
  readonly callId: string;
  readonly call: Call | undefined;
  readonly ended: CallEnded | undefined;
  readonly lastSequence: bigint;
  /** Segment ids in order of first appearance. */
  readonly segmentOrder: readonly string[];
  readonly segments: Readonly<Record<string, Segment>>;
  /** Suggestion ids in order of first appearance. */
  readonly suggestionOrder: readonly string[];
  readonly suggestions: Readonly<Record<string, SuggestionView>>;
  readonly tools: readonly ToolCall[];
  readonly context: ContextUpdate | undefined;
  readonly notices: readonly Notice[];
}

export function initialState(callId: string): CallViewState {
  return {
    callId,
    call: undefined,
    ended: undefined,
    lastSequence: 0n,
    segmentOrder: [],
    segments: {},
    suggestionOrder: [],
    suggestions: {},
    tools: [],
    context: undefined,
    notices: [],
  };
}

function emptySuggestion(id: string): SuggestionView {
  return {
    id,
    text: "",
    streaming: true,
    live: false,
    sources: [],
    supersedes: "",
    supersededBy: "",
    feedback: undefined,
  };
}

function withSuggestion(
  state: CallViewState,
  id: string,
  update: (current: SuggestionView) => SuggestionView,
): CallViewState {
  const current = state.suggestions[id];
  return {
    ...state,
    suggestionOrder: current === undefined ? [...state.suggestionOrder, id] : state.suggestionOrder,
    suggestions: { ...state.suggestions, [id]: update(current ?? emptySuggestion(id)) },
  };
}

/**
 * A tool call's latest state. A proposed write tool is sent again, same id,
 * once the agent decided it; the decided call also comes back from
 * SubmitFeedback. A decided call is final: a late pending copy never undoes it.
 */
export function applyToolCall(state: CallViewState, tool: ToolCall): CallViewState {
  const at = state.tools.findIndex((t) => t.toolCallId === tool.toolCallId);
  if (at === -1) {
    return { ...state, tools: [...state.tools, tool] };
  }
  const current = state.tools[at];
  const pending = ToolCallStatus.PENDING_CONFIRMATION;
  if (current !== undefined && current.status !== pending && tool.status === pending) {
    return state;
  }
  return { ...state, tools: state.tools.map((t, i) => (i === at ? tool : t)) };
}

/**
 * Fold one event into the view. `lastSequence` is the last durable sequence
 * applied: a durable event at or below it is a replayed duplicate and is
 * ignored. Ephemeral events (interims, deltas) carry the sequence of the
 * durable event before them and are always applied.
 */
export function applyEvent(state: CallViewState, event: CallEvent): CallViewState {
  if (event.durable && event.sequence <= state.lastSequence) {
    return state;
  }
  const next: CallViewState = event.durable ? { ...state, lastSequence: event.sequence } : { ...state };
  const payload = event.payload;
  switch (payload.case) {
    case "callStarted":
      return { ...next, call: payload.value.call ?? next.call };
    case "transcript": {
      const t = payload.value;
      const existing = next.segments[t.segmentId];
      if (existing?.final && !t.isFinal) {
        return next; // a late interim never replaces the final
      }
      return {
        ...next,
        segmentOrder: existing === undefined ? [...next.segmentOrder, t.segmentId] : next.segmentOrder,
        segments: {
          ...next.segments,
          [t.segmentId]: { id: t.segmentId, role: t.role, text: t.text, final: t.isFinal },
        },
      };
    }
    case "context":
      return { ...next, context: payload.value };
    case "toolCall":
      return applyToolCall(next, payload.value);
    case "suggestionDelta": {
      const delta = payload.value;
      return withSuggestion(next, delta.suggestionId, (s) =>
        s.streaming ? { ...s, text: s.text + delta.text, live: true } : s,
      );
    }
    case "suggestionCompleted": {
      const done = payload.value;
      let updated = withSuggestion(next, done.suggestionId, (s) => ({
        ...s,
        text: done.text,
        streaming: false,
        sources: done.sources,
        supersedes: done.supersedesSuggestionId,
      }));
      if (done.supersedesSuggestionId !== "" && updated.suggestions[done.supersedesSuggestionId] !== undefined) {
        updated = withSuggestion(updated, done.supersedesSuggestionId, (s) => ({
          ...s,
          supersededBy: done.suggestionId,
        }));
      }
      return updated;
    }
    case "notice":
      return { ...next, notices: [...next.notices, payload.value] };
    case "callEnded":
      return { ...next, ended: payload.value };
    default:
      return next; // speech activity and future event kinds
  }
}

/** Record the agent's feedback on a suggestion (after SubmitFeedback succeeded). */
export function applyFeedback(
  state: CallViewState,
  suggestionId: string,
  feedback: SuggestionFeedbackView,
): CallViewState {
  if (state.suggestions[suggestionId] === undefined) {
    return state;
  }
  return withSuggestion(state, suggestionId, (s) => ({ ...s, feedback }));
}

/** The transcript in order. */
export function transcript(state: CallViewState): Segment[] {
  return state.segmentOrder.flatMap((id) => {
    const segment = state.segments[id];
    return segment === undefined ? [] : [segment];
  });
}

/** Suggestions newest first: current ones, then superseded ones. */
export function suggestionsNewestFirst(state: CallViewState): SuggestionView[] {
  const all = state.suggestionOrder.flatMap((id) => {
    const s = state.suggestions[id];
    return s === undefined ? [] : [s];
  });
  all.reverse();
  return [...all.filter((s) => s.supersededBy === ""), ...all.filter((s) => s.supersededBy !== "")];
}

export function roleLabel(role: SpeakerRole): string {
  switch (role) {
    case SpeakerRole.CUSTOMER:
      return "Customer";
    case SpeakerRole.AGENT:
      return "Agent";
    default:
      return "Speaker";
  }
}
