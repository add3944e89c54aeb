"""The one-stage grid detector: its losses against a loop on a hand-made case, overfitting two
images (the planted boxes are found), detections before and after NMS, the registry round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from striate import models
from striate.detection import one_stage  # noqa: F401  (registers grid_detector)
from striate.detection.boxes import box_iou
from striate.errors import InputError


def planted(seed: int = 0):
    """Two 64×64 images with bright rectangles where their boxes are, and those boxes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 64, 64, generator=g) * 0.3
    boxes = torch.tensor([[[10, 10, 26, 34], [40, 8, 56, 30]], [[6, 6, 22, 24], [0, 0, 0, 0]]])
    labels = torch.tensor([[3, 7], [1, -1]])
    x[0, :, 10:34, 10:26] += 0.6
    x[0, 0, 8:30, 40:56] += 0.7
    x[1, 1, 6:24, 6:22] += 0.7
    return x, boxes.float(), labels


def small(**options):
    torch.manual_seed(0)
    return models.create("grid_detector", num_classes=10, widths=[16, 24, 32], **options)


def test_losses_equal_a_loop_on_a_hand_made_case():
    model = small(anchor_sizes=[16.0], aspect_ratios=[1.0, 2.0]).train()
    x, boxes, labels = planted()
    losses = model(x, (boxes, labels))
    assert tuple(losses) == model.loss_names
    out, anchors = model.outputs(x)  # batch norm in training mode: the same output again
    out = out.detach()
    total = {k: 0.0 for k in model.loss_names}
    positives = 0
    for b in range(2):
        real = [j for j in range(2) if labels[b, j] >= 0]
        iou = box_iou(anchors, boxes[b, real])
        best, arg = iou.max(1)
        state = torch.where(best >= 0.5, 1, torch.where(best < 0.4, 0, -1))
        for j in range(len(real)):  # each object's best anchors are positive too
            state[iou[:, j] == iou[:, j].max()] = 1
        pos = torch.nonzero(state == 1).flatten().tolist()
        positives += len(pos)
        bce = F.binary_cross_entropy_with_logits(
            out[b, :, 0], (state == 1).float(), reduction="none"
        )
        negatives = sorted(
            torch.nonzero(state == 0).flatten().tolist(), key=lambda k: -float(bce[k])
        )
        hard = negatives[: max(3 * len(pos), 3)]
        total["loss_objectness"] += float(bce[pos].sum() + bce[hard].sum())
        for k in pos:
            gt = boxes[b, real[int(arg[k])]]
            a = anchors[k]
            aw, ah = a[2] - a[0], a[3] - a[1]
            gw, gh = gt[2] - gt[0], gt[3] - gt[1]
            target = torch.stack([
                10 * ((gt[0] + gt[2]) / 2 - (a[0] + a[2]) / 2) / aw,
                10 * ((gt[1] + gt[3]) / 2 - (a[1] + a[3]) / 2) / ah,
                5 * torch.log(gw / aw),
                5 * torch.log(gh / ah),
            ])  # fmt: skip
            total["loss_box_reg"] += float(
                F.smooth_l1_loss(out[b, k, 1:5], target, reduction="sum")
            )
            label = labels[b, real[int(arg[k])]]
            total["loss_classifier"] += float(F.cross_entropy(out[b, k, 5:][None], label[None]))
    for name, value in total.items():
        assert float(losses[name].detach()) == pytest.approx(value / positives, rel=1e-4), name


def test_overfits_two_images_and_finds_the_planted_boxes():
    model = small()
    x, boxes, labels = planted()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(40):
        loss = sum(model.train()(x, (boxes, labels)).values())
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first / 10
    found = model.eval()(x)
    for b in range(2):
        for j in torch.nonzero(labels[b] >= 0).flatten().tolist():
            same = found[b]["labels"] == labels[b, j]
            iou = box_iou(found[b]["boxes"][same], boxes[b, j : j + 1]).flatten()
            assert len(iou) and float(iou.max()) > 0.5 and float(found[b]["scores"][same][0]) > 0.3
    before = model.detect(x, nms=False)
    for a, d in zip(before, found, strict=True):
        assert len(a["scores"]) >= len(d["scores"]) and (a["scores"] > 0.05).all()
        assert torch.equal(a["scores"], a["scores"].sort(descending=True).values)


def test_rebuilds_from_its_spec_and_refuses_bad_input():
    model = small()
    again = models.from_spec(model.spec)
    again.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 48, 40)  # any size: the grid follows the image
    model.eval(), again.eval()
    a, b = model(x)[0], again(x)[0]
    assert torch.equal(a["scores"], b["scores"])
    with pytest.raises(InputError, match="needs targets"):
        model.train()(x)
    with pytest.raises(InputError, match="targets must be boxes B×M×4"):
        model.train()(x, (torch.zeros(1, 4), torch.zeros(1, dtype=torch.long)))
    with pytest.raises(InputError, match="images must be a B×3×H×W"):
        model.eval()(torch.rand(1, 1, 32, 32))
