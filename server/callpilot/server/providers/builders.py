"""How each provider of the registry is built from `Settings`.

One function per provider, named as the registry refers to it. Each imports
its implementation inside, so importing this module (and the registry) costs
nothing; a provider that cannot work with the given configuration (missing
key, missing model) fails when built, at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callpilot.server.assist.base import Assistant
    from callpilot.server.assist.tools import ToolBox
    from callpilot.server.config import Settings
    from callpilot.server.directory import Directory
    from callpilot.server.stt.base import STTEngine
    from callpilot.server.stt.vad import VadOptions


def _vad(settings: Settings) -> VadOptions:
    from callpilot.server.stt.vad import VadOptions

    return VadOptions(
        threshold=settings.vad_threshold,
        min_silence_ms=settings.vad_silence_ms,
        max_utterance_s=settings.max_utterance_s,
    )


def whisper(settings: Settings) -> STTEngine:
    from callpilot.server.stt.model import resolve_model
    from callpilot.server.stt.whisper import WhisperEngine

    model_dir = resolve_model(settings.whisper_model, settings.cache_dir / "models")
    return WhisperEngine(
        model_dir,
        cpu_threads=settings.whisper_threads,
        workers=settings.whisper_workers,
        beam_size=settings.whisper_beam_size,
        interim_interval=settings.interim_interval_ms / 1000,
        vad=_vad(settings),
        device=settings.whisper_device,
    )


def null(settings: Settings) -> STTEngine:
    from callpilot.server.stt.null import NullEngine

    return NullEngine(interim_interval=settings.interim_interval_ms / 1000, vad=_vad(settings))


def deepgram(settings: Settings) -> STTEngine:
    from callpilot.server.stt.deepgram import DeepgramEngine

    return DeepgramEngine(
        settings.deepgram_api_key,
        model=settings.deepgram_model,
        base_url=settings.deepgram_base_url or None,
        endpointing_ms=settings.deepgram_endpointing_ms,
    )


def openai_stt(settings: Settings) -> STTEngine:
    from callpilot.server.stt.openai_stt import OpenAITranscriptionEngine

    return OpenAITranscriptionEngine(
        settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        model=settings.openai_stt_model,
        vad=_vad(settings),
    )


def local(settings: Settings, directory: Directory, toolbox: ToolBox) -> Assistant:
    from callpilot.server.assist.local import LocalAssistant

    return LocalAssistant(directory, toolbox)


def openai_llm(settings: Settings, directory: Directory, toolbox: ToolBox) -> Assistant:
    from callpilot.server.assist.openai_llm import OpenAIAssistant

    return OpenAIAssistant(
        settings.openai_api_key,
        settings.openai_base_url or None,
        settings.openai_model,
        toolbox,
        timeout=settings.llm_timeout_s,
    )
