// Saving the agent's wrap-up with SaveWrapUp (last save wins) and loading the
// saved one with GetCall. Edits not yet saved live in the app's state (this
// module, per call id) while the tab is open, so leaving the call and coming
// back keeps them; a saved wrap-up comes back from GetCall after a reload.

import { useCallback, useEffect, useState } from "preact/hooks";
import { describeError } from "@callpilot/sdk";
import { client } from "./api";
import { type Entry, type SaveState, TO_ENUM, type WrapUp, fromMessage, initialWrapUp } from "./wrapup";

const store = new Map<string, Entry>();

export interface WrapUpHandle {
  readonly wrapUp: WrapUp;
  readonly save: SaveState;
  readonly update: (change: Partial<WrapUp>) => void;
  readonly submit: () => Promise<void>;
}

/**
 * The wrap-up of `callId`: the one saved on the server if there is one (read
 * once with GetCall), else created from the server's summary. Edits after a
 * save mark it unsaved again; a failed save keeps the edits and says why.
 */
export function useWrapUp(callId: string, summary: string): WrapUpHandle {
  const [entry, setEntry] = useState<Entry>(
    () => store.get(callId) ?? { wrapUp: initialWrapUp(summary), save: { kind: "unsaved" } },
  );
  const current = store.get(callId) ?? entry;
  // A summary that arrived after the panel opened fills it in, unless the agent already edited it.
  const shown =
    !current.wrapUp.edited && current.wrapUp.summary === "" && summary !== ""
      ? { ...current, wrapUp: initialWrapUp(summary) }
      : current;

  const put = useCallback(
    (next: Entry) => {
      store.set(callId, next);
      setEntry(next);
    },
    [callId],
  );

  useEffect(() => {
    let cancelled = false;
    void client
      .getCall(callId)
      .then((response) => {
        // What the server holds wins over an untouched draft, never over unsaved edits.
        const local = store.get(callId);
        if (!cancelled && response.wrapUp !== undefined && (local === undefined || local.save.kind === "saved")) {
          put(fromMessage(response.wrapUp));
        }
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [callId, put]);

  const update = useCallback(
    (change: Partial<WrapUp>) => {
      const base = store.get(callId) ?? shown;
      put({ wrapUp: { ...base.wrapUp, ...change, edited: true }, save: { kind: "unsaved" } });
    },
    [callId, shown, put],
  );

  const submit = useCallback(async () => {
    const draft = (store.get(callId) ?? shown).wrapUp;
    put({ wrapUp: draft, save: { kind: "saving" } });
    try {
      const saved = await client.saveWrapUp(callId, {
        summary: draft.summary,
        disposition: TO_ENUM[draft.disposition],
        followUps: [...draft.followUps],
        notes: draft.notes,
      });
      const latest = store.get(callId)?.wrapUp ?? draft;
      // Edits typed while the save was in flight stay, marked unsaved.
      put(latest === draft ? fromMessage(saved) : { wrapUp: latest, save: { kind: "unsaved" } });
    } catch (reason) {
      put({ wrapUp: store.get(callId)?.wrapUp ?? draft, save: { kind: "error", message: describeError(reason) } });
    }
  }, [callId, shown, put]);

  return { wrapUp: shown.wrapUp, save: shown.save, update, submit };
}
