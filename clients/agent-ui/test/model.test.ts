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
import {
  applyEvent,
  applyFeedback,
  identity,
  initialState,
  suggestionsNewestFirst,
  transcript,
  visibleSuggestions,
  visibleTools,
} from "../src/model";
import { callStatus } from "../src/status";
import { followUpsFromSummary } from "../src/wrapup";
import { formatOffset } from "../src/format";
import { parseRoute } from "../src/router";
import { policyTypeFromId, sourceHref, toolLabel } from "../src/format";
import { typewriterStep } from "../src/typewriter";

let seq = 0n;
/**
 * An event as the server numbers them: durable events get the next sequence;
 * ephemeral ones (interims, deltas) carry the last durable sequence.
 */
function ev(payload: MessageInitShape<typeof CallEventSchema>["payload"]): CallEvent {
  const ephemeral =
    payload?.case === "suggestionDelta" || (payload?.case === "transcript" && payload.value.isFinal !== true);
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
    expect(transcript(s).map((x) => [x.id, x.text, x.final])).toEqual([["a", "done", true]]);
    expect(s.lastSequence).toBe(1n);
  });

  it("applies ephemeral events that repeat the last durable sequence, keyed by segment id", () => {
    seq = 0n;
    const s = fold([
      ev({ case: "callStarted", value: {} }),
      ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "I", isFinal: false } }),
      ev({ case: "transcript", value: { segmentId: "b", role: SpeakerRole.AGENT, text: "Hm", isFinal: false } }),
      ev({ case: "transcript", value: { segmentId: "a", role: SpeakerRole.CUSTOMER, text: "I am", isFinal: false } }),
    ]);
    // Three ephemeral events with the same sequence (1): all shown, in order of first appearance.
    expect(transcript(s).map((x) => [x.id, x.text])).toEqual([
      ["a", "I am"],
      ["b", "Hm"],
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

describe("one identity, one state", () => {
  const lookup = (id: string, customerId: string, name: string) =>
    ev({
      case: "toolCall",
      value: {
        toolCallId: id,
        toolName: "lookup_customer",
        status: 1,
        arguments: { name },
        result: { customer: { customer_id: customerId, name } },
      },
    });

  it("names the customer from the first lookup, then from the context", () => {
    seq = 0n;
    let s = fold([ev({ case: "callStarted", value: { call: { callId: "c1", customerId: "" } } })]);
    expect(identity(s)).toBeUndefined();
    s = applyEvent(s, lookup("t1", "C-1001", "Maria Garcia"));
    expect(identity(s)).toEqual({ customerId: "C-1001", name: "Maria Garcia", from: "lookup" });
    s = applyEvent(s, ev({ case: "context", value: { customer: { customerId: "C-1001", name: "Maria Garcia" } } }));
    expect(identity(s)?.from).toBe("context");
  });

  it("leaves identity-only suggestions and customer lookups out, and shows a repeated lookup once", () => {
    seq = 0n;
    const order = (id: string) =>
      ev({
        case: "toolCall",
        value: { toolCallId: id, toolName: "get_order_details", status: 1, arguments: { order_number: "78901" } },
      });
    const s = fold([
      lookup("t0", "C-1001", "Maria Garcia"),
      order("t1"),
      order("t2"),
      ev({
        case: "suggestionCompleted",
        value: {
          suggestionId: "who",
          text: "The caller is Maria Garcia (C-1001).",
          sources: [{ kind: SourceKind.CUSTOMER, id: "C-1001", title: "Maria Garcia" }],
        },
      }),
      ev({
        case: "suggestionCompleted",
        value: {
          suggestionId: "do",
          text: "Offer a refund.",
          sources: [
            { kind: SourceKind.CUSTOMER, id: "C-1001", title: "Maria Garcia" },
            { kind: SourceKind.ORDER, id: "78901", title: "Order 78901" },
          ],
        },
      }),
    ]);
    expect(visibleSuggestions(s).map((x) => x.id)).toEqual(["do"]);
    expect(visibleTools(s).map((x) => [x.tool.toolCallId, x.repeats])).toEqual([["t2", 2]]);
  });

  it("derives one call state from the view and the connection", () => {
    seq = 0n;
    const empty = initialState("c1");
    expect(callStatus(empty, { state: "connecting", code: "" })).toBe("connecting");
    expect(callStatus(empty, { state: "failed", code: "NOT_FOUND" })).toBe("not-found");
    expect(callStatus(empty, { state: "failed", code: "UNAVAILABLE" })).toBe("disconnected");
    const started = fold([ev({ case: "callStarted", value: { call: { callId: "c1", state: 1 } } })]);
    expect(callStatus(started, { state: "live", code: "" })).toBe("live");
    expect(callStatus(started, { state: "reconnecting", code: "" })).toBe("reconnecting");
    const ended = applyEvent(started, ev({ case: "callEnded", value: { summary: "" } }));
    expect(callStatus(ended, { state: "reconnecting", code: "" })).toBe("ended");
  });

  it("prefills follow-ups from the summary and formats offsets", () => {
    expect(followUpsFromSummary("Customer: x.\nFollow-ups: I will email you. We will call you back.")).toEqual([
      "I will email you.",
      "We will call you back.",
    ]);
    expect(followUpsFromSummary("Follow-ups: none recorded.")).toEqual([]);
    expect(formatOffset(83_000)).toBe("1:23");
    expect(formatOffset(3_723_000)).toBe("1:02:03");
  });
});
