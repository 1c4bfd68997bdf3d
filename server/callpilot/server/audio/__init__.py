"""Audio ingestion: wire encodings to per-speaker 16 kHz mono float32 (see `decoder`)."""

from callpilot.server.audio.decoder import AudioDecoder, g711_table

__all__ = ["AudioDecoder", "g711_table"]
