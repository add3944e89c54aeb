"""The two-stage detector (Faster R-CNN): proposals against a per-image loop, the four losses
against a loop on a hand-made case (sample sizes that take every box, so nothing is random),
overfitting two images, the registry round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.detection.test_one_stage import planted

from striate import models
from striate.detection import two_stage  # noqa: F401  (registers faster_rcnn_small)
from striate.detection.boxes import box_iou, decode_boxes, encode_boxes, nms
from striate.detection.roi import roi_align


def small(**options):
    torch.manual_seed(0)
    return models.create(
        "faster_rcnn_small", num_classes=10, widths=[16, 24, 32], representation=64, **options
    )


def test_proposals_equal_a_per_image_loop():
    model = small(rpn_pre_nms_top_n=40).eval()
    x, _, _ = planted()
    with torch.no_grad():
        logits, deltas, anchors = model.rpn(model.backbone(x))
        logits = logits + torch.randn_like(logits)  # spread the scores of the untrained net
        deltas = deltas + 0.3 * torch.randn_like(deltas)
        boxes, valid = model.proposals(logits, deltas, anchors, (64, 64), 10)
    for b in range(2):
        top = logits[b].topk(40).indices
        d = decode_boxes(deltas[b, top], anchors[top])
        d[:, 0::2] = d[:, 0::2].clamp(0, 64)
        d[:, 1::2] = d[:, 1::2].clamp(0, 64)
        s = logits[b, top]
        ok = ((d[:, 2:] - d[:, :2]) >= 1).all(1)
        d, s = d[ok], s[ok]
        keep = nms(d, s, 0.7)[:10]
        assert int(valid[b].sum()) == len(keep) and valid[b, : len(keep)].all()
        torch.testing.assert_close(boxes[b, : len(keep)], d[keep])


def test_the_four_losses_equal_a_loop_on_a_hand_made_case():
    everything = dict(
        rpn_batch_per_image=10_000, rpn_positive_fraction=1.0, box_batch_per_image=10_000,
        box_positive_fraction=1.0, rpn_post_nms_top_n_train=12,
    )  # fmt: skip
    model = small(**everything).train()
    x, boxes, labels = planted()
    losses = model(x, (boxes, labels))
    assert tuple(losses) == model.loss_names
    with torch.no_grad():
        features = model.backbone(x)  # batch norm in training mode: the same features again
        logits, deltas, anchors = model.rpn(features)
        props, valid = model.proposals(logits, deltas, anchors, (64, 64), 12)
    rpn_obj = rpn_box = head_cls = head_box = 0.0
    n_rpn = n_head = 0
    for b in range(2):
        real = [j for j in range(2) if labels[b, j] >= 0]
        gt = boxes[b, real]
        iou = box_iou(anchors, gt)
        best, arg = iou.max(1)
        state = torch.where(best >= 0.7, 1, torch.where(best < 0.3, 0, -1))
        for j in range(len(real)):
            state[iou[:, j] == iou[:, j].max()] = 1
        used = state >= 0
        n_rpn += int(used.sum())
        rpn_obj += float(F.binary_cross_entropy_with_logits(
            logits[b, used], (state[used] == 1).float(), reduction="sum"))  # fmt: skip
        pos = state == 1
        target = encode_boxes(gt[arg[pos]], anchors[pos])
        rpn_box += float(F.smooth_l1_loss(deltas[b, pos], target, beta=1 / 9, reduction="sum"))
        cand = torch.cat([props[b, valid[b]], gt])
        iou = box_iou(cand, gt)
        best, arg = iou.max(1)
        target = torch.where(best >= 0.5, labels[b, real][arg] + 1, 0)
        crops = roi_align(features[b : b + 1], [cand], 4, 1 / 8, 2, aligned=True)
        h = model.box_head(crops).detach()
        scores, reg = model.cls_score(h).detach(), model.bbox_pred(h).detach().view(-1, 10, 4)
        n_head += len(cand)
        head_cls += float(F.cross_entropy(scores, target, reduction="sum"))
        fg = target > 0
        head_box += float(F.smooth_l1_loss(
            reg[fg, target[fg] - 1], encode_boxes(gt[arg[fg]], cand[fg], (10, 10, 5, 5)),
            beta=1 / 9, reduction="sum"))  # fmt: skip
    want = {
        "loss_objectness": rpn_obj / n_rpn,
        "loss_rpn_box_reg": rpn_box / n_rpn,
        "loss_classifier": head_cls / n_head,
        "loss_box_reg": head_box / n_head,
    }
    for name, value in want.items():
        assert float(losses[name].detach()) == pytest.approx(value, rel=1e-4, abs=1e-7), name


def test_overfits_two_images_and_finds_the_planted_boxes():
    model = small()
    x, boxes, labels = planted()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(50):
        loss = sum(model.train()(x, (boxes, labels)).values())
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first / 4
    found = model.eval()(x)
    for b in range(2):
        for j in torch.nonzero(labels[b] >= 0).flatten().tolist():
            same = found[b]["labels"] == labels[b, j]
            iou = box_iou(found[b]["boxes"][same], boxes[b, j : j + 1]).flatten()
            assert len(iou) and float(iou.max()) > 0.5, (b, j)
    before = model.detect(x, nms=False)
    assert all(len(a["scores"]) >= len(d["scores"]) for a, d in zip(before, found, strict=True))


def test_rebuilds_from_its_spec():
    model = small()
    again = models.from_spec(model.spec)
    again.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 40, 56)
    a, b = model.eval()(x)[0], again.eval()(x)[0]
    assert torch.equal(a["boxes"], b["boxes"])
