"""The contract: buf lint and breaking, and generated code matching it."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"


def _env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)  # type: ignore[attr-defined]
    return {**os.environ, "PATH": f"{venv_bin}:{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}


def test_buf_lint() -> None:
    result = subprocess.run(
        [str(BUF), "lint"], cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("ref", ["main", "HEAD~1"])
def test_buf_breaking(ref: str) -> None:
    """v1 never breaks: against main (for work in progress) and the previous commit (for main itself)."""
    if _git("rev-parse", "--verify", "--quiet", ref).returncode != 0:
        pytest.skip(f"no {ref} in this clone")
    if _git("cat-file", "-e", f"{ref}:proto/callpilot/v1").returncode != 0:
        pytest.skip(f"{ref} has no contract yet")
    against = f".git#ref={ref},subdir=proto" if ref != "main" else ".git#branch=main,subdir=proto"
    result = subprocess.run(
        [str(BUF), "breaking", "proto", "--against", against],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _generated_files(base: Path) -> set[Path]:
    roots = [base / "clients/python/callpilot/v1", base / "clients/typescript/src/gen"]
    found: set[Path] = set()
    for root in roots:
        if root.exists():
            found |= {
                p.relative_to(base)
                for p in root.rglob("*")
                if (p.is_file() and "_pb" in p.name) or p.suffix == ".ts"
            }
    return {p for p in found if "__pycache__" not in p.parts}


def test_generated_code_is_current(tmp_path: Path) -> None:
    """Regenerate from proto/ into a scratch copy and compare with what is committed."""
    for name in ("buf.yaml", "buf.gen.yaml", "proto", "tools"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    for extra in ROOT.glob("buf.gen.*.yaml"):
        shutil.copy(extra, tmp_path / extra.name)
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    (tmp_path / "clients/typescript").mkdir(parents=True)
    if (ROOT / "clients/typescript/node_modules").exists():
        (tmp_path / "clients/typescript/node_modules").symlink_to(ROOT / "clients/typescript/node_modules")
    env = _env()
    for template in ["buf.gen.yaml", *sorted(p.name for p in ROOT.glob("buf.gen.*.yaml"))]:
        result = subprocess.run(
            [str(BUF), "generate", "--template", template],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    fresh, committed = _generated_files(tmp_path), _generated_files(ROOT)
    assert fresh, "nothing was generated"
    assert fresh == committed, (
        f"missing: {sorted(map(str, fresh - committed))}; stale: {sorted(map(str, committed - fresh))}"
    )
    different = [str(p) for p in sorted(fresh) if not filecmp.cmp(tmp_path / p, ROOT / p, shallow=False)]
    assert not different, f"generated code is out of date, run `make gen`: {different}"
