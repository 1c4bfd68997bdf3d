// The resuming watch's sequence rules, against a scripted WatchCall (no server):
// durable events are delivered once each and resumed from the last durable
// sequence + 1; ephemeral events carry the sequence of the durable event
// before them and are delivered live.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CallWatch, type WatchCallFn } from "../src/watch.js";
import { WatchCallResponseSchema, type WatchCallResponse } from "../src/gen/callpilot/v1/assist_service_pb.js";
import { CallEventSchema, type CallEvent } from "../src/gen/callpilot/v1/events_pb.js";

function ev(sequence: number, durable: boolean, label: string): CallEvent {
  return create(CallEventSchema, {
    callId: "c1",
    sequence: BigInt(sequence),
    durable,
    payload: durable
      ? { case: "notice", value: { code: label } }
      : { case: "suggestionDelta", value: { text: label } },
  });
}

function label(e: CallEvent): string {
  if (e.payload.case === "notice") return e.payload.value.code;
  if (e.payload.case === "suggestionDelta") return e.payload.value.text;
  return "?";
}

describe("CallWatch", () => {
  it("resumes from the last durable sequence and keeps ephemeral events", async () => {
    const requested: bigint[] = [];
    const attempts: CallEvent[][] = [
      [ev(1, true, "d1"), ev(1, false, "e1"), ev(2, true, "d2"), ev(2, false, "e2")],
      // The server replays from 3 but the overlap must still be dropped: d2 again.
      [ev(2, true, "d2"), ev(3, true, "d3"), ev(3, false, "e3"), ev(4, true, "d4")],
    ];
    const fn: WatchCallFn = (request) => {
      requested.push(BigInt(request.fromSequence ?? 0));
      const attempt = requested.length - 1;
      const events = attempts[attempt] ?? [];
      return (async function* (): AsyncGenerator<WatchCallResponse> {
        for (const event of events) {
          yield create(WatchCallResponseSchema, { event });
        }
        if (attempt === 0) {
          throw new Error("connection dropped");
        }
      })();
    };
    const watch = new CallWatch(fn, "c1", { initialBackoffMs: 1, maxBackoffMs: 1 });
    const seen: string[] = [];
    for await (const event of watch) {
      seen.push(label(event));
    }
    assert.deepEqual(seen, ["d1", "e1", "d2", "e2", "d3", "e3", "d4"]);
    assert.deepEqual(requested, [1n, 3n]);
    assert.equal(watch.lastSequence, 4n);
    assert.equal(watch.state, "ended");
  });
});
