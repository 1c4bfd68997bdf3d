// The floor's state, kept apart from the components (and from the network) so
// the rules of how a snapshot and events combine read, and are tested, in one place.

import {
  type Alert,
  AlertKind,
  type CallEvent,
  type FloorCall,
  type ContextUpdate,
  Sentiment,
  type WatchFloorResponse,
} from "@callpilot/sdk";

/** Sentiment points kept per call (the server keeps the same number in snapshots). */
const MAX_POINTS = 50;

export interface FloorRow {
  callId: string;
  customerId: string;
  createMs: number;
  context: ContextUpdate | undefined;
  scores: number[];
  alerts: Alert[];
  lastSequence: bigint;
}

/** A live alert as the page announces it. */
export interface FloorAlert {
  callId: string;
  alert: Alert;
  customer: string;
}

function rowOf(call: FloorCall): FloorRow {
  return {
    callId: call.call?.callId ?? "",
    customerId: call.call?.customerId ?? "",
    createMs: Number(call.call?.createTime?.seconds ?? 0n) * 1000,
    context: call.context,
    scores: [...call.sentimentScores],
    alerts: [...call.alerts],
    lastSequence: call.lastSequence,
  };
}

/** Same rule as the server's snapshot: a new customer score is one that differs from the last. */
function addScore(scores: number[], update: ContextUpdate): number[] {
  if (update.sentiment === Sentiment.UNSPECIFIED || update.segmentId === "") return scores;
  if (scores.length > 0 && scores[scores.length - 1] === update.sentimentScore) return scores;
  return [...scores, update.sentimentScore].slice(-MAX_POINTS);
}

export function customerOf(row: FloorRow): string {
  return row.context?.customer?.name || row.customerId || "Unidentified caller";
}

/**
 * The floor after one update: a snapshot replaces every row; an event changes
 * its call's row (events at or below a row's sequence are already in it).
 * Returns the alerts the update raised, for the live announcement.
 */
export function applyFloor(
  rows: ReadonlyMap<string, FloorRow>,
  update: WatchFloorResponse,
): { rows: Map<string, FloorRow>; raised: FloorAlert[] } {
  if (update.update.case === "snapshot") {
    return { rows: new Map(update.update.value.calls.map((c) => [c.call?.callId ?? "", rowOf(c)])), raised: [] };
  }
  if (update.update.case !== "event") return { rows: new Map(rows), raised: [] };
  const event: CallEvent = update.update.value;
  const next = new Map(rows);
  const payload = event.payload;
  if (payload.case === "callStarted") {
    const call = payload.value.call;
    if (!next.has(event.callId) && call !== undefined) {
      next.set(event.callId, {
        callId: event.callId,
        customerId: call.customerId,
        createMs: Number(call.createTime?.seconds ?? 0n) * 1000,
        context: undefined,
        scores: [],
        alerts: [],
        lastSequence: event.sequence,
      });
    }
    return { rows: next, raised: [] };
  }
  const row = next.get(event.callId);
  if (row === undefined || event.sequence <= row.lastSequence) return { rows: next, raised: [] };
  if (payload.case === "callEnded") {
    next.delete(event.callId);
    return { rows: next, raised: [] };
  }
  if (payload.case === "context") {
    next.set(event.callId, {
      ...row,
      context: payload.value,
      customerId: payload.value.customer?.customerId || row.customerId,
      scores: addScore(row.scores, payload.value),
      lastSequence: event.sequence,
    });
    return { rows: next, raised: [] };
  }
  if (payload.case === "alert") {
    const updated = { ...row, alerts: [...row.alerts, payload.value], lastSequence: event.sequence };
    next.set(event.callId, updated);
    return { rows: next, raised: [{ callId: event.callId, alert: payload.value, customer: customerOf(updated) }] };
  }
  return { rows: next, raised: [] };
}

export function alertLabel(kind: AlertKind): string {
  switch (kind) {
    case AlertKind.SENTIMENT_FALLING:
      return "Sentiment falling";
    case AlertKind.CUSTOMER_PHRASE:
      return "Watched phrase";
    case AlertKind.REQUIRED_PHRASE_MISSING:
      return "Required phrase missing";
    case AlertKind.LONG_SILENCE:
      return "Long silence";
    case AlertKind.TOOL_CONFIRMATION_PENDING:
      return "Tool waiting";
    default:
      return "Alert";
  }
}

/** "↘ falling" style words for a series of scores (screen readers read the words). */
export function trendWords(scores: readonly number[]): { arrow: string; words: string } {
  if (scores.length < 2) return { arrow: "→", words: scores.length === 0 ? "no turns yet" : "one turn" };
  const last = scores[scores.length - 1] ?? 0;
  const before = scores[scores.length - 2] ?? 0;
  if (last < before) return { arrow: "↘", words: "falling" };
  if (last > before) return { arrow: "↗", words: "rising" };
  return { arrow: "→", words: "steady" };
}
