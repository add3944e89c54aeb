"""Training diagnostics: the lectures' sanity checks and babysitting, run on any model and data.

    report = doctor(models.create("convnet-small", 10, (1, 8, 8)), load_dataset("digits"))
    print(report.table_text())          # or rich: console.print(report.table())
    report.failed                       # True when a check failed
    report.figures()                    # {"doctor_activations.png": Figure, ...}

Each check is a small function on a copy of the model (the model passed in is never changed) and
returns a `Check` with a status, a value and one line of advice. The checks and their thresholds
(CS231n lecture 6, "babysitting the learning process"; CS231n notes "Neural Networks Part 3"):

==================  ===============================================================================
initial_loss        loss of the untrained model against ln C (softmax, scores near 0: every class
                    p = 1/C) or C - 1 (hinge, margin 1). pass within 20 %, fail beyond 50 % (or
                    non-finite), warn in between. Skipped for trained weights (``pretrained``).
regularization      the loss rises when the L2 penalty ½·λ·Σ‖W‖² over the weights the optimiser
                    decays is switched on ("loss went up, good"). warn when nothing is decayed.
overfit             20 examples, regularisation off, the given optimiser and lr, up to 200
                    full-batch steps: training accuracy pass ≥ 95 %, warn ≥ 60 %, else fail.
gradcheck           float64 copy, dropout off, 4 jittered examples: analytic gradients of the input
                    and of a few entries of several parameters against centred differences
                    (`striate.gradcheck`). relative error ≤ 1e-4 pass; > 1e-2 at more than one
                    entry fail (one entry may be a ReLU/max kink: warn); otherwise warn.
update_ratio        ‖Δw‖/‖w‖ per weight tensor over the first 5 steps of the run's schedule (1cycle
                    starts at lr/10), the median of the steps; the verdict is on the typical
                    (median) layer, as the lectures' "about 1e-3" is for the typical weight: pass
                    within 3e-4…2e-2, warn outside, fail above 0.1 (or one layer above 0.5, or
                    non-finite). One layer 100× below the typical warns (little gradient reaches
                    it). A small ratio with the loss near 0 (below 0.1·ln C) is a converged model,
                    not a low lr: pass. The band is calibrated below.
dead_relus          fraction of ReLU units (channels/neurons) that output 0 for the whole batch:
                    warn > 25 %, fail > 50 % in some layer.
saturation          fraction of tanh/sigmoid outputs with |tanh| > 0.99 (sigmoid < 0.01 or > 0.99):
                    warn > 10 %, fail > 50 % in some layer.
activation_scale    std of the watched layers' outputs: fail when one is 0 or non-finite, warn when
                    the smallest is below 1 % of the largest (vanishing or exploding activations).
learning_rate       50 steps up to the peak lr (the given lr): a schedule that starts low (1cycle, a
                    warm-up) rises to it over the first 25, as the run's warm-up does, then stays.
                    Printed and compared: the loss of one fixed batch before → after, and the
                    highest step loss when it rose a quarter above the start. NaN/inf, an end
                    above 1.5× the start, or a peak above 2× without falling below half the start
                    fail ("too high"); a peak above 2× that recovers warns (edge of stability). A
                    loss that falls by under 1 % is flat: converged (pass) when it starts below
                    0.1·ln C; too high (warn) when the weights moved by over half their norm (a
                    collapse to constant outputs); else too low (warn; "loss not going down:
                    learning rate too low"). Near 0, differences count against 0.1·ln C, so noise
                    on a converged loss is neither a rise nor a fall.
batchnorm           validation examples scored in eval mode (running statistics) and in train mode
                    (batch statistics, random batches of the run's size; an untrained model first
                    takes 60 training steps): a gap above 3 points warns, above 20 fails. Eval below
                    train: the running statistics disagree with the batch's; train below eval: a
                    model left in train mode loses accuracy at this batch size. Skipped without BN.
fit_gap             train − validation accuracy after a short training (or from a run's history):
                    gap > 10 % warns of overfitting (more regularisation, more data); train accuracy
                    below 80 % with a gap under 5 % warns of underfitting (more capacity, longer).
==================  ===============================================================================

A status is "pass", "warn", "fail", or "skip" (the check does not apply: no ReLU layers, no
validation data, trained weights for the initial-loss check); only "fail" makes `failed` true.
`DoctorReport.add_error_analysis` adds the check "error_analysis" (`striate.train.error_analysis`:
the gaps between human-level, train, train-dev, dev and test errors), which warns at most.

Calibration of the update/weight ratio and of the learning-rate check, on runs of `striate train`'s
defaults (SGD, Nesterov, weight decay 5e-4, batch 64, 1cycle, fp32) at several peak lrs: the
finished run's test accuracy (%), and the typical (median-layer) ratio over its first 5 steps as
the Trainer took them. The doctor's own measurement agrees within 15 % (default lr: 7.3e-3 against
7.0e-3 on digits, 9.9e-3 against 1.0e-2 on MNIST, 1.0e-3 against 9.2e-4 for ResNet-20).

======================================  =====  =====  =====  =====  =====  =====  =====  =====
peak lr                                  1e-3   3e-3   0.01   0.03    0.1    0.3      1      3
======================================  =====  =====  =====  =====  =====  =====  =====  =====
digits, convnet-small, 30 epochs         97.8   98.3   98.6   98.6   98.9   98.6   10.3   10.3
  typical ratio at the start             7e-5   2e-4   7e-4   2e-3   7e-3   2e-2   6e-2   0.45
digits, mlp, 30 epochs                   88.3   94.4   96.7   97.5   96.9   97.2   96.4   10.3
  typical ratio at the start             9e-5   3e-4   9e-4   3e-3   9e-3   3e-2   8e-2   0.19
MNIST (5,000), convnet-small, 5 ep.                    97.7          98.4   97.2   10.3
  typical ratio at the start                           1e-3          1e-2   4e-2   0.37
CIFAR-10 (JPEG, 5,000), convnet, 5 ep.                 61.7          55.7   41.7   10.0
  typical ratio at the start                           9e-4          8e-3   2e-2   0.10
CIFAR-10 (JPEG, 5,000), resnet20, 5 ep.                44.0          54.9          46.0
  typical ratio at the start                           1e-4          9e-4          1e-2
======================================  =====  =====  =====  =====  =====  =====  =====  =====

The lr that trains best starts between 9e-4 (CIFAR-10's convnet at 0.01, ResNet-20 at 0.1) and
1e-2 (MNIST at 0.1) in every setup, so the pass band 3e-4…2e-2 holds each best with a margin of 2×
or more. Outside it runs lose accuracy or diverge: below 3e-4 on digits (0.6 to 9 points
lost), ResNet-20 at 1e-4 (11 points), MNIST at 4e-2 (1.2), CIFAR's convnet at 2e-2 (20; its lr
0.1, at 8e-3, already loses 6 points, which the ratio alone does not catch). Above 0.1 every run
diverged; between 2e-2 and 0.1 some did (convnet-small at 6e-2) and some trained (the MLP at
8e-2): a warning there, a failure above. The learning-rate check passes all five setups at lr
0.1, warns or fails at 0.3 where the run lost accuracy (MNIST fails, CIFAR's convnet warns; the
digits convnet, which kept its accuracy, warns of a jump) and fails every setup at lr 1.


The package: `api` (`doctor`, the selection of checks), `report` (`Check`, `DoctorReport`) and
`checks/`, one module per group of checks (`initial`, `gradients`, `updates`, `activations`,
`batchnorm`, `fit_gap`), each check registered by the `@check` decorator into `DOCTOR_CHECKS` (its
name, a summary, its place in the report and its group), what they share (`context`,
`thresholds`), and
`error_rates` (for `striate.train.error_analysis`).
"""

from striate._deprecation import callable_package
from striate.train.doctor.api import CHECKS, checks_help, doctor, select_checks
from striate.train.doctor.checks import DOCTOR_CHECKS, measure_errors
from striate.train.doctor.report import STATUSES, Check, DoctorReport, plot_curves

__all__ = [
    "CHECKS",
    "DOCTOR_CHECKS",
    "STATUSES",
    "Check",
    "DoctorReport",
    "checks_help",
    "doctor",
    "measure_errors",
    "plot_curves",
    "select_checks",
]

callable_package(__name__, doctor, "striate.train.doctor.doctor")
