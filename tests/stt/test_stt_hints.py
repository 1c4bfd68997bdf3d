"""The customer context handed to the recogniser (name and order numbers, nothing else); the device check."""

from __future__ import annotations

from pathlib import Path

import pytest
from callpilot.server.stt.base import STTError
from callpilot.server.stt.hints import MAX_ORDER_NUMBERS, speech_context
from callpilot.server.stt.null import NullEngine
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
