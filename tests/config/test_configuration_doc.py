"""docs/configuration.md is what tools/configdoc.py generates from the settings classes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _configdoc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("configdoc", ROOT / "tools" / "configdoc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_is_current() -> None:
    expected = _configdoc().render()
    current = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert current == expected, "docs/configuration.md is stale: run `make configdoc`"


def test_every_setting_is_documented() -> None:
    from callpilot.gateway.config import GatewaySettings
    from callpilot.server.config import Settings

    text = _configdoc().render()
    for name in Settings.model_fields:
        assert Settings.model_fields[name].description, name
    for name in GatewaySettings.model_fields:
        assert GatewaySettings.model_fields[name].description, name
    assert "`CALLPILOT_WHISPER_MODEL`" in text and "`CALLPILOT_GATEWAY_PORT`" in text
    assert "`DEEPGRAM_API_KEY`" in text


def test_check_mode_passes_on_the_committed_file() -> None:
    """`--check` (what CI can run) agrees with the comparison above."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "configdoc.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configdoc = _configdoc()
    stale = tmp_path / "configuration.md"
    stale.write_text(configdoc.render().replace("`50051`", "`50052`"), encoding="utf-8")
    monkeypatch.setattr(configdoc, "TARGET", stale)
    monkeypatch.setattr(configdoc, "ROOT", tmp_path)
    assert configdoc.main(["--check"]) == 1
    assert configdoc.main([]) == 0 and configdoc.main(["--check"]) == 0  # regenerated
