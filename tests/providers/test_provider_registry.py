"""The provider registry: names, requirements, construction with fallbacks, and the CLI's use of it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from callpilot.server import cli
from callpilot.server.assist.fallback import FallbackAssistant
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.assist.openai_llm import OpenAIAssistant
from callpilot.server.assist.tools import ToolBox
from callpilot.server.config import Settings
from callpilot.server.errors import ConfigError
from callpilot.server.providers import build_assistant, build_stt
from callpilot.server.providers.registry import (
    ASSISTANT_PROVIDERS,
    STT_FALLBACK_PROVIDERS,
    STT_PROVIDERS,
    assistant_provider,
    problems,
    stt_provider,
)
from callpilot.server.stt.deepgram import DeepgramEngine
from callpilot.server.stt.fallback import FallbackEngine
from callpilot.server.stt.null import NullEngine
from callpilot.server.stt.openai_stt import OpenAITranscriptionEngine
from callpilot.server.stt.whisper import WhisperEngine
from fakes.directory import FakeDirectory


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A directory that passes for a CTranslate2 model (engines load it only at warm-up)."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.bin").write_bytes(b"")
    (d / "config.json").write_text("{}")
    return d


def settings(model_dir: Path, **kw: object) -> Settings:
    return Settings(whisper_model=str(model_dir), cache_dir=model_dir.parent, **kw)  # type: ignore[arg-type]


def test_the_names_come_from_the_one_table() -> None:
    assert STT_PROVIDERS == ("whisper", "null", "deepgram", "openai")
    assert ASSISTANT_PROVIDERS == ("local", "openai")
    assert STT_FALLBACK_PROVIDERS == ("whisper", "none")


def test_the_names_import_without_sdks_or_models() -> None:
    code = (
        "import sys; from callpilot.server.providers.registry import STT_PROVIDERS; "
        "heavy = [m for m in ('numpy', 'openai', 'deepgram', 'onnxruntime', 'faster_whisper') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError, match=r"CALLPILOT_STT must be one of whisper, null, deepgram, openai, got 'watson'"
    ):
        stt_provider("watson")
    with pytest.raises(ConfigError, match=r"--assistant must be one of local, openai, got 'gpt'"):
        assistant_provider("gpt", setting="--assistant")


def test_problems_name_every_missing_key_and_unknown_name(model_dir: Path) -> None:
    found = problems(settings(model_dir, stt="deepgram", assistant="openai", stt_fallback="vosk"))
    assert found == [
        "CALLPILOT_STT_FALLBACK must be one of whisper, none, got 'vosk'",
        "CALLPILOT_STT=deepgram needs DEEPGRAM_API_KEY",
        "CALLPILOT_ASSISTANT=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for an "
        "OpenAI-compatible server such as vLLM or Ollama)",
    ]
    assert problems(settings(model_dir, stt="deepgram", deepgram_api_key="k")) == []


def test_build_stt_rejects_an_unknown_name_instead_of_guessing(model_dir: Path) -> None:
    # Settings built without their own validation: the registry still refuses (no silent default).
    with pytest.raises(ConfigError, match="CALLPILOT_STT must be one of"):
        build_stt(settings(model_dir, stt="watson"))
    with pytest.raises(ConfigError, match="CALLPILOT_ASSISTANT must be one of"):
        build_assistant(settings(model_dir, assistant="gpt"), FakeDirectory(), ToolBox(FakeDirectory()))


async def test_cloud_engines_come_wrapped_with_the_fallback(model_dir: Path) -> None:
    engine = build_stt(settings(model_dir, stt="deepgram", deepgram_api_key="k"))
    assert isinstance(engine, FallbackEngine)
    assert isinstance(engine.primary, DeepgramEngine) and isinstance(engine.fallback, WhisperEngine)
    assert engine.fallback_name == "the embedded engine"
    await engine.aclose()

    engine = build_stt(settings(model_dir, stt="openai", openai_api_key="k"))
    assert isinstance(engine, FallbackEngine) and isinstance(engine.primary, OpenAITranscriptionEngine)
    await engine.aclose()

    engine = build_stt(settings(model_dir, stt="deepgram", deepgram_api_key="k", stt_fallback="none"))
    assert isinstance(engine, DeepgramEngine)
    await engine.aclose()


async def test_local_engines_are_not_wrapped(model_dir: Path) -> None:
    whisper = build_stt(settings(model_dir, stt="whisper"))
    assert isinstance(whisper, WhisperEngine)
    await whisper.aclose()
    assert isinstance(build_stt(settings(model_dir, stt="null")), NullEngine)


async def test_a_model_assistant_comes_wrapped_with_the_local_one(model_dir: Path) -> None:
    directory = FakeDirectory()
    toolbox = ToolBox(directory)
    assistant = build_assistant(
        settings(model_dir, assistant="openai", openai_api_key="k"), directory, toolbox
    )
    assert isinstance(assistant, FallbackAssistant)
    assert isinstance(assistant.primary, OpenAIAssistant) and isinstance(assistant.fallback, LocalAssistant)
    await assistant.aclose()
    assert isinstance(build_assistant(settings(model_dir), directory, toolbox), LocalAssistant)


def test_the_cli_checks_provider_options_against_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(stt="watson", assistant=None, host=None, port=None, database_url=None)
    assert cli.serve(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == "callpilot: --stt must be one of whisper, null, deepgram, openai, got 'watson'"
