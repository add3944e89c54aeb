"""Depth rendering against the closed-form ray–sphere intersection and across the two renderers;
the scale-invariant loss against its formula written in NumPy."""

import numpy as np
import pytest
import torch

from striate.errors import InputError
from striate.geometry import Camera, mesh, render_depth, render_mesh_depth, scale_invariant_loss


def sphere_depth_numpy(cam):
    """z-depth of the unit sphere: the smaller root of |o + t d|² = 1, times d·forward."""
    h, w = cam.size
    eye = np.array(cam.eye, float)
    fwd = -eye / np.linalg.norm(eye)
    right = np.cross(fwd, cam.up)
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    half = np.tan(np.radians(cam.fov) / 2)
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            y = (1 - 2 * (i + 0.5) / h) * half
            x = (2 * (j + 0.5) / w - 1) * half * w / h
            d = fwd + x * right + y * up
            d /= np.linalg.norm(d)
            b, c = eye @ d, eye @ eye - 1
            disc = b * b - c
            if disc >= 0:
                out[i, j] = (-b - np.sqrt(disc)) * (d @ fwd)
    return out


def test_sphere_depth_against_closed_form():
    cam = Camera(eye=(2.5, -1.0, 1.2), size=(24, 32), fov=60)
    got = render_depth("sphere", cam).double().numpy()
    ref = sphere_depth_numpy(cam)
    hit = ref > 0
    # sphere tracing converges slowly at grazing rays: compare where both hit, and the masks
    both = hit & (got > 0)
    assert (hit != (got > 0)).mean() < 0.01
    assert np.abs(got[both] - ref[both]).max() < 1e-3


def test_box_centre_pixel_and_renderers_agree():
    cam = Camera(eye=(0.0, -4.0, 0.0), size=(17, 17), fov=40)
    depth = render_depth("box", cam)
    assert float(depth[8, 8]) == pytest.approx(3.0, abs=1e-4)  # the face y = -1, seen head on
    assert float(depth[0, 0]) == 0.0  # the corner ray misses
    cam = Camera(size=(32, 40))
    for shape in ("box", "torus"):
        a = render_depth(shape, cam)
        b = render_mesh_depth(*mesh(shape, 0 if shape == "box" else 3), cam)
        both = (a > 0) & (b > 0)
        assert float(((a > 0) != (b > 0)).float().mean()) < 0.02
        err = (a - b)[both].abs()
        if shape == "box":  # planar faces: the mesh is the box
            assert float(err.max()) < 1e-4
        else:  # a polygonal torus: close inside, off at the silhouette's chords
            assert float(err.median()) < 0.01 and float(err.max()) < 0.1


def si_numpy(pred, target, mask, lam):
    vals = []
    for p, t, m in zip(pred, target, mask, strict=True):
        d = np.log(p[m]) - np.log(t[m])
        n = d.size
        vals.append((d**2).sum() / n - lam * d.sum() ** 2 / n**2)
    return np.mean(vals)


def test_scale_invariant_loss_against_numpy():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 8, 9, generator=g, dtype=torch.float64) + 0.5
    target = torch.rand(3, 8, 9, generator=g, dtype=torch.float64) * 3 + 0.2
    target[:, :2] = 0  # missing depth: masked out by default
    m = (target > 0).numpy()
    for lam in (0.0, 0.5, 1.0):
        got = float(scale_invariant_loss(pred, target, lam=lam))
        assert got == pytest.approx(si_numpy(pred.numpy(), target.numpy(), m, lam), rel=1e-12)
    # λ = 0: the plain mean squared log error over valid pixels
    log_mse = np.mean(
        [
            ((np.log(p[k]) - np.log(t[k])) ** 2).mean()
            for p, t, k in zip(pred.numpy(), target.numpy(), m, strict=True)
        ]
    )
    assert float(scale_invariant_loss(pred, target, lam=0.0)) == pytest.approx(log_mse)
    # λ = 1: a global scale of the prediction changes nothing; λ < 1: it does
    for s in (0.1, 3.0):
        assert float(scale_invariant_loss(pred * s, target, lam=1.0)) == pytest.approx(
            float(scale_invariant_loss(pred, target, lam=1.0)), abs=1e-12
        )
    assert float(scale_invariant_loss(pred * 3, target, lam=0.5)) > float(
        scale_invariant_loss(pred, target, lam=0.5)
    )
    # log predictions give the same value
    assert float(scale_invariant_loss(pred.log(), target, log_pred=True)) == pytest.approx(
        float(scale_invariant_loss(pred, target))
    )


def test_scale_invariant_loss_mask_and_gradient():
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(2, 6, 6, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    target = torch.rand(2, 6, 6, generator=g, dtype=torch.float64) + 0.5
    mask = torch.rand(2, 6, 6, generator=g) > 0.3
    loss = scale_invariant_loss(pred, target, mask)
    (grad,) = torch.autograd.grad(loss, pred)
    assert bool((grad[~mask] == 0).all())  # invalid pixels get no gradient
    changed = target.clone()
    changed[~mask] = 100.0
    assert float(scale_invariant_loss(pred, changed, mask).detach()) == pytest.approx(
        float(loss.detach())
    )
    assert torch.autograd.gradcheck(lambda p: scale_invariant_loss(p, target, mask), (pred,))
    assert float(scale_invariant_loss(pred.detach(), target, torch.zeros_like(mask))) == 0.0


def test_bad_arguments():
    with pytest.raises(InputError, match="lam must be"):
        scale_invariant_loss(torch.ones(2, 2), torch.ones(2, 2), lam=2)
    with pytest.raises(InputError, match="same shape"):
        scale_invariant_loss(torch.ones(2, 2), torch.ones(3, 2))
    with pytest.raises(InputError, match="up must not be parallel"):
        render_depth("box", Camera(eye=(0, 0, 3)))
