"""The project's own exceptions.

Every error a user can trigger with bad input (a corrupt file, a wrong shape, a
bad config) is raised as one of these, with a message that names the file, key
or shape at fault, so callers can catch ``ChorusError`` and nothing else.
"""


class ChorusError(Exception):
    """Base class of every error Chorus raises on purpose."""


class ConfigError(ChorusError, ValueError):
    """A configuration is invalid: unknown key, wrong type, missing file."""


class DataError(ChorusError, ValueError):
    """A data file or sample is missing, corrupt or malformed."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are not under the data root (the message says how to get them)."""


class TrainingError(ChorusError, RuntimeError):
    """Training cannot go on, e.g. a non-finite loss under the ``stop`` policy."""
