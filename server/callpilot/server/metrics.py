"""Prometheus metrics for per-stage latency.

The same figures are derivable from event timings by any client; these
histograms are for operators scraping the server.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)

# Decoding and resampling a chunk takes tens of microseconds: finer buckets.
FRAME_TO_STT = Histogram(
    "callpilot_frame_to_stt_seconds",
    "Audio chunk received by the server to samples handed to the STT stream",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SPEECH_END_TO_FINAL = Histogram(
    "callpilot_speech_end_to_final_seconds",
    "End of speech detected to final transcript event emitted",
    buckets=_LATENCY_BUCKETS,
)
FINAL_TO_FIRST_DELTA = Histogram(
    "callpilot_final_to_first_delta_seconds",
    "Triggering final transcript to first suggestion delta",
    buckets=_LATENCY_BUCKETS,
)
EMIT_TO_WATCHER = Histogram(
    "callpilot_emit_to_watcher_seconds",
    "Event emitted to handed to a watcher's stream",
    buckets=_LATENCY_BUCKETS,
)
ACTIVE_CALLS = Gauge("callpilot_active_calls", "Calls with a live session")
EVENTS = Counter("callpilot_events_total", "Events emitted", ["kind", "durable"])
WATCHER_LAGS = Counter(
    "callpilot_watcher_lags_total", "Watchers that fell behind and replayed from the store"
)
BUS_DROPPED = Counter(
    "callpilot_bus_dropped_total",
    "Events not delivered to other instances (Redis down or publish queue full); durable ones are re-read from the store",
)
EVENT_COMMIT = Histogram(
    "callpilot_event_commit_seconds",
    "Durable event handed to the store to its transaction committed (queueing included)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.5),
)
EVENT_COMMIT_BATCH = Histogram(
    "callpilot_event_commit_batch_events",
    "Durable events written per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
