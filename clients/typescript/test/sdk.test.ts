// The SDK against a real Callpilot server behind a real gateway.
//
// Run by tests/web/test_sdk.py, which starts both and passes:
//   CALLPILOT_GATEWAY   the gateway's URL
//   CALLPILOT_FINISHED  a JSON file: { callId, sequences, cases } of a call
//                       that already ended (its durable events, in order)

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  CallpilotClient,
  CallpilotError,
  type CallEvent,
  PolicyType,
  type WatchState,
  describeError,
} from "../src/index.js";

const gateway = process.env["CALLPILOT_GATEWAY"] ?? "";
const finishedFile = process.env["CALLPILOT_FINISHED"] ?? "";
assert.ok(gateway !== "" && finishedFile !== "", "set CALLPILOT_GATEWAY and CALLPILOT_FINISHED");
const finished = JSON.parse(readFileSync(finishedFile, "utf8")) as {
  callId: string;
  sequences: number[];
  cases: string[];
};

const cp = new CallpilotClient({ baseUrl: gateway });

async function collect(iterable: AsyncIterable<CallEvent>): Promise<CallEvent[]> {
  const out: CallEvent[] = [];
  for await (const event of iterable) {
    out.push(event);
  }
  return out;
}

/**
 * A fetch whose WatchCall response bodies break off after `cuts[i]` bytes on
 * the i-th WatchCall request: a connection dropped mid-frame.
 */
function droppingFetch(cuts: number[]): { fetch: typeof globalThis.fetch; watchRequests: () => number } {
  let watchRequests = 0;
  const fetchImpl: typeof globalThis.fetch = async (input, init) => {
    const response = await globalThis.fetch(input, init);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.endsWith("/WatchCall")) {
      return response;
    }
    const cut = cuts[watchRequests];
    watchRequests += 1;
    if (cut === undefined || response.body === null) {
      return response;
    }
    const reader = response.body.getReader();
    let passed = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        if (passed + value.length >= cut) {
          controller.enqueue(value.subarray(0, cut - passed));
          passed = cut;
          await reader.cancel();
          controller.error(new TypeError("network error: connection reset (test)"));
          return;
        }
        passed += value.length;
        controller.enqueue(value);
      },
      cancel() {
        void reader.cancel();
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  return { fetch: fetchImpl, watchRequests: () => watchRequests };
}

describe("unary calls", () => {
  it("reads the directory", async () => {
    const order = await cp.getOrder("78901");
    assert.equal(order.customerId, "C-1001");
    assert.equal(order.items[0]?.name, "Wireless Headphones");
    const customer = await cp.getCustomer("C-1001");
    assert.equal(customer.customer?.name, "Maria Garcia");
    assert.ok(customer.orders.some((o) => o.orderNumber === "78901"));
    const found = await cp.searchCustomers("garcia");
    assert.ok(found.some((c) => c.customerId === "C-1001"));
    const policy = await cp.getPolicy(PolicyType.REFUND);
    assert.match(policy.title, /refund/i);
    const hits = await cp.searchKnowledge("refund");
    assert.ok(hits.length > 0 && hits[0]?.article !== undefined);
  });

  it("reads calls", async () => {
    const call = await cp.getCall(finished.callId);
    assert.equal(call.call?.callId, finished.callId);
    assert.ok(call.transcript.length >= 2);
    assert.ok(call.suggestions.length >= 1);
    const listed = await cp.listCalls({ pageSize: 100 });
    assert.ok(listed.calls.some((c) => c.callId === finished.callId));
  });

  it("turns statuses into CallpilotErrors with the server's details", async () => {
    await assert.rejects(cp.getOrder("00000"), (err: unknown) => {
      assert.ok(err instanceof CallpilotError);
      assert.equal(err.code, "NOT_FOUND");
      assert.equal(err.reason, "ORDER_NOT_FOUND");
      assert.equal(err.reasonMetadata["order_number"], "00000");
      assert.ok(err.serverSent);
      assert.match(describeError(err), /^Not found: /);
      return true;
    });
    await assert.rejects(cp.getOrder(""), (err: unknown) => {
      assert.ok(err instanceof CallpilotError);
      assert.equal(err.code, "INVALID_ARGUMENT");
      assert.deepEqual(
        err.violations.map((v) => v.field),
        ["order_number"],
      );
      assert.match(describeError(err), /order_number/);
      return true;
    });
  });
});

describe("watchCall", () => {
  it("replays a finished call's durable events in order and ends", async () => {
    const states: WatchState[] = [];
    const watch = cp.watchCall(finished.callId, { onStateChange: (s) => states.push(s) });
    const events = await collect(watch);
    assert.deepEqual(
      events.map((e) => Number(e.sequence)),
      finished.sequences,
    );
    assert.deepEqual(
      events.map((e) => e.payload.case),
      finished.cases,
    );
    assert.equal(watch.lastSequence, BigInt(finished.sequences.at(-1) ?? 0));
    assert.deepEqual(states, ["live", "ended"]);
  });

  it("starts from fromSequence", async () => {
    const from = finished.sequences[3] ?? 4;
    const events = await collect(cp.watchCall(finished.callId, { fromSequence: from }));
    assert.deepEqual(
      events.map((e) => Number(e.sequence)),
      finished.sequences.filter((s) => s >= from),
    );
  });

  it("resumes after dropped connections with no duplicate and no gap", async () => {
    // Break the stream three times at arbitrary byte offsets (mid-frame).
    const dropping = droppingFetch([120, 333, 50]);
    const flaky = new CallpilotClient({ baseUrl: gateway, fetch: dropping.fetch });
    const states: WatchState[] = [];
    const errors: string[] = [];
    const watch = flaky.watchCall(finished.callId, {
      initialBackoffMs: 10,
      onStateChange: (s, err) => {
        states.push(s);
        if (err !== undefined) errors.push(err.code);
      },
    });
    const events = await collect(watch);
    assert.deepEqual(
      events.map((e) => Number(e.sequence)),
      finished.sequences,
    );
    assert.equal(dropping.watchRequests(), 4);
    assert.equal(states.filter((s) => s === "reconnecting").length, 3);
    assert.deepEqual(errors, ["UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"]);
    assert.equal(states.at(-1), "ended");
  });

  it("follows a live call until it ends", async () => {
    // A call created ahead of its stream has no events yet: the gateway still
    // sends the response headers, so the watch reports "live" at once.
    const call = await cp.createCall({ labels: { test: "sdk" } });
    let ending: Promise<unknown> | undefined;
    const watch = cp.watchCall(call.callId, {
      onStateChange: (state) => {
        if (state === "live" && ending === undefined) {
          ending = cp.endCall(call.callId, "test over");
        }
      },
    });
    const seen = (await collect(watch)).map((e) => e.payload.case);
    await ending;
    assert.deepEqual(seen, ["callStarted", "callEnded"]);
    assert.equal(watch.state, "ended");
  });

  it("stops quietly when aborted, and fails on a non-retryable status", async () => {
    const call = await cp.createCall();
    const controller = new AbortController();
    const watch = cp.watchCall(call.callId, {
      signal: controller.signal,
      onStateChange: (state) => {
        if (state === "live") controller.abort();
      },
    });
    assert.deepEqual(await collect(watch), []);
    assert.equal(watch.state, "closed");
    await cp.endCall(call.callId);

    const states: WatchState[] = [];
    await assert.rejects(
      collect(cp.watchCall("no-such-call", { onStateChange: (s) => states.push(s) })),
      (err: unknown) => err instanceof CallpilotError && err.code === "NOT_FOUND",
    );
    assert.equal(states.at(-1), "failed");
  });

  it("gives up on an unreachable gateway after maxRetries", async () => {
    const nowhere = new CallpilotClient({ baseUrl: "http://127.0.0.1:9" });
    const states: WatchState[] = [];
    await assert.rejects(
      collect(nowhere.watchCall("x", { maxRetries: 2, initialBackoffMs: 5, onStateChange: (s) => states.push(s) })),
      (err: unknown) => err instanceof CallpilotError && err.code === "UNAVAILABLE" && !err.serverSent,
    );
    assert.deepEqual(states, ["reconnecting", "reconnecting", "failed"]);
  });
});
