"""A trial: the 3x loss abort, and its assembly through the run's one `prepare` (fine-tuning a
saved striate model keeps the normalisation in its model.json, as `striate train` does)."""

from __future__ import annotations

import pytest

import striate.train.assembly as assembly
from striate import models
from striate.data import Normalizer, load_dataset
from striate.models.io import save_model
from striate.train.search import LossAbort, search
from tests.train.search.helpers import tiny

pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it


def test_loss_abort_stops_at_three_times_the_first_loss():
    class FakeTrainer:
        should_stop, stop_reason, step = False, None, 0

    cb, t = LossAbort(3.0), FakeTrainer()
    cb.on_fit_start(t)
    for loss in (2.3, 5.0, 6.8):
        t.step += 1
        cb.on_step_end(t, loss)
    assert not t.should_stop
    t.step += 1
    cb.on_step_end(t, 7.0)
    assert t.should_stop and "exceeded 3x the initial loss 2.3 at step 4" in t.stop_reason


def test_a_trial_fine_tuning_a_saved_model_keeps_its_normalisation(tmp_path, monkeypatch):
    """The trials skipped `source_normalizer`: a search with `weights=` a saved model normalised
    with the data's statistics, not the model's; every loader of the trial now uses the saved
    ones (the data's differ: a test that can fail)."""
    digits = load_dataset("digits", "train")
    saved = {"mean": [0.5], "std": [0.25]}
    data_stats = Normalizer().fit(digits).state_dict()
    assert abs(data_stats["mean"][0] - 0.5) > 0.1 and abs(data_stats["std"][0] - 0.25) > 0.1
    net = models.create("convnet_small", num_classes=10, in_shape=digits.shape)
    save_model(
        tmp_path / "m", net, classes=digits.classes, in_shape=digits.shape, normalization=saved
    )
    seen: list[dict[str, list[float]]] = []

    class Spy(assembly.BatchLoader):
        def __init__(self, *args, normalize=None, **kw):
            seen.append(normalize.state_dict())
            super().__init__(*args, normalize=normalize, **kw)

    monkeypatch.setattr(assembly, "BatchLoader", Spy)
    result = search(
        tiny(weights=str(tmp_path / "m")), ["lr=log:1e-3:1e-1"], trials=1, progress=False
    )
    assert result.trials[0]["state"] == "complete"
    assert len(seen) == 3  # train, val and test loaders of the one trial
    for norm in seen:
        assert norm["mean"] == pytest.approx(saved["mean"])
        assert norm["std"] == pytest.approx(saved["std"])
