"""Deprecated: the doctor moved to `striate.train.doctor`; this name goes in the next release."""

import warnings

from striate.train.doctor import (
    CHECKS,
    STATUSES,
    Check,
    DoctorReport,
    doctor,
    measure_errors,
    plot_curves,
)

warnings.warn(
    "striate.train.diagnostics has moved to striate.train.doctor; the old name goes in the next "
    "release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["CHECKS", "STATUSES", "Check", "DoctorReport", "doctor", "measure_errors", "plot_curves"]
