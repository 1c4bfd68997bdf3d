import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { SpeakerRole } from "@callpilot/sdk";
import { formatOffset } from "../format";
import { type Segment, roleLabel } from "../model";

// Within this many pixels of the bottom counts as "at the bottom".
const STICK_PX = 48;

export interface TimedSegment {
  readonly segment: Segment;
  /** Ms from the call's start; undefined when unknown. */
  readonly offsetMs: number | undefined;
}

/**
 * The live transcript, using the column's full width: customer lines on the
 * left, the agent's on the right, each with its time in the call. Interim text
 * is dimmed and replaced in place by the final. The view follows new lines
 * until the agent scrolls up to read; "Jump to live" takes it back down.
 */
export function Transcript({ lines, live }: { lines: TimedSegment[]; live: boolean }) {
  const scroller = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const last = lines.length > 0 ? lines[lines.length - 1]?.segment.text ?? "" : "";

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el !== null && follow) {
      el.scrollTop = el.scrollHeight;
    }
  }, [lines.length, last, follow]);

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
      <div
        class="transcript-scroll"
        ref={scroller}
        onScroll={onScroll}
        tabIndex={0}
        role="region"
        aria-label="Transcript lines"
        data-following={follow ? "true" : "false"}
      >
        {lines.length === 0 ? (
          <p class="empty">{live ? "Waiting for someone to speak…" : "Nothing was said in this call."}</p>
        ) : (
          <ol class="transcript">
            {lines.map(({ segment: s, offsetMs }) => (
              <li
                key={s.id}
                class={`line line-${s.role === SpeakerRole.AGENT ? "agent" : "customer"}${s.final ? "" : " line-interim"}`}
                data-segment-id={s.id}
                data-final={s.final ? "true" : "false"}
              >
                <span class="line-meta">
                  <span class="line-role">{roleLabel(s.role)}</span>
                  {offsetMs !== undefined && (
                    <time class="line-time" aria-label={`at ${formatOffset(offsetMs)} into the call`}>
                      {formatOffset(offsetMs)}
                    </time>
                  )}
                </span>
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
        <button type="button" class="btn btn-primary btn-small jump-latest" onClick={() => setFollow(true)}>
          {live ? "Jump to live ↓" : "Jump to the end ↓"}
        </button>
      )}
    </section>
  );
}
