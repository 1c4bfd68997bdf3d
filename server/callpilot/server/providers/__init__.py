"""Building the configured providers (STT engine, assistant) from the registry.

The only place that maps configuration names to implementations; the
pipeline sees the interfaces alone. Names, requirements and fallback rules
are the table in `registry`; this module applies them:

* `build_stt`: the configured engine; a cloud engine (`falls_back`) comes
  wrapped in a `FallbackEngine` with CALLPILOT_STT_FALLBACK's engine unless
  that is "none", so the session needs no fallback logic of its own;
* `build_assistant`: the configured assistant; a model-backed one comes
  wrapped in a `FallbackAssistant` with the local assistant.

Both check the registry's requirements first, so a missing key is a
`ConfigError` naming it, at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callpilot.server.errors import ConfigError
from callpilot.server.providers.registry import (
    ASSISTANT_PROVIDERS,
    LOCAL_ASSISTANT,
    STT_FALLBACK_PROVIDERS,
    STT_PROVIDERS,
    assistant_provider,
    problems,
    stt_fallback_provider,
    stt_provider,
)

if TYPE_CHECKING:
    from callpilot.server.assist.base import Assistant
    from callpilot.server.assist.tools import ToolBox
    from callpilot.server.config import Settings
    from callpilot.server.directory import Directory
    from callpilot.server.stt.base import STTEngine

__all__ = [
    "ASSISTANT_PROVIDERS",
    "STT_FALLBACK_PROVIDERS",
    "STT_PROVIDERS",
    "build_assistant",
    "build_stt",
    "check",
]


def check(settings: Settings) -> None:
    """Raise one ConfigError listing every provider problem of `settings`, if any."""
    found = problems(settings)
    if found:
        raise ConfigError("invalid configuration: " + "; ".join(found), found)


def build_stt(settings: Settings) -> STTEngine:
    """The configured STT engine, wrapped with its fallback where the registry says so."""
    check(settings)
    provider = stt_provider(settings.stt)
    engine = provider.build(settings)
    fallback = stt_fallback_provider(settings.stt_fallback) if provider.falls_back else None
    if fallback is None:
        return engine
    from callpilot.server.stt.fallback import FallbackEngine

    return FallbackEngine(engine, fallback.build(settings), fallback_name=fallback.description)


def build_assistant(settings: Settings, directory: Directory, toolbox: ToolBox) -> Assistant:
    """The configured assistant; a language model has the local assistant as its fallback."""
    check(settings)
    provider = assistant_provider(settings.assistant)
    assistant = provider.build(settings, directory, toolbox)
    if not provider.falls_back:
        return assistant
    from callpilot.server.assist.fallback import FallbackAssistant

    local = assistant_provider(LOCAL_ASSISTANT)
    return FallbackAssistant(
        assistant,
        local.build(settings, directory, toolbox),
        primary_name=provider.description,
        fallback_name=local.description,
    )
