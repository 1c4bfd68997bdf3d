"""Strict checks of everything a page sends to the signalling API.

Input is checked before it reaches aiortc: aiortc's SDP parser is lenient
(it accepts "garbage" as an empty description) and reports problems with
bare assertions, so a bad offer would otherwise surface as a confusing
failure deep in ICE or DTLS instead of a 400 naming what is wrong.
Unknown JSON fields are rejected too, so a typo ("callId") is reported
rather than silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc.sdp import SessionDescription, candidate_from_sdp
from callpilot.gateway.webrtc.errors import ApiError, bad_request

CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES = ("customer", "agent")
MAX_SDP_BYTES = 64 * 1024
MAX_CANDIDATE_CHARS = 1024
MAX_HINT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Offer:
    call_id: str
    role: str
    sdp: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled remote candidate; `candidate` is None for end-of-candidates."""

    candidate: str | None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None


def parse_json_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("the request body is empty; send a JSON object", code="INVALID_JSON")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}", code="INVALID_JSON") from None
    if not isinstance(value, dict):
        raise bad_request("the request body must be a JSON object", code="INVALID_JSON")
    return value


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(
            f"unknown field(s) {', '.join(prefix + u for u in unknown)}; expected {', '.join(prefix + a for a in allowed)}",
            field=prefix + unknown[0],
            code="UNKNOWN_FIELD",
        )


def _string(body: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required", field=name, code="REQUIRED")
        return ""
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", field=name)
    return value


def validate_call_id(call_id: object, field: str = "call_id") -> str:
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(
            "call_id is required (from POST /api/calls/start)", field=field, code="INVALID_CALL_ID"
        )
    if not CALL_ID_RE.match(call_id):
        raise bad_request(
            "call_id must be 1 to 64 letters, digits, '_' or '-' (as returned by POST /api/calls/start)",
            field=field,
            code="INVALID_CALL_ID",
        )
    return call_id


def validate_role(role: object, field: str = "role") -> str:
    if role not in ROLES:
        raise bad_request(
            f'role must be "customer" or "agent", got {role!r}', field=field, code="INVALID_ROLE"
        )
    assert isinstance(role, str)
    return role


MAX_TOKEN_CHARS = 256


def parse_join(body: Mapping[str, Any]) -> tuple[str, str]:
    """`POST /api/calls/start` body's optional `join_token` (from the call link) and `call_id`."""
    out: list[str] = []
    for key in ("join_token", "call_id"):
        value = body.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TOKEN_CHARS or not value.isprintable():
            raise bad_request(f"{key} must be a string of at most {MAX_TOKEN_CHARS} characters", field=key)
        out.append(value.strip())
    if out[1]:
        validate_call_id(out[1])
    return out[0], out[1]


def parse_start(body: Mapping[str, Any]) -> dict[str, str]:
    """`POST /api/calls/start` body: optional {"customer_hint": {customer_id|phone|email}},
    plus the `join_token`/`call_id` read by `parse_join`."""
    _reject_unknown(body, ("customer_hint", "join_token", "call_id"))
    hint = body.get("customer_hint")
    if hint is None:
        return {}
    if not isinstance(hint, dict):
        raise bad_request("customer_hint must be an object", field="customer_hint")
    _reject_unknown(hint, ("customer_id", "phone", "email"), prefix="customer_hint.")
    out: dict[str, str] = {}
    for key in ("customer_id", "phone", "email"):
        value = hint.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_HINT_CHARS:
            raise bad_request(
                f"customer_hint.{key} must be a non-empty string of at most {MAX_HINT_CHARS} characters",
                field=f"customer_hint.{key}",
            )
        out[key] = value.strip()
    return out


def parse_offer(body: Mapping[str, Any]) -> Offer:
    """`POST /api/webrtc/offer` body: {call_id, role, sdp, type: "offer"}.

    Checks the body's shape only; the SDP itself is checked by
    `validate_offer_sdp` once the call is known to exist, so an offer for an
    unknown call is 404 CALL_NOT_FOUND whatever its SDP.
    """
    _reject_unknown(body, ("call_id", "role", "sdp", "type"))
    call_id = validate_call_id(body.get("call_id"))
    role = validate_role(body.get("role"))
    kind = _string(body, "type")
    if kind != "offer":
        raise bad_request(f'type must be "offer", got {kind!r}', field="type")
    sdp = _string(body, "sdp")
    return Offer(call_id=call_id, role=role, sdp=sdp)


def parse_leg_ref(body: Mapping[str, Any]) -> tuple[str, str]:
    """`POST /api/webrtc/hangup` body: {call_id, role}."""
    _reject_unknown(body, ("call_id", "role"))
    return validate_call_id(body.get("call_id")), validate_role(body.get("role"))


def _invalid_sdp(message: str) -> ApiError:
    return bad_request(f"the offer SDP is not usable: {message}", field="sdp", code="INVALID_SDP")


def validate_offer_sdp(sdp: str) -> SessionDescription:
    """Check that `sdp` is an offer aiortc can answer: DTLS-SRTP audio with Opus and ICE credentials."""
    if len(sdp.encode("utf-8")) > MAX_SDP_BYTES:
        raise _invalid_sdp(f"it is larger than {MAX_SDP_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise _invalid_sdp('it must start with "v=0" (pass RTCPeerConnection.localDescription.sdp)')
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:
        detail = str(exc) or "a line could not be parsed"
        raise _invalid_sdp(detail) from None
    if len(parsed.media) != 1:
        raise _invalid_sdp(
            f"it has {len(parsed.media)} media sections; offer exactly one audio section "
            "(add one microphone track before createOffer, no video or data channel)"
        )
    for index, media in enumerate(parsed.media):
        where = f"m-line {index}"
        if media.kind != "audio":
            raise _invalid_sdp(f"{where} is {media.kind!r}; only audio is supported")
        if "SAVP" not in media.profile:
            raise _invalid_sdp(
                f"{where} uses profile {media.profile}; DTLS-SRTP (UDP/TLS/RTP/SAVPF) is required"
            )
        if not any(codec.mimeType.lower() == "audio/opus" for codec in media.rtp.codecs):
            raise _invalid_sdp(f"{where} does not offer the Opus codec")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise _invalid_sdp(f"{where} has no ICE credentials (a=ice-ufrag / a=ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise _invalid_sdp(f"{where} has no DTLS fingerprint (a=fingerprint)")
        if media.direction not in (None, "sendrecv", "sendonly"):
            raise _invalid_sdp(f"{where} is {media.direction}; the page must send its microphone")
    return parsed


def parse_candidate(message: Mapping[str, Any]) -> Candidate:
    """A trickle message {"type": "candidate", candidate, sdpMid, sdpMLineIndex, usernameFragment}.

    An empty or null `candidate` is end-of-candidates, as in the browser's
    own `icecandidate` event.
    """
    _reject_unknown(message, ("type", "candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"))
    text = message.get("candidate")
    mid = message.get("sdpMid")
    index = message.get("sdpMLineIndex")
    ufrag = message.get("usernameFragment")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise bad_request("sdpMid must be a short string", field="sdpMid")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64):
        raise bad_request("sdpMLineIndex must be an integer from 0 to 63", field="sdpMLineIndex")
    if ufrag is not None and (not isinstance(ufrag, str) or len(ufrag) > 256):
        raise bad_request("usernameFragment must be a string", field="usernameFragment")
    if text is None or text == "":
        return Candidate(None)
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE_CHARS:
        raise bad_request("candidate must be a string (RTCIceCandidate.candidate)", field="candidate")
    if mid is None and index is None:
        raise bad_request("a candidate needs sdpMid or sdpMLineIndex", field="sdpMid")
    body = text.removeprefix("a=").removeprefix("candidate:")
    try:
        candidate_from_sdp(body)
    except Exception:
        raise bad_request(
            f"candidate {text[:80]!r} is not an ICE candidate line", field="candidate"
        ) from None
    return Candidate(body, mid, index, ufrag)
