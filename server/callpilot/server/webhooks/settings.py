"""Webhook tunables, read from the environment.

They live here rather than in `callpilot.server.config` for now; each maps
one-to-one to a future ``Settings`` field of the same name without the prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from callpilot.server.errors import ConfigError

PREFIX = "CALLPILOT_WEBHOOK_"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How deliveries are made and retried.

    Policy: a failed attempt is retried after a delay drawn uniformly from
    ``[0, min(retry_cap_s, retry_base_s * 2**(attempts-1))]`` (exponential
    backoff with full jitter, so a recovering receiver is not hit by every
    instance at once). An endpoint whose attempts have all failed for
    `disable_after_days` is disabled, and the deliveries that were older than
    that are marked failed; the others wait, pending, for it to be re-enabled.
    """

    #: Seconds to wait for a receiver's answer (connect included).
    timeout_s: float = 10.0
    #: First retry delay bound, in seconds.
    retry_base_s: float = 2.0
    #: Largest retry delay bound, in seconds (one hour).
    retry_cap_s: float = 3600.0
    #: Days of continuous failure after which an endpoint is disabled.
    disable_after_days: float = 5.0
    #: Seconds between looks at the outbox when nothing woke the worker.
    poll_s: float = 1.0
    #: Deliveries claimed, and sent concurrently, per round.
    batch: int = 16
    #: Days settled (delivered or failed) deliveries and their attempts are kept.
    retention_days: float = 30.0
    #: The link to a call's transcript put in call.ended; "{call_id}" is replaced.
    transcript_url: str = "callpilot://calls/{call_id}/transcript"

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery belongs to its worker: longer than any attempt.

        Twice the request timeout plus 5 s to record the attempt, so a live
        worker always settles its row before anyone else may claim it.
        """
        return 2 * self.timeout_s + 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, kind in (
            ("timeout_s", float),
            ("retry_base_s", float),
            ("retry_cap_s", float),
            ("disable_after_days", float),
            ("poll_s", float),
            ("batch", int),
            ("retention_days", float),
        ):
            raw = env.get(PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{PREFIX}{name.upper()}={raw!r} is not a number") from None
            if value <= 0:
                raise ConfigError(f"{PREFIX}{name.upper()} must be greater than 0, got {raw!r}")
            values[name] = value
        if url := env.get(PREFIX + "TRANSCRIPT_URL"):
            values["transcript_url"] = url
        return cls(**values)  # type: ignore[arg-type]
