"""The Detection task through the engine's Trainer: running statistics per loss, mAP evaluation
equal to MeanAveragePrecision on the model's own detections, predictions in padded form, and an
interrupted + resumed run equal to the uninterrupted one (weights, steps, history)."""

from __future__ import annotations

import pytest
import torch
from tests.callbacks import CtrlCAt

from striate import models
from striate.data import ImageSet, load_dataset
from striate.data.detection_loader import DetectionLoader
from striate.data.scenes import digit_scenes
from striate.detection import one_stage, two_stage  # noqa: F401  (registers the detectors)
from striate.detection.mean_ap import MeanAveragePrecision
from striate.detection.postprocess import unpad_detections
from striate.detection.task import Detection, ground_truth
from striate.engine import Trainer
from striate.errors import ConfigError
from striate.state_file import load_state

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")
SMALL = dict(widths=[8, 16, 16])


def tiny_scenes(n: int, seed: int):
    """`n` 32×32 scenes of the bundled 8×8 digits on noise: no real data needed."""
    digits = load_dataset("digits", "train")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (8, 3, 8, 8), generator=g, dtype=torch.uint8)
    backgrounds = ImageSet(noise, torch.zeros(8, dtype=torch.long), ("noise",))
    return digit_scenes(digits, backgrounds, n, size=32, digit_size=(10, 20), seed=seed)


@pytest.fixture(scope="module")
def scenes():
    return tiny_scenes(48, 0), tiny_scenes(16, 1)


def _model(name="grid_detector", **options):
    torch.manual_seed(0)
    if name == "faster_rcnn_small":
        options = {"rpn_pre_nms_top_n": 30, "representation": 32, **options}
    return models.create(name, num_classes=10, in_shape=(3, 32, 32), **SMALL, **options)


def test_the_task_sums_the_named_losses_and_keeps_each():
    model = _model("faster_rcnn_small").train()
    task = Detection.for_model(model)
    assert task.running_stats == ("loss", *model.loss_names, "n")
    x = torch.rand(2, 3, 32, 32)
    boxes = torch.tensor([[[2.0, 2, 14, 18]], [[10.0, 8, 30, 28]]])
    labels = torch.tensor([[4], [9]])
    torch.manual_seed(1)
    step = task.training_step(model, (x, boxes, labels))
    torch.manual_seed(1)
    losses = model(x, (boxes, labels))
    total = sum(losses.values())
    assert float(step.loss.detach()) == pytest.approx(float(total.detach()), rel=1e-6)
    want = [float(total.detach()) * 2, *(float(v.detach()) * 2 for v in losses.values()), 2.0]
    assert step.stats.tolist() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ConfigError, match="not a detector"):
        Detection.for_model(models.create("mlp", num_classes=10, in_shape=(1, 8, 8)))
    with pytest.raises(ConfigError, match="model's are"):
        Detection(["loss_a"]).setup(model, None)


def test_evaluation_equals_the_metric_on_the_models_detections(scenes):
    _, test = scenes
    model = _model(pre_nms_top_n=20).eval()
    with torch.no_grad():  # a few biased heads so that there is something to score
        model.head[-1].bias.view(model.num_anchors, -1)[:, 0] = 2.0
    loader = DetectionLoader(test, 8, shuffle=False, device="cpu")
    trainer = Trainer(epochs=1, task=Detection.for_model(model), **QUIET)
    got = trainer.evaluate(model, loader)
    metric = MeanAveragePrecision()
    for x, boxes, labels in loader:
        metric.update(model(x), ground_truth(boxes, labels, 10))
    want = metric.compute()
    assert got["map"] == pytest.approx(want["map"]) and got["map_50"] == pytest.approx(
        want["map_50"]
    )
    padded = trainer.predict(model, loader)
    assert padded.shape == (len(test), 100, 6)
    first = unpad_detections(padded[:8])
    direct = model(next(iter(loader))[0])
    for a, b in zip(first, direct, strict=True):
        torch.testing.assert_close(a["scores"], b["scores"][:100])


def test_crowd_regions_are_given_once_per_class():
    boxes = torch.tensor([[[0.0, 0, 4, 4], [1, 1, 5, 5], [0, 0, 0, 0]]])
    labels = torch.tensor([[2, -2, -1]])
    (gt,) = ground_truth(boxes, labels, 3)
    assert gt["labels"].tolist() == [2, 0, 1, 2]
    assert gt["crowd"].tolist() == [False, True, True, True]
    assert gt["boxes"][1:].tolist() == [[1, 1, 5, 5]] * 3


@pytest.fixture
def one_thread():
    """roi_align's backward (an index_put with accumulation over the RoIs' windows) adds in a
    different order from run to run with several CPU threads; bitwise comparisons need one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["grid_detector", "faster_rcnn_small"])
def test_resume_continues_exactly_as_the_uninterrupted_run(scenes, tmp_path, name, one_thread):
    train, test = scenes

    def run(out, callbacks=(), resume=None):
        model = _model(name)
        loader = DetectionLoader(train, 16, device="cpu", seed=3)
        trainer = Trainer(
            epochs=2, task=Detection.for_model(model), opt="adam", lr=3e-3, schedule="cosine",
            out=out, callbacks=callbacks, **QUIET,
        )  # fmt: skip
        val = DetectionLoader(test, 16, shuffle=False, device="cpu")
        trainer.fit(model, loader, val, resume=resume)
        return trainer, model

    full, full_model = run(tmp_path / "full")
    stopped, _ = run(tmp_path / "cut", callbacks=[CtrlCAt(4)])  # in the middle of epoch 2
    assert stopped.interrupted and stopped.step == 4
    assert load_state(tmp_path / "cut" / "checkpoints" / "last.safetensors")["trainer"]["step"] == 4
    resumed, resumed_model = run(tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.step == full.step == 6
    for (key, p), q in zip(
        full_model.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), key
    assert resumed.steps_log == full.steps_log
    for h_full, h_res in zip(full.history, resumed.history, strict=True):
        for key in ("train_loss", *(f"train_{k}" for k in full_model.loss_names), "val_map"):
            assert h_full[key] == pytest.approx(h_res[key], rel=1e-6), key
    assert (tmp_path / "full" / "checkpoints" / "best.safetensors").is_file()
