"""The one table of providers: names, what each needs, how each is built.

Configuration validation, construction, the fallback wrapping and the CLI all
read this table, so a provider is added in one place. Importing this module
is cheap (no SDK, no model, no numpy): the functions in `builders` import
their implementation when called, so `config` and the CLI can take the names from here.

Policies:
* an unknown name is a `ConfigError` that names the valid choices;
* a provider's `requires` are settings that must be non-empty (API keys),
  each with the message a person acts on;
* an STT provider with `falls_back=True` (a cloud engine) is wrapped in
  `stt.fallback.FallbackEngine` with the `CALLPILOT_STT_FALLBACK` engine
  unless that is "none"; only providers with `can_be_fallback=True` (local,
  always available) may be that engine;
* an assistant with `falls_back=True` (a remote model) is wrapped in
  `assist.fallback.FallbackAssistant` with the local assistant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callpilot.server.errors import ConfigError
from callpilot.server.providers import builders

if TYPE_CHECKING:
    from callpilot.server.assist.base import Assistant
    from callpilot.server.assist.tools import ToolBox
    from callpilot.server.config import Settings
    from callpilot.server.directory import Directory
    from callpilot.server.stt.base import STTEngine

__all__ = [
    "ASSISTANTS",
    "ASSISTANT_PROVIDERS",
    "LOCAL_ASSISTANT",
    "NO_FALLBACK",
    "STTS",
    "STT_FALLBACK_PROVIDERS",
    "STT_PROVIDERS",
    "AssistantProvider",
    "Requirement",
    "STTProvider",
    "assistant_provider",
    "problems",
    "stt_fallback_provider",
    "stt_provider",
]

NO_FALLBACK = "none"


@dataclass(frozen=True, slots=True)
class Requirement:
    """A setting (a `Settings` attribute) that must be non-empty, and what to tell the operator."""

    setting: str
    message: str


@dataclass(frozen=True, slots=True)
class STTProvider:
    name: str
    description: str  # as the DEGRADED notice and the CLI help name it
    build: Callable[[Settings], STTEngine]
    requires: tuple[Requirement, ...] = ()
    falls_back: bool = False  # wrapped by the fallback engine (cloud engines)
    can_be_fallback: bool = False  # may be the engine that takes over (local engines)


@dataclass(frozen=True, slots=True)
class AssistantProvider:
    name: str
    description: str
    build: Callable[[Settings, Directory, ToolBox], Assistant]
    requires: tuple[Requirement, ...] = ()
    falls_back: bool = False  # wrapped by FallbackAssistant with the local assistant


_OPENAI_KEY = Requirement(
    "openai_api_key",
    "needs OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server such as vLLM or Ollama)",
)

STTS: tuple[STTProvider, ...] = (
    STTProvider("whisper", "the embedded engine", builders.whisper, can_be_fallback=True),
    STTProvider("null", "the null engine (endpointing only, for benchmarks)", builders.null),
    STTProvider(
        "deepgram",
        "Deepgram",
        builders.deepgram,
        requires=(Requirement("deepgram_api_key", "needs DEEPGRAM_API_KEY"),),
        falls_back=True,
    ),
    STTProvider(
        "openai", "OpenAI transcription", builders.openai_stt, requires=(_OPENAI_KEY,), falls_back=True
    ),
)

ASSISTANTS: tuple[AssistantProvider, ...] = (
    AssistantProvider("local", "the built-in assistant", builders.local),
    AssistantProvider(
        "openai", "the language model", builders.openai_llm, requires=(_OPENAI_KEY,), falls_back=True
    ),
)

STT_PROVIDERS: tuple[str, ...] = tuple(p.name for p in STTS)
"""Valid values of CALLPILOT_STT."""
STT_FALLBACK_PROVIDERS: tuple[str, ...] = (*(p.name for p in STTS if p.can_be_fallback), NO_FALLBACK)
"""Valid values of CALLPILOT_STT_FALLBACK."""
ASSISTANT_PROVIDERS: tuple[str, ...] = tuple(p.name for p in ASSISTANTS)
"""Valid values of CALLPILOT_ASSISTANT."""
LOCAL_ASSISTANT = "local"
"""The assistant every model-backed assistant falls back to."""


def _unknown(variable: str, name: str, choices: Sequence[str]) -> ConfigError:
    return ConfigError(f"{variable} must be one of {', '.join(choices)}, got {name!r}")


def stt_provider(name: str, *, setting: str = "CALLPILOT_STT") -> STTProvider:
    """The STT provider called `name`; a ConfigError naming `setting` and the choices otherwise."""
    for provider in STTS:
        if provider.name == name:
            return provider
    raise _unknown(setting, name, STT_PROVIDERS)


def stt_fallback_provider(name: str) -> STTProvider | None:
    """The engine named by CALLPILOT_STT_FALLBACK (None for "none")."""
    if name == NO_FALLBACK:
        return None
    if name not in STT_FALLBACK_PROVIDERS:
        raise _unknown("CALLPILOT_STT_FALLBACK", name, STT_FALLBACK_PROVIDERS)
    return stt_provider(name)


def assistant_provider(name: str, *, setting: str = "CALLPILOT_ASSISTANT") -> AssistantProvider:
    """The assistant provider called `name`; a ConfigError naming `setting` and the choices otherwise."""
    for provider in ASSISTANTS:
        if provider.name == name:
            return provider
    raise _unknown(setting, name, ASSISTANT_PROVIDERS)


def problems(settings: Settings) -> list[str]:
    """Every provider problem of `settings` (unknown names, missing keys), one line each.

    For `Settings` validation: it reports them all at once, with the others.
    """
    found: list[str] = []
    chosen: list[tuple[str, STTProvider | AssistantProvider]] = []
    for variable, lookup, name in (
        ("CALLPILOT_STT", stt_provider, settings.stt),
        ("CALLPILOT_STT_FALLBACK", stt_fallback_provider, settings.stt_fallback),
        ("CALLPILOT_ASSISTANT", assistant_provider, settings.assistant),
    ):
        try:
            provider = lookup(name)
        except ConfigError as exc:
            found.append(str(exc))
            continue
        if provider is not None and not (
            variable == "CALLPILOT_STT_FALLBACK" and not _fallback_used(settings)
        ):
            chosen.append((variable, provider))
    for variable, provider in chosen:
        for req in provider.requires:
            line = f"{variable}={provider.name} {req.message}"
            if not getattr(settings, req.setting, "") and line not in found:
                found.append(line)
    return found


def _fallback_used(settings: Settings) -> bool:
    return any(p.name == settings.stt and p.falls_back for p in STTS)
