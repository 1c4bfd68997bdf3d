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
  SourceKind,
  durationMs,
  timestampMs,
} from "@callpilot/sdk";

/** One utterance of the transcript: interim (dimmed) until its final arrives. */
export interface Segment {
  readonly id: string;
  readonly role: SpeakerRole;
  readonly text: string;
  readonly final: boolean;
  /** Where the utterance starts, in ms from the start of the speaker's audio; undefined when not sent. */
  readonly startMs?: number | undefined;
  /** When the server first sent the segment (epoch ms); undefined when the event had no time. */
  readonly atMs?: number | undefined;
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
  /** The last durable event's sequence: where a resumed watch starts again. */
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
 * Fold one event into the view.
 *
 * Durable events are numbered: one at or below `lastSequence` is a replay and
 * is ignored. Ephemeral events (interim transcripts, suggestion deltas) carry
 * the last durable sequence and may repeat it, so they are never deduplicated
 * by sequence: they are keyed by `segmentId` / `suggestionId`, and a final
 * segment or a completed suggestion is never changed by a late ephemeral one.
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
          [t.segmentId]: {
            id: t.segmentId,
            role: t.role,
            text: t.text,
            final: t.isFinal,
            startMs: t.startOffset !== undefined ? durationMs(t.startOffset) : existing?.startMs,
            atMs: existing?.atMs ?? (event.time !== undefined ? timestampMs(event.time) : undefined),
          },
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

/** Who the customer is, from the first evidence the events give. */
export interface Identity {
  readonly customerId: string;
  /** Empty when only the id is known (a hint given when the call started). */
  readonly name: string;
  readonly from: "context" | "lookup" | "call";
}

function lookedUpCustomer(tool: ToolCall): Identity | undefined {
  if (tool.toolName !== "lookup_customer" || tool.status !== ToolCallStatus.SUCCEEDED) {
    return undefined;
  }
  const customer = tool.result?.["customer"];
  if (customer === null || typeof customer !== "object" || Array.isArray(customer)) {
    return undefined;
  }
  const id = customer["customer_id"];
  const name = customer["name"];
  return typeof id === "string" && id !== ""
    ? { customerId: id, name: typeof name === "string" ? name : "", from: "lookup" }
    : undefined;
}

/**
 * The one source of the customer's identity for the title, the card and the
 * lookups: the context engine's customer once it is known; before that the
 * latest successful customer lookup (it arrives seconds earlier, and the
 * suggestion citing it is already on screen); else the id the call started with.
 */
export function identity(state: CallViewState): Identity | undefined {
  const c = state.context?.customer;
  if (c !== undefined && c.customerId !== "") {
    return { customerId: c.customerId, name: c.name, from: "context" };
  }
  for (let i = state.tools.length - 1; i >= 0; i -= 1) {
    const tool = state.tools[i];
    const found = tool === undefined ? undefined : lookedUpCustomer(tool);
    if (found !== undefined) {
      return found;
    }
  }
  const id = state.call?.customerId ?? "";
  return id !== "" ? { customerId: id, name: "", from: "call" } : undefined;
}

/**
 * A suggestion that only states who is calling: every source it cites is the
 * customer record. Identity belongs on the customer card, so the view does not
 * show it as a suggestion. Decided only once it completed (sources come then).
 */
export function isIdentityOnly(s: SuggestionView): boolean {
  return !s.streaming && s.sources.length > 0 && s.sources.every((src) => src.kind === SourceKind.CUSTOMER);
}

/** Suggestions to show, newest first: identity statements left out. */
export function visibleSuggestions(state: CallViewState): SuggestionView[] {
  return suggestionsNewestFirst(state).filter((s) => !isIdentityOnly(s));
}

function lookupKey(tool: ToolCall): string {
  return `${tool.toolName}\u0000${JSON.stringify(tool.arguments ?? {})}`;
}

/**
 * The lookups panel's cards, in event order: a successful customer lookup is
 * left out (the customer card shows who it is), and a lookup repeated with the
 * same arguments and outcome is shown once, as its latest copy, with a count.
 * Write tools (proposals) and failures are always shown.
 */
export function visibleTools(state: CallViewState): { tool: ToolCall; repeats: number }[] {
  const shown: { tool: ToolCall; repeats: number }[] = [];
  const at = new Map<string, number>();
  for (const tool of state.tools) {
    if (lookedUpCustomer(tool) !== undefined) {
      continue;
    }
    const repeatable = tool.status === ToolCallStatus.SUCCEEDED && tool.decision === undefined;
    const key = repeatable ? lookupKey(tool) : "";
    const previous = key === "" ? undefined : at.get(key);
    if (previous !== undefined) {
      const entry = shown[previous];
      if (entry !== undefined) {
        shown[previous] = { tool, repeats: entry.repeats + 1 };
      }
      continue;
    }
    if (key !== "") {
      at.set(key, shown.length);
    }
    shown.push({ tool, repeats: 1 });
  }
  return shown;
}

/**
 * Where a line sits in the call, in ms from the call's start: the recogniser's
 * offset when it sent one, else when the server first sent the line.
 */
export function segmentOffsetMs(state: CallViewState, segment: Segment): number | undefined {
  if (segment.startMs !== undefined && segment.startMs > 0) {
    return segment.startMs;
  }
  const start = state.call?.createTime;
  if (segment.atMs === undefined || start === undefined) {
    return segment.startMs;
  }
  return Math.max(0, segment.atMs - timestampMs(start));
}
