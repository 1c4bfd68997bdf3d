"""The SDK installs and imports without the server's heavy dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = [
    "numpy",
    "sqlalchemy",
    "faster_whisper",
    "ctranslate2",
    "onnxruntime",
    "soxr",
    "aiortc",
    "av",
    "asyncpg",
    "aiosqlite",
    "alembic",
    "callpilot.server",
    "callpilot.gateway",
]


def test_sdk_imports_without_server_dependencies() -> None:
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {BLOCKED!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError("blocked for this test: " + name)
                return None
        sys.meta_path.insert(0, Block())
        import callpilot.client, callpilot.cli.main, callpilot.v1.assist_service_pb2_grpc
        from callpilot.client import AsyncCallpilot, WavFile
        parser = callpilot.cli.main.build_parser()
        code = callpilot.cli.main.main(["serve"])
        assert code == 2, code
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "pip install callpilot-server" in result.stderr


def test_sdk_distribution_declares_only_light_dependencies() -> None:
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "clients/python/pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"]).lower()
    for heavy in ("numpy", "sqlalchemy", "faster-whisper", "aiortc", "soxr"):
        assert heavy not in deps
