"""The API as a client uses it: an image file in, the top-k classes of the network out, equal to
what the classifier's own predict_proba gives for the same file."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from matplotlib import colormaps
from PIL import Image

from striate import models
from striate.data.folder import decode_image
from striate.models.io import ImageClassifier
from striate.serve import create_app
from tests.serve.conftest import digit_image, encode


def _expected_top(classifier, data: bytes, k: int) -> list[tuple[str, float]]:
    probs = classifier.predict_proba([decode_image(data, None)])[0]
    order = np.argsort(-probs.numpy(), kind="stable")[:k]
    return [(classifier.classes[i], float(probs[i])) for i in order]


def _pairs(answer: dict) -> list[tuple[str, float]]:
    return [(p["class"], p["probability"]) for p in answer["predictions"]]


@pytest.mark.parametrize("i", [0, 1, 7])
def test_predict_upload_gives_the_classifier_s_top_k(client, classifier, digits_test, i):
    data = encode(digit_image(digits_test, i))
    r = client.post("/predict?k=3", files={"file": ("digit.png", data, "image/png")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"model", "predictions"} and answer["model"] == "digits-mlp"
    got, want = _pairs(answer), _expected_top(classifier, data, 3)
    assert [c for c, _ in got] == [c for c, _ in want]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-5, atol=1e-7)
    assert all(isinstance(p["probability"], float) for p in answer["predictions"])


def test_raw_image_body_jpeg_and_colour(client, classifier, digits_test):
    """A raw body with an image content type; a colour JPEG larger than the network's input is
    converted and resized as predict_proba does it."""
    grey = digit_image(digits_test, 3)
    big = np.asarray(Image.fromarray(grey[:, :, 0]).resize((64, 48)).convert("RGB"))
    data = encode(big, "JPEG", quality=95)
    r = client.post("/predict", content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    got, want = _pairs(r.json()), _expected_top(classifier, data, 5)
    assert len(got) == 5 and [c for c, _ in got] == [c for c, _ in want]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-5, atol=1e-7)


def test_k_larger_than_the_classes_gives_them_all_and_sums_to_one(client, digits_test):
    data = encode(digit_image(digits_test, 5))
    answer = client.post("/predict?k=50", files={"file": ("d.png", data)}).json()
    probs = [p["probability"] for p in answer["predictions"]]
    assert len(probs) == 10 and sorted(probs, reverse=True) == probs
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_healthz_names_the_model(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "ok" and health["model"] == "digits-mlp"
    assert health["classes"] == 10 and health["in_shape"] == [1, 8, 8]


def test_page_is_served_and_fetches_nothing_from_elsewhere(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "digits-mlp" in r.text and 'id="file"' in r.text
    assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text


def _overlay(answer: dict) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert answer["overlay"].startswith(prefix)
    png = base64.b64decode(answer["overlay"][len(prefix) :])
    return np.asarray(Image.open(io.BytesIO(png)))


def test_explain_without_convolutions_shows_saliency(client, classifier, digits_test):
    data = encode(digit_image(digits_test, 2))
    answer = client.post("/explain?k=2", files={"file": ("d.png", data)}).json()
    assert answer["method"] == "saliency"
    assert [c for c, _ in _pairs(answer)] == [c for c, _ in _expected_top(classifier, data, 2)]
    picture = _overlay(answer)
    assert picture.shape == (224, 224, 3)  # 8×8 enlarged 28 times, pixel by pixel
    assert (picture[::28, ::28] == picture[27::28, 27::28]).all()


def test_explain_with_convolutions_shows_grad_cam_of_the_top_class(digits_test):
    """A convolutional network: the overlay is Grad-CAM's, computed here by hand (the spatial
    mean of the gradient weighting the last convolution's maps, Selvaraju et al. eq. 1-2)."""
    torch.manual_seed(0)
    net = models.create("convnet", num_classes=10, in_shape=(1, 8, 8))
    model = ImageClassifier(net, digits_test.classes, (1, 8, 8)).eval()
    data = encode(digit_image(digits_test, 4))
    with TestClient(create_app(model, "cnn")) as c:
        answer = c.post("/explain", files={"file": ("d.png", data)}).json()
    assert answer["method"] == "grad-cam"
    x = model.prepare([decode_image(data, None)])
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    kept = []
    handle = convs[-1].register_forward_hook(lambda _m, _i, out: kept.append(out))
    logits = model(x)
    handle.remove()
    top = int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[0, top], kept[0])
    cam = (grad.mean((2, 3), keepdim=True) * kept[0]).sum(1)[0].clamp(min=0).detach()
    assert answer["predictions"][0]["class"] == digits_test.classes[top]
    # the overlay: 0.5·image + 0.5·jet(map), the map resized to the input (bilinear) and
    # scaled from its minimum to its maximum; the PNG holds it enlarged 28 times, in 8-bit steps
    cam = F.interpolate(cam[None, None], size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    unit = (cam - cam.min()) / (cam.max() - cam.min()) if cam.max() > cam.min() else cam * 0
    want = 0.5 * x[0, 0, :, :, None].numpy() + 0.5 * colormaps["jet"](unit.numpy())[..., :3]
    picture = _overlay(answer)
    assert picture.shape == (224, 224, 3)
    np.testing.assert_allclose(picture[::28, ::28] / 255, want, atol=0.5 / 255 + 1e-6)
