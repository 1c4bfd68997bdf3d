"""HTTP message signatures on AudioHook connection requests (HMAC-SHA256, as Genesys signs them).

Genesys signs the websocket upgrade with the integration's client secret:

    Signature-Input: sig1=("@request-target" "@authority" "audiohook-organization-id"
                     "audiohook-session-id" "audiohook-correlation-id" "x-api-key");
                     keyid="<the X-API-KEY>";nonce="…";alg="hmac-sha256";created=…;expires=…
    Signature: sig1=:<base64 HMAC-SHA256 of the signature base>:

The signature base is one line per covered component, `"name": value`, then
`"@signature-params": <the inner list with its parameters, verbatim>`.
Policy: a request is accepted if it carries no signature, or one that
verifies: keyid equal to its X-API-KEY, alg hmac-sha256, the current time
within created (minus `CLOCK_SKEW_S`) and expires, and a matching MAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

CLOCK_SKEW_S = 30
_LABELLED = re.compile(r"^\s*([a-z0-9_-]+)=(.*)$", re.S)
_COMPONENTS = re.compile(r'^\(((?:\s*"[^"]+")*)\s*\)(.*)$', re.S)
_PARAM = re.compile(r';\s*([a-z0-9_-]+)=("(?:[^"\\]|\\.)*"|-?\d+)')


class SignatureError(ValueError):
    """The request's signature is malformed or does not verify."""


def _components(headers: Mapping[str, str], method_path: str, authority: str, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        if name == "@request-target":
            value = method_path
        elif name == "@authority":
            value = authority.lower()
        elif name.startswith("@"):
            raise SignatureError(f"unsupported derived component {name}")
        else:
            if name not in headers:
                raise SignatureError(f"signed header {name} is missing")
            value = headers[name].strip()
        lines.append(f'"{name}": {value}')
    return lines


def verify(
    headers: Mapping[str, str], path_qs: str, authority: str, secret: bytes, *, now: float | None = None
) -> None:
    """Raise SignatureError unless the request's `Signature` verifies (headers keys lower-case)."""
    raw_input, raw_sig = headers.get("signature-input", ""), headers.get("signature", "")
    if not raw_input or not raw_sig:
        raise SignatureError("Signature and Signature-Input must both be present")
    match_in, match_sig = _LABELLED.match(raw_input), _LABELLED.match(raw_sig)
    if not match_in or not match_sig or match_in.group(1) != match_sig.group(1):
        raise SignatureError("Signature-Input and Signature labels do not match")
    inner = match_in.group(2).strip()
    parsed = _COMPONENTS.match(inner)
    if not parsed:
        raise SignatureError("Signature-Input is not an inner list of components")
    names = re.findall(r'"([^"]+)"', parsed.group(1))
    params = {k: v.strip('"') for k, v in _PARAM.findall(parsed.group(2))}
    if params.get("alg", "hmac-sha256") != "hmac-sha256":
        raise SignatureError(f"unsupported signature algorithm {params.get('alg')!r}")
    if params.get("keyid") != headers.get("x-api-key"):
        raise SignatureError("the signature's keyid is not the request's X-API-KEY")
    if "x-api-key" not in names:
        raise SignatureError("the signature does not cover X-API-KEY")
    clock = time.time() if now is None else now
    try:
        created, expires = int(params.get("created", "0")), int(params.get("expires", "0"))
    except ValueError:
        raise SignatureError("created/expires must be integers") from None
    if created and created > clock + CLOCK_SKEW_S:
        raise SignatureError("the signature was created in the future")
    if expires and expires < clock - CLOCK_SKEW_S:
        raise SignatureError("the signature has expired")
    sig_value = match_sig.group(2).strip()
    if not (sig_value.startswith(":") and sig_value.endswith(":")):
        raise SignatureError("Signature is not a byte sequence (:base64:)")
    try:
        given = base64.b64decode(sig_value[1:-1], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Signature is not valid base64") from None
    base = "\n".join([*_components(headers, path_qs, authority, names), f'"@signature-params": {inner}'])
    expected = hmac.new(secret, base.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("the signature does not match")


def sign(
    headers: Mapping[str, str], path_qs: str, authority: str, secret: bytes, *, nonce: str, created: int
) -> dict[str, str]:
    """The Signature-Input and Signature headers Genesys would send (used by tests and tools)."""
    names = [
        "@request-target",
        "@authority",
        "audiohook-organization-id",
        "audiohook-session-id",
        "audiohook-correlation-id",
        "x-api-key",
    ]
    inner = (
        "(" + " ".join(f'"{n}"' for n in names) + ")"
        f';keyid="{headers["x-api-key"]}";nonce="{nonce}";alg="hmac-sha256";created={created};expires={created + 30}'
    )
    base = "\n".join([*_components(headers, path_qs, authority, names), f'"@signature-params": {inner}'])
    mac = base64.b64encode(hmac.new(secret, base.encode(), hashlib.sha256).digest()).decode()
    return {"Signature-Input": f"sig1={inner}", "Signature": f"sig1=:{mac}:"}
