"""Server and gateway settings: variables, defaults, CLI overrides, provider names, start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from callpilot.gateway.config import GatewayConfigError, GatewaySettings
from callpilot.server.config import Settings
from callpilot.server.errors import ConfigError


def test_server_defaults_without_any_variable() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.stt, s.assistant, s.whisper_model) == (
        "127.0.0.1",
        50051,
        "whisper",
        "local",
        "base",
    )
    assert s.seed_demo is True and s.log_json is False and s.max_utterance_s == 15.0
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")


def test_server_reads_variables_and_flags_override_them() -> None:
    env = {
        "CALLPILOT_PORT": "6000",
        "CALLPILOT_STT": "null",
        "CALLPILOT_SEED_DEMO": "off",
        "CALLPILOT_VAD_THRESHOLD": "0.7",
        "CALLPILOT_DATA_DIR": "~/cp",
        "CALLPILOT_HOST": "",  # empty counts as unset
    }
    s = Settings.from_env(env, port=7000, stt=None)
    assert s.port == 7000  # the flag wins
    assert s.stt == "null"  # a None flag leaves the variable
    assert s.seed_demo is False and s.vad_threshold == 0.7 and s.host == "127.0.0.1"
    assert s.data_dir == Path("~/cp").expanduser()


def test_provider_variables_keep_their_conventional_names() -> None:
    s = Settings.from_env(
        {"CALLPILOT_STT": "deepgram", "DEEPGRAM_API_KEY": "dg", "OPENAI_BASE_URL": "http://x/v1"}
    )
    assert s.deepgram_api_key == "dg" and s.openai_base_url == "http://x/v1"
    both = Settings.from_env({"DEEPGRAM_API_KEY": "conventional", "CALLPILOT_DEEPGRAM_API_KEY": "prefixed"})
    assert both.deepgram_api_key == "conventional"
    assert "dg" not in repr(s)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CALLPILOT_PORT": "abc"}, "CALLPILOT_PORT='abc' is not a valid whole number"),
        ({"CALLPILOT_LOG_JSON": "maybe"}, "CALLPILOT_LOG_JSON='maybe' is not a valid boolean"),
        ({"CALLPILOT_STT": "watson"}, "CALLPILOT_STT must be one of"),
        ({"CALLPILOT_STT": "deepgram"}, "CALLPILOT_STT=deepgram needs DEEPGRAM_API_KEY"),
        ({"CALLPILOT_INTERIM_INTERVAL_MS": "5"}, "CALLPILOT_INTERIM_INTERVAL_MS must be 100..10000"),
        ({"CALLPILOT_WHISPER_BEAM_SIZE": "0"}, "CALLPILOT_WHISPER_BEAM_SIZE must be 1..10"),
    ],
)
def test_server_bad_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert expected in str(err.value)
    assert "\n" not in str(err.value) and "pydantic" not in str(err.value).lower()


def test_gateway_reads_its_variables() -> None:
    env = {
        "CALLPILOT_GATEWAY_PORT": "9000",
        "CALLPILOT_PORT": "1",  # the server's, not the gateway's
        "CALLPILOT_ALLOWED_ORIGINS": "https://desk.example.com/, http://crm:81",
        "CALLPILOT_STUN_URLS": "stun:a:3478,stun:b:3478",
        "CALLPILOT_ICE_LOOPBACK": "1",
    }
    g = GatewaySettings.from_env(env, host="0.0.0.0", server=None)
    assert (g.host, g.port, g.server) == ("0.0.0.0", 9000, "127.0.0.1:50051")
    assert g.allowed_origins == ("https://desk.example.com", "http://crm:81")
    assert g.stun_urls == ("stun:a:3478", "stun:b:3478") and g.ice_loopback is True
    assert GatewaySettings(stun_urls=("stun:c",)).stun_urls == ("stun:c",)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CALLPILOT_GATEWAY_PORT": "x"}, "CALLPILOT_GATEWAY_PORT='x' is not a whole number"),
        ({"CALLPILOT_TURN_URLS": "turn:t"}, "CALLPILOT_TURN_SECRET is not"),
        ({"CALLPILOT_ALLOWED_ORIGINS": "desk.example.com"}, "must look like https://host[:port]"),
        ({"CALLPILOT_TURN_TTL_S": "10"}, "CALLPILOT_TURN_TTL_S must be at least 60"),
    ],
)
def test_gateway_bad_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(GatewayConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        GatewaySettings.from_env(env)


def test_constructors_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only `from_env` reads variables; a constructor is its defaults plus its arguments."""
    monkeypatch.setenv("CALLPILOT_STT", "null")
    monkeypatch.setenv("CALLPILOT_STUN_URLS", "stun:x")
    assert Settings().stt == "whisper" and Settings.from_env().stt == "null"
    assert GatewaySettings().stun_urls == () and GatewaySettings.from_env().stun_urls == ("stun:x",)


def test_whisper_decoding_settings_reach_the_engine() -> None:
    from callpilot.server.providers import builders

    default = Settings.from_env({})
    assert (default.whisper_workers, default.whisper_threads, default.whisper_beam_size) == (2, 1, 5)
    engine = builders.whisper(
        Settings.from_env({"CALLPILOT_WHISPER_BEAM_SIZE": "1", "CALLPILOT_WHISPER_WORKERS": "3"})
    )
    assert (engine.beam_size, engine.workers, engine.cpu_threads) == (1, 3, 1)  # type: ignore[attr-defined]
