"""The customer context handed to the recogniser (name and order numbers, nothing else); the device check."""

from __future__ import annotations

from pathlib import Path

import pytest
from callpilot.server.stt.base import STTError
from callpilot.server.stt.hints import MAX_ORDER_NUMBERS, speech_context
from callpilot.server.stt.null import NullEngine
from callpilot.server.stt.streaming import Hypothesis
from callpilot.server.stt.whisper import WhisperEngine
from callpilot.v1 import directory_pb2


def test_name_and_recent_order_numbers_only() -> None:
    customer = directory_pb2.Customer(
        customer_id="C-1", name="  Siobhan   Kowalczyk ", email="s@example.com", phone="+15551234567"
    )
    orders = [
        directory_pb2.Order(order_number=n) for n in ("48213", "48213", "", "50917", "1", "2", "3", "4")
    ]
    context = speech_context(customer, orders)
    assert context.names == ("Siobhan Kowalczyk",)
    assert context.numbers == ("48213", "50917", "1", "2", "3")[:MAX_ORDER_NUMBERS]
    flat = " ".join(context.names + context.numbers)
    assert "example.com" not in flat and "5551234567" not in flat


def test_engines_without_hints_accept_the_update() -> None:
    stream = NullEngine().stream(language="en")
    stream.update_context(names=["Siobhan Kowalczyk"], numbers=["48213"])  # the base class no-op


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(STTError, match="no CUDA device"):
        WhisperEngine(tmp_path, device="cuda")
    with pytest.raises(STTError, match="use 'cpu' or 'cuda'"):
        WhisperEngine(tmp_path, device="tpu")
    assert WhisperEngine(tmp_path).device == "cpu"  # the default needs nothing


def test_context_carry_over_resets_on_a_hallucination(tmp_path: Path) -> None:
    stream = WhisperEngine(tmp_path).stream(language="en", phrase_hints=["refund"])
    assert stream.prompt is None and stream.hotwords == "refund"
    stream._on_final(Hypothesis("I ordered headphones.", 0.9))
    stream._on_final(Hypothesis("They arrived broken.", 0.9))
    assert stream.prompt == "I ordered headphones. They arrived broken."
    stream._on_final(Hypothesis("", 0.0, suspect=True))  # Whisper's signals flagged the last decode
    assert stream.prompt is None
    stream._on_final(Hypothesis("x " * 400, 0.9))
    assert stream.prompt is not None and len(stream.prompt) <= 240
    # The customer's own words go first, so the hotwords cap never cuts them.
    stream.update_context(names=["Siobhan Kowalczyk"], numbers=["48213"])
    assert stream.hotwords == "Siobhan Kowalczyk, 48213, refund"
    stream.update_context(names=[], numbers=[])  # each update replaces the last
    assert stream.hotwords == "refund"
