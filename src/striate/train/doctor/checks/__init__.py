"""The doctor's checks, one module per group: `initial` (initial loss, regularisation,
overfitting a few examples), `gradients` (gradcheck), `updates` (update/weight ratios, the
learning rate's symptoms), `activations` (dead ReLUs, saturation, activation scale) and
`fit_gap`; what they share: `context` (`Ctx`, the short steps and batches), `thresholds`, and
`registry` (`DOCTOR_CHECKS`, filled by the `@check` decorator when these modules are imported).
`error_rates` measures a trained model's errors for the error analysis.
"""

from striate.train.doctor.checks import activations, batchnorm, fit_gap, gradients, initial, updates
from striate.train.doctor.checks.context import Ctx
from striate.train.doctor.checks.error_rates import measure_errors
from striate.train.doctor.checks.registry import DOCTOR_CHECKS, check

__all__ = [
    "DOCTOR_CHECKS",
    "Ctx",
    "activations",
    "batchnorm",
    "check",
    "fit_gap",
    "gradients",
    "initial",
    "measure_errors",
    "updates",
]
