"""The doctor's thresholds: the table and their calibration are in `striate.train.doctor`'s
docstring."""

from __future__ import annotations

INITIAL_LOSS_PASS, INITIAL_LOSS_FAIL = 0.2, 0.5


OVERFIT_PASS, OVERFIT_WARN = 0.95, 0.6


GRAD_PASS, GRAD_FAIL = 1e-4, 1e-2


RATIO_LOW, RATIO_HIGH, RATIO_FAIL, RATIO_LAYER_FAIL, RATIO_STUCK = 3e-4, 2e-2, 0.1, 0.5, 1e-2


RATIO_BAND = f"runs that train well start between {RATIO_LOW:g} and {RATIO_HIGH:g}"


DEAD_WARN, DEAD_FAIL = 0.25, 0.5


SAT_WARN, SAT_FAIL = 0.1, 0.5


SCALE_WARN = 1e-2


LR_FLAT, LR_RISE, LR_SPIKE, LR_CONVERGED, LR_UNTRAINED, LR_MOVED = 0.01, 1.5, 2.0, 0.1, 0.5, 0.5


GAP_OVERFIT, GAP_SMALL, UNDERFIT_ACC = 0.10, 0.05, 0.80
