"""The project's own exception and warning types.

Every error a user can cause (bad config, bad data, a run dir in the way) is one of these, with a
one-line message that names the key, file or shape at fault. The CLI prints them without a traceback,
and warnings as one line each (``entry.setup``).
"""


class StrfRunnerError(Exception):
    """Base class of all errors raised deliberately by strf-runner."""


class ConfigError(StrfRunnerError, ValueError):
    """An invalid configuration value or combination (names the config key)."""


class DatasetError(StrfRunnerError, ValueError):
    """A dataset file is missing, corrupt or inconsistent (names the file and the field)."""


class ShapeError(StrfRunnerError, ValueError):
    """A tensor handed to a public function has the wrong shape (names the argument and shape)."""


class ResultsError(StrfRunnerError):
    """A run directory cannot be written (for example it already holds a finished run)."""


class TrainingError(StrfRunnerError):
    """Training cannot go on (for example the loss became NaN)."""


class AudioError(StrfRunnerError, ValueError):
    """A sound file cannot be read or used as model input (names the file)."""


class StrfRunnerWarning(UserWarning):
    """Something a user should know that does not stop the work (a tiny split, data without repeats,
    a sound missing the model's upper bands). The CLIs print it as one line: ``<prog>: warning: ...``."""
