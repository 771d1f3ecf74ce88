"""User-facing errors.

Anything the user can fix (a bad checkpoint, a missing file, an unknown hook) raises
:class:`AudioSAEBenchError`; the CLI prints its message as one line and exits non-zero, with no
traceback. Programming errors keep their tracebacks.
"""

from __future__ import annotations


class AudioSAEBenchError(Exception):
    """An error caused by the user's input, reported as one line."""


class CheckpointError(AudioSAEBenchError):
    """A checkpoint is missing, malformed, unsafe or inconsistent."""


class HookError(AudioSAEBenchError):
    """A hook point cannot be resolved on the model."""


class DataError(AudioSAEBenchError):
    """Audio, a manifest or a dataset layout is missing or corrupt."""


class TaskError(AudioSAEBenchError):
    """A task cannot be found, registered or run with the given input."""


class ResultError(AudioSAEBenchError):
    """A result does not conform to the schema."""


class SubmissionError(AudioSAEBenchError):
    """A submission folder or its metadata is invalid or unsafe."""
