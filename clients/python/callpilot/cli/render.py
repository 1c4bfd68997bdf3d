"""Rendering events for people (and as canonical proto3 JSON for programs)."""

from __future__ import annotations

import sys
from typing import TextIO

from callpilot.v1 import call_pb2, common_pb2, directory_pb2, events_pb2
from google.protobuf import json_format

ROLE = {common_pb2.SPEAKER_ROLE_CUSTOMER: "customer", common_pb2.SPEAKER_ROLE_AGENT: "agent"}


def to_json(message: object) -> str:
    """One line of canonical proto3 JSON (as grpcurl prints it, compacted)."""
    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=False)  # type: ignore[arg-type]


class EventPrinter:
    """Prints a call as it unfolds. Interim transcripts are overwritten in
    place on a terminal and shown with a '…' prefix otherwise."""

    def __init__(self, out: TextIO = sys.stdout, *, json_lines: bool = False) -> None:
        self.out = out
        self.json_lines = json_lines
        self.tty = out.isatty()
        self._interim_shown = False
        self._delta_open = False

    def _line(self, text: str) -> None:
        if self._interim_shown and self.tty:
            self.out.write("\r\033[K")
            self._interim_shown = False
        if self._delta_open:
            self.out.write("\n")
            self._delta_open = False
        self.out.write(text + "\n")
        self.out.flush()

    def print(self, event: events_pb2.CallEvent) -> None:
        if self.json_lines:
            self.out.write(to_json(event) + "\n")
            self.out.flush()
            return
        kind = event.WhichOneof("payload")
        seq = f"#{event.sequence:<4}"
        if kind == "call_started":
            started = event.call_started.call
            self._line(f"{seq} call started   {started.call_id}")
        elif kind == "transcript":
            tr = event.transcript
            who = ROLE.get(tr.role, "?")
            if tr.is_final:
                self._line(f"{seq} [{who}] {tr.text}")
            elif self.tty:
                self.out.write(f"\r\033[K\033[2m{seq} [{who}] … {tr.text}\033[0m")
                self.out.flush()
                self._interim_shown = True
            else:
                self._line(f"{seq} [{who}] … {tr.text}")
        elif kind == "speech_activity":
            return
        elif kind == "context":
            c = event.context
            parts = []
            if c.HasField("customer"):
                parts.append(f"customer {c.customer.name} ({c.customer.customer_id}, {c.customer.tier})")
            if c.topics:
                parts.append(
                    "topics "
                    + ", ".join(events_pb2.Topic.Name(t).removeprefix("TOPIC_").lower() for t in c.topics)
                )
            if c.entities:
                parts.append(
                    "entities "
                    + ", ".join(
                        f"{events_pb2.EntityType.Name(e.type).removeprefix('ENTITY_TYPE_').lower()}={e.value}"
                        for e in c.entities
                    )
                )
            if c.sentiment:
                parts.append(
                    "sentiment " + events_pb2.Sentiment.Name(c.sentiment).removeprefix("SENTIMENT_").lower()
                )
            self._line(f"{seq} context        " + "; ".join(parts))
        elif kind == "tool_call":
            t = event.tool_call
            args = to_json(t.arguments)
            if t.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED:
                self._line(f"{seq} tool           {t.tool_name}({args}) -> {to_json(t.result)}")
            else:
                self._line(f"{seq} tool           {t.tool_name}({args}) failed: {t.error}")
        elif kind == "suggestion_delta":
            if not self._delta_open:
                self.out.write(f"{seq} suggesting     ")
                self._delta_open = True
            self.out.write(event.suggestion_delta.text)
            self.out.flush()
        elif kind == "suggestion_completed":
            s = event.suggestion_completed
            sources = ", ".join(
                f"{events_pb2.SourceKind.Name(src.kind).removeprefix('SOURCE_KIND_').lower()}:{src.id}"
                for src in s.sources
            )
            self._line(f"{seq} suggestion     {s.text}" + (f"  [sources: {sources}]" if sources else ""))
        elif kind == "notice":
            n = event.notice
            level = events_pb2.NoticeLevel.Name(n.level).removeprefix("NOTICE_LEVEL_").lower()
            self._line(f"{seq} notice         {level} {n.code}: {n.text}")
        elif kind == "call_ended":
            e = event.call_ended
            reason = call_pb2.CallEndReason.Name(e.reason).removeprefix("CALL_END_REASON_").lower()
            self._line(f"{seq} call ended     {reason}" + (f" ({e.detail})" if e.detail else ""))
            if e.summary:
                self._line(f"      summary: {e.summary}")


def describe_call(call: call_pb2.Call) -> str:
    state = call_pb2.CallState.Name(call.state).removeprefix("CALL_STATE_").lower()
    started = (
        call.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if call.HasField("create_time") else "-"
    )
    return f"{call.call_id}  {state:<6} {started}  customer={call.customer_id or '-'}  events={call.last_sequence}"


def describe_customer(customer: directory_pb2.Customer) -> str:
    return f"{customer.customer_id}  {customer.name}  {customer.email}  {customer.phone}  {customer.tier}/{customer.status}"
