"""A module-level kit for the CLI tests (``--app tests.cli_app:kit``)."""

from taskkit import Kit, MemoryBackend

from .handlers import RecordingHandler

kit = Kit(MemoryBackend(), RecordingHandler())
