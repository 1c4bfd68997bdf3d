"""Assistants behind one interface (see `base`)."""
