"""Building the configured providers (STT engines, assistant).

The only place that maps configuration names to implementations; the
pipeline sees the interfaces alone. A provider that cannot work with the
given configuration (missing key, missing model) fails here, at start-up.
"""

from __future__ import annotations

from callpilot.server.assist.base import Assistant
from callpilot.server.assist.tools import ToolBox
from callpilot.server.config import Settings
from callpilot.server.directory import Directory
from callpilot.server.stt.base import STTEngine
from callpilot.server.stt.vad import VadOptions


def _vad(settings: Settings) -> VadOptions:
    return VadOptions(
        threshold=settings.vad_threshold,
        min_silence_ms=settings.vad_silence_ms,
        max_utterance_s=settings.max_utterance_s,
    )


def _whisper(settings: Settings) -> STTEngine:
    from callpilot.server.stt.model import resolve_model
    from callpilot.server.stt.whisper import WhisperEngine

    model_dir = resolve_model(settings.whisper_model, settings.cache_dir / "models")
    return WhisperEngine(
        model_dir,
        cpu_threads=settings.whisper_threads,
        workers=settings.whisper_workers,
        interim_interval=settings.interim_interval_ms / 1000,
        vad=_vad(settings),
    )


def build_stt(settings: Settings) -> STTEngine:
    if settings.stt == "whisper":
        return _whisper(settings)
    if settings.stt == "null":
        from callpilot.server.stt.null import NullEngine

        return NullEngine(interim_interval=settings.interim_interval_ms / 1000, vad=_vad(settings))
    if settings.stt == "deepgram":
        from callpilot.server.stt.deepgram import DeepgramEngine

        return DeepgramEngine(
            settings.deepgram_api_key,
            model=settings.deepgram_model,
            base_url=settings.deepgram_base_url or None,
            endpointing_ms=settings.deepgram_endpointing_ms,
        )
    from callpilot.server.stt.openai_stt import OpenAITranscriptionEngine

    return OpenAITranscriptionEngine(
        settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        model=settings.openai_stt_model,
        vad=_vad(settings),
    )


def build_stt_fallback(settings: Settings) -> STTEngine | None:
    """The engine that takes over a speaker when a cloud engine fails for good."""
    if settings.stt in ("whisper", "null") or settings.stt_fallback == "none":
        return None
    return _whisper(settings)


def build_assistant(settings: Settings, directory: Directory, toolbox: ToolBox) -> Assistant:
    """The configured assistant; a language model always has the local engine as its fallback."""
    from callpilot.server.assist.local import LocalAssistant

    local = LocalAssistant(directory, toolbox)
    if settings.assistant == "local":
        return local
    from callpilot.server.assist.openai_llm import OpenAIAssistant

    return OpenAIAssistant(
        settings.openai_api_key,
        settings.openai_base_url or None,
        settings.openai_model,
        toolbox,
        fallback=local,
        timeout=settings.llm_timeout_s,
    )
