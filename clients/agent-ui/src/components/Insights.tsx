import { type ContextUpdate, Sentiment } from "@callpilot/sdk";
import { entityLabel, sentimentLabel, topicLabel } from "../format";

/** Topics, entities and sentiment of the conversation so far. */
export function Insights({ context }: { context: ContextUpdate | undefined }) {
  const topics = context?.topics ?? [];
  const entities = context?.entities ?? [];
  const sentiment = context?.sentiment ?? Sentiment.UNSPECIFIED;
  const score = context?.sentimentScore ?? 0;
  const mood = sentiment === Sentiment.NEGATIVE ? "negative" : sentiment === Sentiment.POSITIVE ? "positive" : "neutral";
  return (
    <section class="insights" aria-label="Conversation insights">
      <div class="insight">
        <span class="insight-label">Sentiment</span>
        <span class={`sentiment sentiment-${mood}`} data-sentiment={sentimentLabel(sentiment).toLowerCase()}>
          <span class="sentiment-dot" aria-hidden="true" />
          {sentimentLabel(sentiment)}
          {sentiment !== Sentiment.UNSPECIFIED && (
            <meter min={-1} max={1} low={-0.2} high={0.2} optimum={1} value={score} aria-label="Sentiment score">
              {score.toFixed(2)}
            </meter>
          )}
        </span>
      </div>
      <div class="insight">
        <span class="insight-label">Topics</span>
        {topics.length === 0 ? (
          <span class="muted">—</span>
        ) : (
          <ul class="chips">
            {topics.map((t) => (
              <li key={t} class="chip chip-topic">
                {topicLabel(t)}
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="insight insight-wide">
        <span class="insight-label">Entities</span>
        {entities.length === 0 ? (
          <span class="muted">—</span>
        ) : (
          <ul class="chips">
            {entities.map((e) => (
              <li key={`${e.type}:${e.value}`} class="chip chip-entity" title={`said as “${e.text}”`}>
                <span class="chip-kind">{entityLabel(e.type)}</span> {e.value}
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
