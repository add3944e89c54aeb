"""User-facing errors: each says what was wrong and what to do; the CLI prints the message alone."""


class StriateError(Exception):
    """Base class for mistakes a user can fix (bad input, missing files, wrong options)."""


class DataError(StriateError):
    """A dataset file or folder is missing, malformed, truncated or inconsistent."""


class DownloadError(StriateError):
    """A dataset could not be fetched or failed its checksum."""


class InputError(StriateError, ValueError):
    """Arrays given to an estimator or function are unusable (shape, NaN/inf, too few samples).

    Also a ValueError, as scikit-learn's estimator contract expects.
    """


class ConfigError(StriateError, ValueError):
    """A training option is unknown or out of range (model, optimiser or schedule name, lr < 0)."""


class StriateWarning(UserWarning):
    """Something was skipped or adjusted; the run goes on. The CLI prints it as one
    ``warning: …`` line (`striate.progress.warnings_as_lines`)."""
