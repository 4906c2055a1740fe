"""Errors that streamcam raises on purpose; the CLI maps them to exit codes."""


class StreamcamError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code = 1


class InputError(StreamcamError):
    """An input path or URL that cannot be read, decoded or understood."""

    exit_code = 2


class ModelError(StreamcamError):
    """A model that cannot be loaded, converted or explained."""

    exit_code = 2


class UsageError(StreamcamError):
    """An option value that makes no sense (unknown class name, bad time, ...)."""

    exit_code = 2


class OutputError(StreamcamError):
    """An output file that could not be finished; the others were, and `summary` says what was kept."""

    exit_code = 1

    def __init__(self, message: str, summary=None):
        super().__init__(message)
        self.summary = summary
