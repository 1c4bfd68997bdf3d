// A resumable WatchCall: an async iterable of a call's events that survives
// dropped connections by re-opening the stream from the last durable
// sequence delivered plus one. The server replays stored (durable) events
// from there, so the consumer sees every durable event exactly once, in
// order. Ephemeral events (interim transcripts, suggestion deltas) carry the
// sequence of the durable event before them and are live only: one sent
// while the stream was down is not seen again.

import type { CallOptions } from "@connectrpc/connect";
import type { CallEvent } from "./gen/callpilot/v1/events_pb.js";
import type { WatchCallRequest, WatchCallResponse } from "./gen/callpilot/v1/assist_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchCallRequestSchema } from "./gen/callpilot/v1/assist_service_pb.js";
import { CallpilotError } from "./errors.js";

/** Where a watch stands. */
export type WatchState =
  | "connecting" // opening the first stream
  | "live" // the stream is open
  | "reconnecting" // the stream dropped; waiting to re-open it
  | "ended" // the call ended (its last event was delivered)
  | "failed" // a non-retryable error, or too many failed attempts
  | "closed"; // stopped by the consumer (break, return, abort)

export interface WatchCallOptions {
  /** First durable sequence to deliver; 1 (the default) for the whole call. */
  fromSequence?: number | bigint;
  /** Stops the watch; iteration then ends quietly. */
  signal?: AbortSignal;
  /** Re-open a dropped stream (default true). */
  resume?: boolean;
  /** Consecutive failed attempts before giving up (default: never give up). */
  maxRetries?: number;
  /** Delay before the first retry, doubled per failed attempt (default 250 ms). */
  initialBackoffMs?: number;
  /** Longest delay between attempts (default 5000 ms). */
  maxBackoffMs?: number;
  /** Called on every change of state, with the error behind "reconnecting" / "failed". */
  onStateChange?: (state: WatchState, error?: CallpilotError) => void;
}

/** The raw server-streaming call the watch re-opens (the generated client's method). */
export type WatchCallFn = (
  request: MessageInitShape<typeof WatchCallRequestSchema>,
  options?: CallOptions,
) => AsyncIterable<WatchCallResponse>;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * The events of one call. Iterate it once with `for await`; `lastSequence`
 * tells how far it got, `state` where it stands.
 */
export class CallWatch implements AsyncIterable<CallEvent> {
  readonly callId: string;
  private readonly fn: WatchCallFn;
  private readonly options: WatchCallOptions;
  private readonly controller = new AbortController();
  private nextSequence: bigint;
  private currentState: WatchState = "connecting";
  private started = false;

  constructor(fn: WatchCallFn, callId: string, options: WatchCallOptions = {}) {
    this.fn = fn;
    this.callId = callId;
    this.options = options;
    const from = BigInt(options.fromSequence ?? 1);
    this.nextSequence = from < 1n ? 1n : from;
    const outer = options.signal;
    if (outer !== undefined) {
      if (outer.aborted) {
        this.controller.abort(outer.reason);
      } else {
        outer.addEventListener("abort", () => this.controller.abort(outer.reason), { once: true });
      }
    }
  }

  /** Sequence of the last durable event delivered; 0n before the first. */
  get lastSequence(): bigint {
    return this.nextSequence - 1n;
  }

  get state(): WatchState {
    return this.currentState;
  }

  /** Stop watching: the iteration ends quietly and the stream is cancelled. */
  close(): void {
    this.controller.abort();
  }

  private setState(state: WatchState, error?: CallpilotError): void {
    if (state === this.currentState && error === undefined) {
      return;
    }
    this.currentState = state;
    this.options.onStateChange?.(state, error);
  }

  [Symbol.asyncIterator](): AsyncIterator<CallEvent> {
    if (this.started) {
      throw new Error("a CallWatch can be iterated only once; call watchCall() again");
    }
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<CallEvent, void, undefined> {
    const resume = this.options.resume ?? true;
    const maxRetries = this.options.maxRetries ?? Number.POSITIVE_INFINITY;
    const initialBackoff = this.options.initialBackoffMs ?? 250;
    const maxBackoff = this.options.maxBackoffMs ?? 5000;
    const signal = this.controller.signal;
    let failures = 0;
    try {
      while (!signal.aborted) {
        // One attempt: its own controller, so a consumer that stops mid-way
        // (break) cancels the HTTP request at once.
        const attempt = new AbortController();
        const stop = (): void => attempt.abort();
        signal.addEventListener("abort", stop, { once: true });
        try {
          const stream = this.fn(
            { callId: this.callId, fromSequence: this.nextSequence },
            {
              signal: attempt.signal,
              // Headers without a status: the stream is open (a trailers-only
              // error response carries grpc-status in its headers).
              onHeader: (headers) => {
                if (!headers.has("grpc-status")) this.setState("live");
              },
            },
          );
          for await (const response of stream) {
            const event = response.event;
            if (event === undefined) {
              continue;
            }
            this.setState("live");
            failures = 0;
            if (event.durable) {
              if (event.sequence < this.nextSequence) {
                continue; // already delivered before the stream was re-opened
              }
              this.nextSequence = event.sequence + 1n;
            }
            yield event;
          }
          this.setState("ended");
          return;
        } catch (reason) {
          if (signal.aborted) {
            return;
          }
          const err = CallpilotError.from(reason);
          failures += 1;
          if (!resume || !err.retryable || failures > maxRetries) {
            this.setState("failed", err);
            throw err;
          }
          this.setState("reconnecting", err);
          const backoff = Math.min(maxBackoff, initialBackoff * 2 ** (failures - 1));
          await sleep(backoff * (0.8 + 0.4 * Math.random()), signal);
        } finally {
          signal.removeEventListener("abort", stop);
          attempt.abort();
        }
      }
    } finally {
      if (this.currentState !== "ended" && this.currentState !== "failed") {
        this.setState("closed");
      }
    }
  }
}

export type { WatchCallRequest };
