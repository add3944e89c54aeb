"""The page's picture: what in the image the network's top class rests on, as a Grad-CAM overlay
(a network with convolutions) or a saliency overlay (one without), encoded as a PNG data URL."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from striate.interpret.figures import attribution_map, overlay
from striate.interpret.layers import conv_layers
from striate.interpret.methods import attribute
from striate.models.io import ImageClassifier

SHOWN_SIDE = 224  # a small input (8×8 digits) is enlarged to at least this, pixel by pixel


def method_for(model: ImageClassifier) -> str:
    return "grad-cam" if conv_layers(model) else "saliency"


def explain(model: ImageClassifier, image: np.ndarray) -> tuple[torch.Tensor, str, str]:
    """(class probabilities, the method used, the overlay as a ``data:image/png;base64`` URL)
    for one uint8 H×W×C image, explained for its most probable class."""
    x = model.prepare([image])
    with torch.no_grad():
        probs = model(x).float().softmax(1).cpu()[0]
    method = method_for(model)
    target = probs.argmax().reshape(1)
    maps = attribution_map(attribute(method, model, x, target))
    picture = overlay(x[0].cpu(), maps[0], alpha=0.5, clip=0.99 if method == "saliency" else 1.0)
    return probs, method, png_data_url(picture)


def png_data_url(picture: np.ndarray) -> str:
    """An H×W×3 0–1 float picture as a PNG data URL, enlarged (nearest) to SHOWN_SIDE."""
    img = Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, -(-SHOWN_SIDE // max(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
