import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { SpeakerRole } from "@callpilot/sdk";
import { type Segment, roleLabel } from "../model";

// Within this many pixels of the bottom counts as "at the bottom".
const STICK_PX = 48;

/**
 * The live transcript. Interim text is dimmed and replaced in place by the
 * final; the view follows new lines unless the agent scrolled up to read.
 */
export function Transcript({ segments, live }: { segments: Segment[]; live: boolean }) {
  const scroller = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const lastText = segments.length > 0 ? (segments[segments.length - 1]?.text ?? "") : "";

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el !== null && follow) {
      el.scrollTop = el.scrollHeight;
    }
  }, [segments.length, lastText, follow]);

  const onScroll = (): void => {
    const el = scroller.current;
    if (el !== null) {
      setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX);
    }
  };

  return (
    <section class="panel transcript-panel" aria-labelledby="transcript-title">
      <h2 id="transcript-title" class="panel-title">
        Transcript
      </h2>
      <div class="transcript-scroll" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label="Transcript lines">
        {segments.length === 0 ? (
          <p class="empty">{live ? "Waiting for someone to speak…" : "Nothing was said in this call."}</p>
        ) : (
          <ol class="transcript" aria-live="polite" aria-relevant="additions text">
            {segments.map((s) => (
              <li
                key={s.id}
                class={`line line-${s.role === SpeakerRole.AGENT ? "agent" : "customer"}${s.final ? "" : " line-interim"}`}
                data-segment-id={s.id}
                data-final={s.final ? "true" : "false"}
              >
                <span class="line-role">{roleLabel(s.role)}</span>
                <span class="line-text">
                  {s.text}
                  {!s.final && <span class="visually-hidden"> (still speaking)</span>}
                </span>
              </li>
            ))}
          </ol>
        )}
      </div>
      {!follow && (
        <button
          type="button"
          class="btn btn-small jump-latest"
          onClick={() => {
            setFollow(true);
          }}
        >
          Jump to latest ↓
        </button>
      )}
    </section>
  );
}
