"""Building the configured providers (STT engine, assistant, store).

The only place that maps configuration names to implementations; the
pipeline sees the interfaces alone. A provider that cannot work with the
given configuration (missing key, missing model) fails here, at start-up.
"""

from __future__ import annotations

import os

from callpilot.server.assist.base import Assistant
from callpilot.server.config import Settings
from callpilot.server.directory import Directory
from callpilot.server.errors import ConfigError
from callpilot.server.stt.base import STTEngine


def build_stt(settings: Settings) -> STTEngine:
    if settings.stt in ("whisper", "null"):
        from callpilot.server.stt.vad import VadOptions

        vad = VadOptions(
            threshold=settings.vad_threshold,
            min_silence_ms=settings.vad_silence_ms,
            max_utterance_s=settings.max_utterance_s,
        )
        if settings.stt == "null":
            from callpilot.server.stt.null import NullEngine

            return NullEngine(interim_interval=settings.interim_interval_ms / 1000, vad=vad)
        from callpilot.server.stt.model import resolve_model
        from callpilot.server.stt.whisper import WhisperEngine

        model_dir = resolve_model(settings.whisper_model, settings.cache_dir / "models")
        return WhisperEngine(
            model_dir,
            cpu_threads=settings.whisper_threads,
            workers=settings.whisper_workers,
            interim_interval=settings.interim_interval_ms / 1000,
            vad=vad,
        )
    raise ConfigError(f"CALLPILOT_STT={settings.stt!r} is not available in this build")


def build_assistant(settings: Settings, directory: Directory) -> Assistant:
    from callpilot.server.assist.local import LocalAssistant
    from callpilot.server.assist.tools import ToolBox

    toolbox = ToolBox(directory)
    local = LocalAssistant(directory, toolbox)
    if settings.assistant == "local":
        return local
    if not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "CALLPILOT_ASSISTANT=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server)"
        )
    raise ConfigError(f"CALLPILOT_ASSISTANT={settings.assistant!r} is not available in this build")
