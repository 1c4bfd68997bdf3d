"""A tenant's alert configuration, and how it is read from the environment.

Until tenants have a settings store, the server's tenant takes its rules
from `CALLPILOT_ALERT_*` variables (see docs/supervisor.md). Every rule can
be switched off: an empty phrase list, or 0 seconds / 0 turns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from callpilot.server.errors import ConfigError

DEFAULT_CUSTOMER_PHRASES = (
    "cancel my account",
    "speak to a manager",
    "speak to your manager",
    "my lawyer",
    "legal action",
    "sue you",
)
# Off by default: a disclosure's wording is the tenant's own (e.g.
# CALLPILOT_ALERT_REQUIRED_AGENT_PHRASES="this call is recorded").
DEFAULT_REQUIRED_AGENT_PHRASES: tuple[str, ...] = ()

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces, padded with one space each side.

    Matching normalised phrases inside normalised text then only matches
    whole words: " sue you " is not found in " pursue your ".
    """
    words = _NON_WORD.sub(" ", text.lower()).split()
    return f" {' '.join(words)} " if words else " "


@dataclass(frozen=True)
class AlertRules:
    """When a call raises an alert.

    - `customer_phrases`: a customer turn containing one of them (whole words,
      case and punctuation ignored) fires CUSTOMER_PHRASE, once per phrase.
    - `required_agent_phrases`: each must be said by the agent within
      `required_within_s` of the call's start, or REQUIRED_PHRASE_MISSING
      fires once for it.
    - `silence_s`: no final transcript or speech activity for that long
      fires LONG_SILENCE, once per silence.
    - `pending_tool_s`: a write tool still waiting for the agent's decision
      after that long fires TOOL_CONFIRMATION_PENDING, once per tool call.
    - `sentiment_turns`: that many consecutive customer turns with strictly
      falling sentiment scores, the last one negative, fire SENTIMENT_FALLING;
      it re-arms once a score rises.
    """

    customer_phrases: tuple[str, ...] = DEFAULT_CUSTOMER_PHRASES
    required_agent_phrases: tuple[str, ...] = DEFAULT_REQUIRED_AGENT_PHRASES
    required_within_s: float = 120.0
    silence_s: float = 60.0
    pending_tool_s: float = 60.0
    sentiment_turns: int = 3

    def __post_init__(self) -> None:
        for name in ("required_within_s", "silence_s", "pending_tool_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"alert rule {name} must be 0 (off) or more, got {getattr(self, name)}")
        if self.sentiment_turns < 0 or self.sentiment_turns == 1:
            raise ConfigError(
                f"alert rule sentiment_turns must be 0 (off) or at least 2, got {self.sentiment_turns}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertRules:
        """Rules from CALLPILOT_ALERT_* variables; unset ones keep their defaults.

        Phrase lists are separated by `|` (an empty value switches the rule off).
        """
        defaults = cls()

        def phrases(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            if key not in env:
                return default
            return tuple(p.strip() for p in env[key].split("|") if p.strip())

        def number(key: str, default: float) -> float:
            if key not in env:
                return default
            try:
                return float(env[key])
            except ValueError:
                raise ConfigError(f"{key} must be a number of seconds, got {env[key]!r}") from None

        turns = number("CALLPILOT_ALERT_SENTIMENT_TURNS", defaults.sentiment_turns)
        if turns != int(turns):
            raise ConfigError(f"CALLPILOT_ALERT_SENTIMENT_TURNS must be a whole number, got {turns}")
        return cls(
            customer_phrases=phrases("CALLPILOT_ALERT_CUSTOMER_PHRASES", defaults.customer_phrases),
            required_agent_phrases=phrases(
                "CALLPILOT_ALERT_REQUIRED_AGENT_PHRASES", defaults.required_agent_phrases
            ),
            required_within_s=number("CALLPILOT_ALERT_REQUIRED_WITHIN_S", defaults.required_within_s),
            silence_s=number("CALLPILOT_ALERT_SILENCE_S", defaults.silence_s),
            pending_tool_s=number("CALLPILOT_ALERT_PENDING_TOOL_S", defaults.pending_tool_s),
            sentiment_turns=int(turns),
        )
