"""Real recorded speech for the speech benchmark and tests, and how it is scored.

Debian's `pocketsphinx-testdata` (installed by `scripts/bootstrap --test`)
ships LibriVox read speech with its transcriptions and a TIDIGITS recording
of a spoken digit string. They are human voices, not synthesis, which is
what the streaming-vs-offline comparison needs: synthesised speech is too
clean to show what the live path loses.

Scoring normalises both sides the same way (lower case, no punctuation,
"mr" spelt out, spoken numbers as digits via `context.numbers`), so WER
counts words the recogniser got wrong, not formatting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DATA = Path("/usr/share/pocketsphinx/test/data")
INSTALL_HINT = "apt-get install pocketsphinx-testdata (or scripts/bootstrap --test)"


@dataclass(frozen=True)
class Recording:
    name: str
    audio: npt.NDArray[np.float32]  # 16 kHz mono float32
    reference: str
    digits: str = ""  # for spoken digit strings: the digits said


def available() -> bool:
    return (DATA / "librivox" / "transcription").is_file()


def _read_wav(path: Path) -> npt.NDArray[np.float32]:
    import wave

    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768


def _read_raw(path: Path) -> npt.NDArray[np.float32]:
    """Sphinx test .raw files: headerless 16 kHz 16-bit little-endian mono."""
    return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768


def librivox() -> list[Recording]:
    """The five LibriVox sentences (Sense and Sensibility) with their reference transcripts."""
    folder = DATA / "librivox"
    out = []
    for line in (folder / "transcription").read_text().splitlines():
        m = re.match(r"\s*<s>(.*)</s>\s*\((.+)\)\s*$", line)
        if m:
            text, name = m.group(1).strip(), m.group(2).strip()
            out.append(Recording(name, _read_wav(folder / f"{name}.wav"), text))
    return out


def tidigits() -> list[Recording]:
    """The TIDIGITS digit string "two nine three four zero" (a man's voice)."""
    reference = "two nine three four zero"
    return [Recording("tidigits-2934z", _read_raw(DATA / "tidigits" / "dhd.2934z.raw"), reference, "29340")]


def all_recordings() -> list[Recording]:
    return librivox() + tidigits()


_NUMBER_WORDS = re.compile(r"\d")


def normalise(text: str) -> list[str]:
    """Words for WER: lower case, numbers as digits, punctuation and hyphens gone, 'mr' spelt out."""
    from callpilot.server.context.numbers import normalise_numbers

    text = normalise_numbers(text.lower())
    text = re.sub(r"\bmr\b\.?", "mister", text)
    text = re.sub(r"\bmrs\b\.?", "missus", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    return text.split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (substitutions + deletions + insertions over reference words), normalised."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return float(bool(hyp))
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def digits_of(text: str) -> str:
    """Every digit the text says, in order ("two nine, 3 4 oh" -> "29340")."""
    from callpilot.server.context.numbers import normalise_numbers

    return "".join(_NUMBER_WORDS.findall(normalise_numbers(text)))
