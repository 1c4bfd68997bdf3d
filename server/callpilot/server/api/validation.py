"""Request validation for the AssistService, in one place.

Every check reports all bad fields of a message at once (google.rpc
BadRequest violations), and "call not found" is built by one function so
its reason and metadata are the same for every RPC.
"""

from __future__ import annotations

import re

from callpilot.server.audio import AudioDecoder
from callpilot.server.errors import InvalidArgument, NotFound, Violation
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import call_pb2, common_pb2, events_pb2

CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
MAX_HINTS = 100
MAX_HINT_LEN = 100
MAX_LABELS = 50
CALL_ID_RULE = "call ids are 1 to 64 characters of letters, digits, '_' and '-'"


def call_not_found(call_id: str, hint: str = "") -> NotFound:
    message = f"call {call_id!r} does not exist"
    return NotFound(
        f"{message}; {hint}" if hint else message, reason="CALL_NOT_FOUND", metadata={"call_id": call_id}
    )


def validate_call_id(call_id: str, field: str = "call_id") -> None:
    if not call_id:
        raise InvalidArgument(Violation(field, "call_id is required", "REQUIRED"))
    if not CALL_ID_RE.match(call_id):
        raise InvalidArgument(Violation(field, CALL_ID_RULE, "INVALID_FORMAT"))


def validate_from_sequence(from_sequence: int) -> None:
    if from_sequence < 0:
        raise InvalidArgument(Violation("from_sequence", "must be 0 or more", "OUT_OF_RANGE"))


def validate_config(config: call_pb2.CallConfig, prefix: str = "config") -> None:
    """Check everything in a call configuration, reporting every bad field at once."""
    violations: list[Violation] = []
    if config.call_id and not CALL_ID_RE.match(config.call_id):
        violations.append(Violation(f"{prefix}.call_id", CALL_ID_RULE, "INVALID_FORMAT"))
    if config.language_code and not LANGUAGE_RE.match(config.language_code):
        violations.append(
            Violation(
                f"{prefix}.language_code",
                f"{config.language_code!r} is not a BCP-47 language tag like 'en' or 'en-US'",
            )
        )
    if len(config.phrase_hints) > MAX_HINTS:
        violations.append(
            Violation(f"{prefix}.phrase_hints", f"at most {MAX_HINTS} phrase hints are accepted")
        )
    for i, hint in enumerate(config.phrase_hints):
        if not hint.strip() or len(hint) > MAX_HINT_LEN:
            violations.append(
                Violation(
                    f"{prefix}.phrase_hints[{i}]", f"phrase hints must be 1 to {MAX_HINT_LEN} characters"
                )
            )
    if len(config.labels) > MAX_LABELS:
        violations.append(Violation(f"{prefix}.labels", f"at most {MAX_LABELS} labels are accepted"))
    if config.HasField("audio") and config.audio.encoding != common_pb2.AUDIO_ENCODING_UNSPECIFIED:
        try:
            AudioDecoder(config.audio)
        except InvalidArgument as exc:
            violations.extend(
                Violation(v.field.replace("config.", f"{prefix}.", 1), v.description, v.reason)
                for v in exc.violations
            )
    elif config.HasField("audio") and (config.audio.sample_rate_hertz or config.audio.channel_count):
        violations.append(
            Violation(
                f"{prefix}.audio.encoding",
                "set the encoding: AUDIO_ENCODING_LINEAR16, AUDIO_ENCODING_MULAW or AUDIO_ENCODING_ALAW",
                "REQUIRED",
            )
        )
    if violations:
        raise InvalidArgument(violations)


def validate_first_request(first: pb.StreamCallRequest | None) -> call_pb2.CallConfig:
    """StreamCall's first message must be the config; returns it."""
    if first is None:
        raise InvalidArgument(
            Violation("config", "the stream was empty: send a config as the first message", "REQUIRED")
        )
    kind = first.WhichOneof("request")
    if kind != "config":
        raise InvalidArgument(
            Violation(
                "config",
                f"the first message must be a config, got {kind or 'an empty message'}; "
                "send the call's configuration before any audio, text or control",
                "CONFIG_FIRST",
            )
        )
    validate_config(first.config)
    return first.config


def validate_decision(decision: events_pb2.ToolDecision, prefix: str = "tool_decision") -> None:
    violations: list[Violation] = []
    if not decision.tool_call_id:
        violations.append(Violation(f"{prefix}.tool_call_id", "tool_call_id is required", "REQUIRED"))
    if decision.kind == events_pb2.TOOL_DECISION_KIND_UNSPECIFIED:
        violations.append(Violation(f"{prefix}.kind", "set kind to CONFIRM, REVISE or CANCEL", "REQUIRED"))
    if decision.kind == events_pb2.TOOL_DECISION_KIND_REVISE and not decision.arguments.fields:
        violations.append(
            Violation(f"{prefix}.arguments", "REVISE needs the arguments to run with", "REQUIRED")
        )
    if len(decision.comment) > 2000:
        violations.append(Violation(f"{prefix}.comment", "at most 2000 characters", "TOO_LONG"))
    if violations:
        raise InvalidArgument(violations)


def validate_feedback(feedback: pb.SuggestionFeedback, prefix: str = "feedback") -> None:
    violations: list[Violation] = []
    if not feedback.suggestion_id:
        violations.append(Violation(f"{prefix}.suggestion_id", "suggestion_id is required", "REQUIRED"))
    if feedback.kind == pb.FEEDBACK_KIND_UNSPECIFIED:
        violations.append(Violation(f"{prefix}.kind", "set kind to USED, DISMISSED or RATED", "REQUIRED"))
    if feedback.kind == pb.FEEDBACK_KIND_RATED and not 1 <= feedback.rating <= 5:
        violations.append(Violation(f"{prefix}.rating", "a rating is 1 to 5", "OUT_OF_RANGE"))
    if len(feedback.comment) > 2000:
        violations.append(Violation(f"{prefix}.comment", "at most 2000 characters", "TOO_LONG"))
    if violations:
        raise InvalidArgument(violations)


def validate_page_size(page_size: int) -> int:
    if not 0 <= page_size <= 100:
        raise InvalidArgument(Violation("page_size", "must be 1 to 100 (0 means 20)", "OUT_OF_RANGE"))
    return page_size or 20


MAX_WRAP_UP_TEXT = 4000
MAX_FOLLOW_UPS = 20
MAX_FOLLOW_UP_LEN = 500


def validate_wrap_up(request: pb.SaveWrapUpRequest) -> None:
    """A wrap-up's lengths and disposition, every bad field at once (the call is checked by the store)."""
    validate_call_id(request.call_id)
    if not request.HasField("wrap_up"):
        raise InvalidArgument(Violation("wrap_up", "wrap_up is required", "REQUIRED"))
    wrap_up = request.wrap_up
    violations: list[Violation] = []
    for name in ("summary", "notes"):
        if len(getattr(wrap_up, name)) > MAX_WRAP_UP_TEXT:
            violations.append(
                Violation(f"wrap_up.{name}", f"at most {MAX_WRAP_UP_TEXT} characters", "TOO_LONG")
            )
    if wrap_up.disposition not in pb.Disposition.values():
        violations.append(
            Violation("wrap_up.disposition", f"unknown disposition {wrap_up.disposition}", "INVALID")
        )
    if len(wrap_up.follow_ups) > MAX_FOLLOW_UPS:
        violations.append(
            Violation("wrap_up.follow_ups", f"at most {MAX_FOLLOW_UPS} follow-ups are accepted", "TOO_MANY")
        )
    for i, item in enumerate(wrap_up.follow_ups):
        if not item.strip() or len(item) > MAX_FOLLOW_UP_LEN:
            violations.append(
                Violation(
                    f"wrap_up.follow_ups[{i}]",
                    f"a follow-up is 1 to {MAX_FOLLOW_UP_LEN} characters",
                    "INVALID",
                )
            )
    if violations:
        raise InvalidArgument(violations)
