import { useMemo } from "preact/hooks";
import type { ChartConfiguration } from "chart.js";
import {
  AlertKind,
  durationMs,
  type GetInsightsResponse,
  type InsightsFigures,
  Sentiment,
  timestampMs,
  Topic,
} from "@callpilot/sdk";
import { sentimentLabel, toolLabel, topicLabel } from "../format";
import { useLoad } from "../hooks";
import { navigate } from "../router";
import { supervisor } from "../api";
import { alertLabel } from "../floor";
import { ChartCanvas, SERIES_COLOURS } from "./Chart";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Range {
  startMs: number;
  endMs: number;
  bucketMs: number;
  label: string;
}

const PRESETS: { id: string; label: string; spanMs: number; bucketMs: number }[] = [
  { id: "24h", label: "Last 24 hours", spanMs: DAY, bucketMs: HOUR },
  { id: "7d", label: "Last 7 days", spanMs: 7 * DAY, bucketMs: DAY },
  { id: "30d", label: "Last 30 days", spanMs: 30 * DAY, bucketMs: DAY },
];

/** The range from the address: ?from=ISO&to=ISO&bucket=SECONDS, or ?range=24h|7d|30d (default 24h). */
function rangeFromLocation(search: string): Range {
  const params = new URLSearchParams(search);
  const from = Date.parse(params.get("from") ?? "");
  const to = Date.parse(params.get("to") ?? "");
  if (Number.isFinite(from) && Number.isFinite(to) && to > from) {
    const bucket = Number(params.get("bucket") ?? "0") * 1000;
    return { startMs: from, endMs: to, bucketMs: bucket > 0 ? bucket : to - from, label: "Custom range" };
  }
  const preset = PRESETS.find((p) => p.id === params.get("range")) ?? PRESETS[0]!;
  // Whole buckets that end with the current one, so bars line up with clock hours or days.
  const end = Math.ceil(Date.now() / preset.bucketMs) * preset.bucketMs;
  return { startMs: end - preset.spanMs, endMs: end, bucketMs: preset.bucketMs, label: preset.label };
}

function minutes(ms: number): string {
  const total = Math.round(ms / 1000);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function bucketLabel(ms: number, bucketMs: number): string {
  const date = new Date(ms);
  return bucketMs >= DAY
    ? date.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" })
    : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
}

/** Analytics over stored calls: figures and charts for a time range. */
export function InsightsPage() {
  const range = useMemo(() => rangeFromLocation(window.location.search), [window.location.search]);
  const key = `${range.startMs}/${range.endMs}/${range.bucketMs}`;
  const load = useLoad(key, () => supervisor.getInsights(range.startMs, range.endMs, range.bucketMs));
  const presetId = new URLSearchParams(window.location.search).get("range") ?? (range.label === "Custom range" ? "" : "24h");
  return (
    <div class="insights-page">
      <div class="page-head">
        <h1>Insights</h1>
        <label class="range-pick">
          <span>Range</span>{" "}
          <select
            value={presetId}
            onChange={(e) => navigate(`/insights?range=${(e.target as HTMLSelectElement).value}`)}
          >
            {presetId === "" && <option value="">Custom range</option>}
            {PRESETS.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p class="muted small" data-insights-range>
        Calls created from {new Date(range.startMs).toISOString().slice(0, 16).replace("T", " ")} to{" "}
        {new Date(range.endMs).toISOString().slice(0, 16).replace("T", " ")} UTC.
      </p>
      {load.status === "loading" || load.status === "idle" && <p class="muted">Loading figures…</p>}
      {load.status === "error" && (
        <div class="error banner" role="alert">
          <p>
            <strong>Could not load the figures.</strong> {load.error}
          </p>
        </div>
      )}
      {load.status === "done" && <Figures response={load.value} range={range} />}
    </div>
  );
}

function Figures({ response, range }: { response: GetInsightsResponse; range: Range }) {
  const total = response.total;
  if (total === undefined || total.calls === 0n) {
    return (
      <section class="panel insights-empty" data-insights-empty>
        <h2 class="panel-title">No calls in this range</h2>
        <p class="empty">
          Figures appear here once calls have been handled. Pick a longer range, or take a call from the desk.
        </p>
      </section>
    );
  }
  const labels = response.buckets.map((b) => bucketLabel(b.startTime ? timestampMs(b.startTime) : 0, range.bucketMs));
  const figures = response.buckets.map((b) => b.figures);
  const s = total.suggestions;
  const failures = total.tools.reduce((n, t) => n + Number(t.failures), 0);
  const toolCalls = total.tools.reduce((n, t) => n + Number(t.calls), 0);
  return (
    <>
      <dl class="tiles" aria-label="Totals">
        <Tile name="calls" label="Calls" value={String(total.calls)} />
        <Tile name="p50" label="Handle time, median" value={total.handleTimeP50 ? minutes(durationMs(total.handleTimeP50)) : "—"} />
        <Tile name="p90" label="Handle time, 90th percentile" value={total.handleTimeP90 ? minutes(durationMs(total.handleTimeP90)) : "—"} />
        <Tile name="shown" label="Suggestions shown" value={String(s?.shown ?? 0n)} />
        <Tile name="used" label="Suggestions used" value={String(s?.used ?? 0n)} />
        <Tile name="dismissed" label="Suggestions dismissed" value={String(s?.dismissed ?? 0n)} />
        <Tile name="rated" label="Suggestions rated" value={String(s?.rated ?? 0n)} />
        <Tile name="tool-failures" label="Tool calls failed" value={`${failures} of ${toolCalls}`} />
      </dl>
      <div class="chart-grid">
        <ChartPanel title="Calls" name="calls" config={callsChart(labels, figures)} summary={series("calls", labels, figures.map((f) => Number(f?.calls ?? 0)))} />
        <ChartPanel title="Handle time (minutes)" name="handle-time" config={handleChart(labels, figures)} summary={`Median handle time ${total.handleTimeP50 ? minutes(durationMs(total.handleTimeP50)) : "none"} over the range.`} />
        <ChartPanel title="Topics over time" name="topics" config={topicsChart(labels, figures)} summary={total.topics.map((t) => `${topicLabel(t.topic)}: ${t.calls} calls`).join("; ") || "No topics raised."} />
        <ChartPanel title="Suggestions" name="suggestions" config={suggestionsChart(total)} summary={`${s?.shown ?? 0} shown, ${s?.used ?? 0} used, ${s?.dismissed ?? 0} dismissed, ${s?.rated ?? 0} rated.`} />
        <ChartPanel title="Sentiment at the end of the call" name="sentiment" config={sentimentChart(total)} summary={total.endSentiments.map((e) => `${sentimentLabel(e.sentiment)}: ${e.calls}`).join("; ")} />
        <ChartPanel title="Alerts by kind" name="alerts" config={alertsChart(total)} summary={total.alerts.map((a) => `${alertLabel(a.kind)}: ${a.alerts}`).join("; ") || "No alerts."} />
      </div>
      <section class="panel" aria-labelledby="tools-title">
        <h2 id="tools-title" class="panel-title">Tool calls</h2>
        {total.tools.length === 0 ? (
          <p class="empty">No tools ran in this range.</p>
        ) : (
          <div class="table-scroll">
            <table class="figures-table" data-insights-tools>
              <thead>
                <tr>
                  <th scope="col">Tool</th>
                  <th scope="col">Calls</th>
                  <th scope="col">Failed</th>
                </tr>
              </thead>
              <tbody>
                {total.tools.map((t) => (
                  <tr key={t.toolName} data-tool={t.toolName}>
                    <th scope="row">{toolLabel(t.toolName)}</th>
                    <td data-tool-calls>{String(t.calls)}</td>
                    <td data-tool-failures>{String(t.failures)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function Tile({ name, label, value }: { name: string; label: string; value: string }) {
  return (
    <div class="tile">
      <dt>{label}</dt>
      <dd data-figure={name}>{value}</dd>
    </div>
  );
}

function ChartPanel({ title, name, config, summary }: { title: string; name: string; config: ChartConfiguration; summary: string }) {
  return (
    <section class="panel chart-panel" aria-label={title}>
      <h2 class="panel-title">{title}</h2>
      <ChartCanvas config={config} summary={`${title}: ${summary}`} name={name} />
    </section>
  );
}

function series(what: string, labels: string[], values: number[]): string {
  return labels.map((l, i) => `${l} ${values[i] ?? 0} ${what}`).join(", ");
}

type Figs = (InsightsFigures | undefined)[];

function callsChart(labels: string[], figures: Figs): ChartConfiguration {
  return {
    type: "bar",
    data: { labels, datasets: [{ label: "Calls", data: figures.map((f) => Number(f?.calls ?? 0)), backgroundColor: SERIES_COLOURS[0] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

function handleChart(labels: string[], figures: Figs): ChartConfiguration {
  const of = (f: InsightsFigures | undefined, p: "handleTimeP50" | "handleTimeP90"): number | null =>
    f?.[p] ? durationMs(f[p]!) / 60_000 : null;
  return {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Median", data: figures.map((f) => of(f, "handleTimeP50")), borderColor: SERIES_COLOURS[0], backgroundColor: SERIES_COLOURS[0], spanGaps: true },
        { label: "90th percentile", data: figures.map((f) => of(f, "handleTimeP90")), borderColor: SERIES_COLOURS[1], backgroundColor: SERIES_COLOURS[1], spanGaps: true },
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  };
}

function topicsChart(labels: string[], figures: Figs): ChartConfiguration {
  const topics = Object.values(Topic).filter((t): t is Topic => typeof t === "number" && t !== Topic.UNSPECIFIED);
  const used = topics.filter((t) => figures.some((f) => f?.topics.some((c) => c.topic === t)));
  return {
    type: "bar",
    data: {
      labels,
      datasets: used.map((t, i) => ({
        label: topicLabel(t),
        data: figures.map((f) => Number(f?.topics.find((c) => c.topic === t)?.calls ?? 0)),
        backgroundColor: SERIES_COLOURS[i % SERIES_COLOURS.length],
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

function suggestionsChart(total: InsightsFigures): ChartConfiguration {
  const s = total.suggestions;
  return {
    type: "bar",
    data: {
      labels: ["Shown", "Used", "Dismissed", "Rated"],
      datasets: [
        {
          label: "Suggestions",
          data: [s?.shown, s?.used, s?.dismissed, s?.rated].map((v) => Number(v ?? 0)),
          backgroundColor: SERIES_COLOURS.slice(0, 4),
        },
      ],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

function sentimentChart(total: InsightsFigures): ChartConfiguration {
  const colour: Record<number, string> = {
    [Sentiment.NEGATIVE]: "#b91c1c",
    [Sentiment.NEUTRAL]: "#5b6577",
    [Sentiment.POSITIVE]: "#15803d",
    [Sentiment.UNSPECIFIED]: "#94a3b8",
  };
  return {
    type: "doughnut",
    data: {
      labels: total.endSentiments.map((e) => (e.sentiment === Sentiment.UNSPECIFIED ? "Not scored" : sentimentLabel(e.sentiment))),
      datasets: [{ label: "Calls", data: total.endSentiments.map((e) => Number(e.calls)), backgroundColor: total.endSentiments.map((e) => colour[e.sentiment] ?? "#94a3b8") }],
    },
  };
}

function alertsChart(total: InsightsFigures): ChartConfiguration {
  const kinds = Object.values(AlertKind).filter((k): k is AlertKind => typeof k === "number" && k !== AlertKind.UNSPECIFIED);
  return {
    type: "bar",
    data: {
      labels: kinds.map(alertLabel),
      datasets: [
        {
          label: "Alerts",
          data: kinds.map((k) => Number(total.alerts.find((a) => a.kind === k)?.alerts ?? 0)),
          backgroundColor: SERIES_COLOURS[3],
        },
      ],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}
