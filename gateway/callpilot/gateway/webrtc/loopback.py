"""Loopback-only ICE, for development and tests (`--ice-loopback`, `CALLPILOT_ICE_LOOPBACK=1`).

RFC 8445 (5.1.1.1) forbids loopback host candidates, and aioice follows it:
`aioice.ice.get_host_addresses` skips 127.0.0.1 and ::1. On a machine where
tests may only send traffic to loopback, that leaves the gateway with no
candidate a local browser may use. This module is the explicit, documented
escape hatch:

* `enable()` makes aioice gather exactly one host candidate, 127.0.0.1,
  and ignore connectivity checks that arrive from any other address
  (process-wide: aioice has no per-connection hook for either). Without the
  second half, Chromium's checks from its LAN socket to our 127.0.0.1 would
  teach aioice a peer-reflexive LAN address and media would flow there;
* `keep_loopback_candidates(sdp)` / `is_loopback_candidate(line)` drop every
  remote candidate that is not on loopback (Chromium, started with
  `--allow-loopback-in-peer-connection`, offers 127.0.0.1 next to its real
  interfaces), so the gateway never sends a packet off the machine.

Never enable this in production: a gateway that only listens on loopback
cannot be reached by any real browser.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import aioice.ice

log = logging.getLogger("callpilot.gateway.webrtc")

LOOPBACK_ADDRESSES = ["127.0.0.1"]
_enabled = False


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Replacement for aioice's host address enumeration: loopback IPv4 only."""
    return list(LOOPBACK_ADDRESSES) if use_ipv4 else []


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enable() -> None:
    """Make every aiortc peer connection in this process use loopback only (idempotent)."""
    global _enabled
    if _enabled:
        return
    aioice.ice.get_host_addresses = _loopback_host_addresses
    original = aioice.ice.Connection.request_received

    def loopback_request_received(
        self: aioice.ice.Connection, message: Any, addr: tuple[str, int], protocol: Any
    ) -> None:
        if _is_loopback_address(addr[0]):
            original(self, message, addr, protocol)

    aioice.ice.Connection.request_received = loopback_request_received  # type: ignore[method-assign]
    _enabled = True
    log.warning(
        "ICE loopback mode: the gateway offers only 127.0.0.1 candidates and ignores non-loopback "
        "ones (development and tests only; browsers on other machines cannot connect)"
    )


def is_enabled() -> bool:
    return _enabled


def is_loopback_candidate(candidate: str) -> bool:
    """Whether a candidate line ("candidate:..." or its body) is a UDP candidate on a loopback address."""
    bits = candidate.removeprefix("a=").removeprefix("candidate:").split()
    if len(bits) < 8 or bits[2].lower() != "udp":
        return False
    return _is_loopback_address(bits[4])  # mDNS hostnames (*.local) are not


def keep_loopback_candidates(sdp: str) -> str:
    """`sdp` without its non-loopback `a=candidate` lines."""
    lines = sdp.splitlines()
    kept = [ln for ln in lines if not ln.startswith("a=candidate:") or is_loopback_candidate(ln)]
    return "\r\n".join(kept) + "\r\n"
