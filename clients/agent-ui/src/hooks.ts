// Data hooks: the live call (WatchCall, resumed by the SDK) and one-shot loads.

import { CallpilotError, type WatchState, describeError } from "@callpilot/sdk";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { client } from "./api";
import type { ToolCall } from "@callpilot/sdk";
import {
  type CallViewState,
  type SuggestionFeedbackView,
  applyEvent,
  applyFeedback,
  applyToolCall,
  initialState,
} from "./model";

export interface Connection {
  readonly state: WatchState;
  /** What went wrong, in words (reconnecting / failed). */
  readonly error: string;
  /** The technical detail behind `error` (status code and message). */
  readonly detail: string;
  /** The error's code ("NOT_FOUND", "UNAVAILABLE", ...); empty when there is none. */
  readonly code: string;
  /** Consecutive reconnect attempts. */
  readonly attempts: number;
}

export interface LiveCall {
  readonly view: CallViewState;
  readonly connection: Connection;
  readonly setFeedback: (suggestionId: string, feedback: SuggestionFeedbackView) => void;
  /** Show a tool call's new state now (SubmitFeedback's answer), before the stream brings it. */
  readonly setTool: (tool: ToolCall) => void;
  readonly retry: () => void;
}

/** Watch a call from its first event; a dropped stream resumes where it left off. */
export function useLiveCall(callId: string): LiveCall {
  const [view, setView] = useState<CallViewState>(() => initialState(callId));
  const [connection, setConnection] = useState<Connection>({
    state: "connecting",
    error: "",
    detail: "",
    code: "",
    attempts: 0,
  });
  const [generation, setGeneration] = useState(0);
  const shown = useRef<{ callId: string; lastSequence: bigint }>({ callId, lastSequence: 0n });

  useEffect(() => {
    if (shown.current.callId !== callId) {
      shown.current = { callId, lastSequence: 0n };
      setView(initialState(callId));
    }
    let attempts = 0;
    const watch = client.watchCall(callId, {
      // A retry after a failure resumes after the last event shown.
      fromSequence: shown.current.lastSequence + 1n,
      onStateChange: (state, error) => {
        attempts = state === "reconnecting" ? attempts + 1 : state === "live" ? 0 : attempts;
        setConnection({
          state,
          error: error === undefined ? "" : describeError(error),
          detail: error === undefined ? "" : error.message,
          code: error === undefined ? "" : error.code,
          attempts,
        });
      },
    });
    let stopped = false;
    void (async () => {
      try {
        for await (const event of watch) {
          if (stopped) {
            break;
          }
          if (event.durable) {
            // Only durable events are replayed, so only they say where to resume.
            shown.current = { callId, lastSequence: event.sequence };
          }
          setView((current) => applyEvent(current, event));
        }
      } catch (reason) {
        if (!stopped) {
          const err = CallpilotError.from(reason);
          setConnection({
            state: "failed",
            error: describeError(reason),
            detail: err.message,
            code: err.code,
            attempts,
          });
        }
      }
    })();
    return () => {
      stopped = true;
      watch.close();
    };
  }, [callId, generation]);

  const setFeedback = useCallback((suggestionId: string, feedback: SuggestionFeedbackView) => {
    setView((current) => applyFeedback(current, suggestionId, feedback));
  }, []);
  const setTool = useCallback((tool: ToolCall) => {
    setView((current) => applyToolCall(current, tool));
  }, []);
  const retry = useCallback(() => setGeneration((g) => g + 1), []);
  return { view, connection, setFeedback, setTool, retry };
}

export type Load<T> =
  | { readonly status: "idle" }
  | { readonly status: "loading" }
  | { readonly status: "done"; readonly value: T }
  | { readonly status: "error"; readonly error: string; readonly code: string };

/**
 * Run `fetcher` whenever `key` changes (skipped for an empty key); keeps the latest answer only.
 * A new `refresh` value loads the same key again, showing the last answer until the new one.
 */
export function useLoad<T>(key: string, fetcher: (key: string) => Promise<T>, refresh = 0): Load<T> {
  const [load, setLoad] = useState<Load<T>>({ status: "idle" });
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const loadedKey = useRef("");
  useEffect(() => {
    if (key === "") {
      loadedKey.current = "";
      setLoad({ status: "idle" });
      return;
    }
    let current = true;
    if (loadedKey.current !== key) {
      setLoad({ status: "loading" });
    }
    loadedKey.current = key;
    fetcherRef.current(key).then(
      (value) => current && setLoad({ status: "done", value }),
      (reason: unknown) =>
        current &&
        setLoad({ status: "error", error: describeError(reason), code: CallpilotError.from(reason).code }),
    );
    return () => {
      current = false;
    };
  }, [key, refresh]);
  return load;
}

/** Call `fn` now and every `ms` while the page is visible. */
export function usePolling(fn: () => void, ms: number): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    fnRef.current();
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") {
        fnRef.current();
      }
    }, ms);
    return () => window.clearInterval(timer);
  }, [ms]);
}
