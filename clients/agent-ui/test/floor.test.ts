import { describe, expect, it } from "vitest";
import {
  AlertKind,
  AlertSchema,
  CallSchema,
  ContextUpdateSchema,
  FloorCallSchema,
  Sentiment,
  WatchFloorResponseSchema,
  create,
} from "@callpilot/sdk";
import { applyFloor, type FloorRow, trendWords } from "../src/floor";

const call = (callId: string) => create(CallSchema, { callId, createTime: { seconds: 1000n, nanos: 0 } });

function snapshot() {
  return create(WatchFloorResponseSchema, {
    update: {
      case: "snapshot",
      value: {
        calls: [
          create(FloorCallSchema, {
            call: call("a"),
            lastSequence: 5n,
            sentimentScores: [0.2],
            alerts: [create(AlertSchema, { alertId: "alert-1", kind: AlertKind.LONG_SILENCE })],
          }),
        ],
      },
    },
  });
}

function event(callId: string, sequence: bigint, payload: object) {
  return create(WatchFloorResponseSchema, {
    update: { case: "event", value: { callId, sequence, durable: true, payload: payload as never } },
  });
}

describe("applyFloor", () => {
  it("replaces everything with a snapshot, then applies newer events only", () => {
    let rows: Map<string, FloorRow> = new Map([["stale", {} as FloorRow]]);
    rows = applyFloor(rows, snapshot()).rows;
    expect([...rows.keys()]).toEqual(["a"]);

    // At or below the snapshot's sequence: already in it.
    const old = applyFloor(rows, event("a", 5n, { case: "alert", value: create(AlertSchema, { alertId: "alert-1" }) }));
    expect(old.raised).toEqual([]);
    expect(old.rows.get("a")?.alerts.length).toBe(1);

    const context = create(ContextUpdateSchema, {
      segmentId: "s-3",
      sentiment: Sentiment.NEGATIVE,
      sentimentScore: -0.4,
      customer: { customerId: "C-1", name: "Maria Garcia" },
    });
    rows = applyFloor(rows, event("a", 6n, { case: "context", value: context })).rows;
    expect(rows.get("a")?.scores).toEqual([0.2, -0.4]);
    expect(trendWords(rows.get("a")?.scores ?? []).words).toBe("falling");

    const alert = create(AlertSchema, { alertId: "alert-2", kind: AlertKind.CUSTOMER_PHRASE, reason: "asked" });
    const raised = applyFloor(rows, event("a", 7n, { case: "alert", value: alert }));
    expect(raised.raised).toEqual([{ callId: "a", alert, customer: "Maria Garcia" }]);
    rows = raised.rows;

    rows = applyFloor(rows, event("b", 1n, { case: "callStarted", value: { call: call("b") } })).rows;
    expect([...rows.keys()].sort()).toEqual(["a", "b"]);
    rows = applyFloor(rows, event("a", 8n, { case: "callEnded", value: {} })).rows;
    expect([...rows.keys()]).toEqual(["b"]);
    // Events of calls the floor does not show are ignored.
    expect([...applyFloor(rows, event("x", 3n, { case: "context", value: context })).rows.keys()]).toEqual(["b"]);
  });
});
