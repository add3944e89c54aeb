"""The Segmentation task: its loss against a float64 per-pixel formula (class weights, ignored
pixels), its evaluation against the confusion-matrix metrics of all pixels at once, and training
through the engine's Trainer with the digit scenes' class maps: checkpoints, the best val_miou,
and exact resume after Ctrl-C."""

import json

import pytest
import torch

from striate import models
from striate.data.detection_loader import DetectionLoader
from striate.engine import Trainer
from striate.engine.task import TASKS
from striate.errors import ConfigError
from striate.segmentation import unet  # noqa: F401  (registers "unet")
from striate.segmentation.metrics import confusion_matrix, scores
from striate.segmentation.task import Segmentation
from striate.state_file import load_state
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _batch(seed=0, n=3, k=4, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n, h, w), generator=g)
    y[torch.rand(n, h, w, generator=g) < 0.2] = 255
    return logits, y


def _reference_loss(logits, y, weights=None):
    """Σ w_y · −log softmax(logits)_y over counted pixels / Σ w_y, pixel by pixel."""
    logp = logits.log_softmax(1)
    total, norm = 0.0, 0.0
    n, _, h, w = logits.shape
    for i in range(n):
        for r in range(h):
            for c in range(w):
                t = int(y[i, r, c])
                if t == 255:
                    continue
                wt = 1.0 if weights is None else weights[t]
                total += -wt * float(logp[i, t, r, c])
                norm += wt
    return total / norm


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 2.0, 0.5]])
def test_the_loss_is_the_per_pixel_cross_entropy(weights):
    logits, y = _batch()
    task = Segmentation(class_weights=weights)
    step = task.training_step(lambda x: logits, (torch.zeros(3), y))
    assert float(step.loss) == pytest.approx(_reference_loss(logits, y, weights), rel=1e-6)
    loss_sum, correct, n = step.stats.tolist()
    counted = y != 255
    assert n == int(counted.sum())
    assert correct == int(((logits.argmax(1) == y) & counted).sum())
    assert loss_sum == pytest.approx(float(step.loss) * n, rel=1e-6)


def test_evaluation_is_the_metrics_of_all_pixels():
    task = Segmentation()
    logits, y = _batch(1, n=6)
    evaluation = task.evaluation()
    for part in range(2):
        sl = slice(3 * part, 3 * part + 3)
        evaluation.update(lambda x, sl=sl: logits[sl], (torch.zeros(3), y[sl]))
    evaluation.reduce()
    got = evaluation.compute()
    expected = scores(confusion_matrix(logits.argmax(1), y, 4))
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert got["loss"] == pytest.approx(_reference_loss(logits, y), rel=1e-6)
    assert set(got) == {"loss", "acc", "class_acc", "miou"}


def test_the_task_is_registered_and_bad_input_is_one_line():
    assert TASKS.get("segmentation") is Segmentation
    assert Segmentation.monitor == "val_miou"
    with pytest.raises(ConfigError, match="one non-negative number per class"):
        Segmentation(class_weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match=r"class scores N×K×H×W for class maps N×H×W \(2, 4, 4\)"):
        Segmentation().training_step(
            lambda x: torch.zeros(2, 3, 4), (None, torch.zeros(2, 4, 4).long())
        )
    with pytest.raises(ConfigError, match="3 class_weights for a model of 4 classes"):
        Segmentation([1, 1, 1]).loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2).long())


def test_predict_gives_class_maps_or_probabilities():
    logits, _ = _batch(2)
    task = Segmentation()
    assert torch.equal(task.predict(lambda x: logits, None), logits.argmax(1))
    p = task.predict(lambda x: logits, None, probabilities=True)
    torch.testing.assert_close(p, logits.float().softmax(1))


def _fit(scenes, out, callbacks=(), resume=False):
    train_set, test_set = scenes
    torch.manual_seed(0)
    model = models.create("unet", 11, (3, 32, 32), base=4, depth=2)
    trainer = Trainer(epochs=3, task=Segmentation(), opt="adam", lr=1e-2, out=out,
                      callbacks=callbacks, **QUIET)  # fmt: skip
    train = DetectionLoader(train_set, 10, device="cpu", seed=3, targets="semantic")
    val = DetectionLoader(test_set, 12, shuffle=False, device="cpu", targets="semantic")
    trainer.fit(model, train, val, resume=out if resume else None)
    return trainer, model


def test_training_through_the_trainer_resumes_exactly(scenes, tmp_path):
    full, full_model = _fit(scenes, tmp_path / "full")
    history = full.history
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_miou", "val_class_acc"} <= set(
        history[0]
    )
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    best = json.loads((tmp_path / "full" / "checkpoints" / "best.json").read_text())
    assert best["val_miou"] == max(h["val_miou"] for h in history)
    # 4 steps an epoch: Ctrl-C after step 6 stops inside epoch 2
    cut, _ = _fit(scenes, tmp_path / "cut", callbacks=[CtrlCAt(6)])
    assert cut.interrupted and cut.step == 6
    assert load_state(tmp_path / "cut" / "checkpoints" / "last.safetensors")["trainer"]["step"] == 6
    resumed, resumed_model = _fit(scenes, tmp_path / "cut", resume=True)
    assert resumed.step == full.step == 12
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    untimed = [
        [{k: v for k, v in h.items() if k != "time"} for h in t.history] for t in (full, resumed)
    ]
    assert untimed[0] == untimed[1]
