// The agent's wrap-up of a call as the app holds it: summary, disposition,
// follow-ups and notes, and where it stands against the call's record. Pure
// data and conversions; saving and loading are in wrapup-save.ts.

import { Disposition as DispositionEnum, type Timestamp, type WrapUp as WrapUpMessage } from "@callpilot/sdk";

export type Disposition = "" | "resolved" | "follow-up" | "escalated" | "callback" | "unresolved";

export const DISPOSITIONS: readonly { value: Disposition; label: string }[] = [
  { value: "", label: "Choose…" },
  { value: "resolved", label: "Resolved on the call" },
  { value: "follow-up", label: "Resolved, follow-up needed" },
  { value: "escalated", label: "Escalated" },
  { value: "callback", label: "Customer to call back" },
  { value: "unresolved", label: "Not resolved" },
];

/** The app's disposition names and the contract's enum, one to one. */
export const TO_ENUM: Record<Disposition, DispositionEnum> = {
  "": DispositionEnum.UNSPECIFIED,
  resolved: DispositionEnum.RESOLVED,
  "follow-up": DispositionEnum.FOLLOW_UP,
  escalated: DispositionEnum.ESCALATED,
  callback: DispositionEnum.CALLBACK,
  unresolved: DispositionEnum.UNRESOLVED,
};

function fromEnum(value: DispositionEnum): Disposition {
  const found = (Object.keys(TO_ENUM) as Disposition[]).find((k) => TO_ENUM[k] === value);
  return found ?? "";
}

export interface WrapUp {
  readonly summary: string;
  readonly disposition: Disposition;
  readonly followUps: readonly string[];
  readonly notes: string;
  /** True once the agent changed anything (the server's summary is no longer the whole story). */
  readonly edited: boolean;
}

/** Where the wrap-up stands against the call's record. */
export type SaveState =
  | { kind: "unsaved" }
  | { kind: "saving" }
  | { kind: "saved"; at: Timestamp | undefined; by: string }
  | { kind: "error"; message: string };

export interface Entry {
  readonly wrapUp: WrapUp;
  readonly save: SaveState;
}

/** The follow-ups the server's summary lists ("Follow-ups: ..."), one per sentence. */
export function followUpsFromSummary(summary: string): string[] {
  const line = summary.split("\n").find((l) => /^follow-ups?:/i.test(l.trim()));
  if (line === undefined) {
    return [];
  }
  const text = line.replace(/^\s*follow-ups?:\s*/i, "").trim();
  if (text === "" || /^none recorded\.?$/i.test(text)) {
    return [];
  }
  return text
    .split(/(?<=[.!?])\s+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function initialWrapUp(summary: string): WrapUp {
  return { summary, disposition: "", followUps: followUpsFromSummary(summary), notes: "", edited: false };
}

/** A wrap-up as the server saved it. */
export function fromMessage(message: WrapUpMessage): Entry {
  return {
    wrapUp: {
      summary: message.summary,
      disposition: fromEnum(message.disposition),
      followUps: [...message.followUps],
      notes: message.notes,
      edited: true,
    },
    save: {
      kind: "saved",
      at: message.updateTime,
      by: message.updatedBy,
    },
  };
}
