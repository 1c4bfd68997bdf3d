import { describe, expect, it } from "vitest";
import {
  type CallEvent,
  CallEventSchema,
  FeedbackKind,
  type MessageInitShape,
  SourceKind,
  SourceSchema,
  SpeakerRole,
  create,
} from "@callpilot/sdk";
import { applyEvent, applyFeedback, initialState, suggestionsNewestFirst, transcript } from "../src/model";
import { parseRoute } from "../src/router";
import { policyTypeFromId, sourceHref, toolLabel } from "../src/format";
import { typewriterStep } from "../src/typewriter";

let seq = 0n;
// As the server numbers them: durable events 1, 2, 3 ...; an ephemeral one
// (interim, delta, speech activity) carries the last durable sequence.
function ev(payload: MessageInitShape<typeof CallEventSchema>["payload"]): CallEvent {
  const ephemeral =
    payload?.case === "suggestionDelta" ||
    payload?.case === "speechActivity" ||
    (payload?.case === "transcript" && payload.value.isFinal !== true);
  if (!ephemeral) {
    seq += 1n;
  }
  return create(CallEventSchema, { callId: "c1", sequence: seq, durable: !ephemeral, payload });
}

function fold(events: CallEvent[]) {
  return events.reduce(applyEvent, initialState("c1"));
}

describe("transcript", () => {
  it("shows interims and replaces them in place by the final", () => {
    seq = 0n;
    const s = fold([
      ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "hel", isFinal: false } }),
      ev({ case: "transcript", value: { segmentId: "b", role: SpeakerRole.AGENT, text: "yes", isFinal: true } }),
      ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "hello there", isFinal: true } }),
    ]);
    expect(transcript(s).map((x) => [x.id, x.text, x.final])).toEqual([
      ["a", "hello there", true],
      ["b", "yes", true],
    ]);
  });

  it("never lets a late interim replace a final, and ignores replayed sequences", () => {
    seq = 0n;
    const final = ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "done", isFinal: true } });
    const late = ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "do", isFinal: false } });
    let s = fold([final, late]);
    s = applyEvent(s, final); // a duplicate (same sequence) changes nothing
    expect(transcript(s)).toEqual([{ id: "a", role: SpeakerRole.CUSTOMER, text: "done", final: true }]);
    expect(s.lastSequence).toBe(1n);
  });

  it("applies ephemeral events that carry the last durable sequence", () => {
    seq = 0n;
    const s = fold([
      ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "one", isFinal: true } }),
      ev({ case: "transcript", value: { segmentId: "b", role: SpeakerRole.CUSTOMER, text: "tw", isFinal: false } }),
    ]);
    expect(transcript(s).map((x) => [x.id, x.text, x.final])).toEqual([
      ["a", "one", true],
      ["b", "tw", false],
    ]);
    expect(s.lastSequence).toBe(1n);
  });
});

describe("suggestions", () => {
  it("streams deltas, completes with sources, and collapses the superseded one", () => {
    seq = 0n;
    const s = fold([
      ev({ case: "suggestionDelta", value: { suggestionId: "s1", text: "Offer " } }),
      ev({ case: "suggestionDelta", value: { suggestionId: "s1", text: "a refund" } }),
      ev({ case: "suggestionCompleted", value: { suggestionId: "s1", text: "Offer a refund.", sources: [] } }),
      ev({ case: "suggestionDelta", value: { suggestionId: "s2", text: "Refund " } }),
    ]);
    expect(s.suggestions["s1"]?.streaming).toBe(false);
    expect(s.suggestions["s1"]?.live).toBe(true);
    expect(s.suggestions["s2"]?.text).toBe("Refund ");
    expect(s.suggestions["s2"]?.streaming).toBe(true);
    const done = applyEvent(
      s,
      ev({
        case: "suggestionCompleted",
        value: {
          suggestionId: "s2",
          text: "Refund order 78901.",
          supersedesSuggestionId: "s1",
          sources: [{ kind: SourceKind.ORDER, id: "78901", title: "Order 78901" }],
        },
      }),
    );
    expect(suggestionsNewestFirst(done).map((x) => [x.id, x.supersededBy])).toEqual([
      ["s2", ""],
      ["s1", "s2"],
    ]);
    expect(done.suggestions["s2"]?.sources[0]?.id).toBe("78901");
    const rated = applyFeedback(done, "s2", { kind: FeedbackKind.RATED, rating: 4 });
    expect(rated.suggestions["s2"]?.feedback).toEqual({ kind: FeedbackKind.RATED, rating: 4 });
  });

  it("shows a replayed completed suggestion at once (no typing)", () => {
    seq = 0n;
    const s = fold([ev({ case: "suggestionCompleted", value: { suggestionId: "s9", text: "Hi." } })]);
    expect(s.suggestions["s9"]?.live).toBe(false);
    expect(s.suggestions["s9"]?.text).toBe("Hi.");
  });
});

describe("tools, context and the end", () => {
  it("keeps tool calls in order and the latest context", () => {
    seq = 0n;
    const s = fold([
      ev({ case: "toolCall", value: { toolCallId: "t1", toolName: "get_order_details" } }),
      ev({ case: "context", value: { topics: [2] } }),
      ev({ case: "toolCall", value: { toolCallId: "t2", toolName: "check_policy" } }),
      ev({ case: "context", value: { topics: [2, 3] } }),
      ev({ case: "callEnded", value: { summary: "ok" } }),
    ]);
    expect(s.tools.map((t) => t.toolCallId)).toEqual(["t1", "t2"]);
    // A decided write tool comes again with the same id: replaced in place.
    const decided = applyEvent(s, ev({ case: "toolCall", value: { toolCallId: "t1", toolName: "create_ticket", status: 4 } }));
    expect(decided.tools.map((t) => [t.toolCallId, t.status])).toEqual([
      ["t1", 4],
      ["t2", 0],
    ]);
    expect(s.context?.topics).toEqual([2, 3]);
    expect(s.ended?.summary).toBe("ok");
  });
});

describe("helpers", () => {
  it("routes app paths", () => {
    expect(parseRoute("/")).toEqual({ name: "calls" });
    expect(parseRoute("/calls/call-1")).toEqual({ name: "call", callId: "call-1" });
    expect(parseRoute("/orders/78901")).toEqual({ name: "record", kind: "orders", id: "78901" });
    expect(parseRoute("/nope/x/y").name).toBe("notFound");
  });

  it("names tools, policies and source links", () => {
    expect(toolLabel("get_order_details")).toBe("Order details");
    expect(policyTypeFromId("refund")).toBe(2);
    expect(sourceHref(create(SourceSchema, { kind: SourceKind.ORDER, id: "78901" }))).toBe("/orders/78901");
  });

  it("types faster the further behind it is", () => {
    expect(typewriterStep(0)).toBe(0);
    expect(typewriterStep(5)).toBe(1);
    expect(typewriterStep(240)).toBe(20);
  });
});
