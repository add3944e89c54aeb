"""Images made by optimisation: style transfer, fast style transfer, painterly harmonization and
texture synthesis, all seeing through the features of a pretrained network (VGG by default)."""

from striate.synthesis.features import (
    FeatureExtractor,
    default_vgg_weights,
    load_vgg,
    vgg_features,
    vgg_layer_names,
)
from striate.synthesis.losses import blend_grams, content_loss, gram_matrix, style_loss

__all__ = [
    "FeatureExtractor",
    "blend_grams",
    "content_loss",
    "default_vgg_weights",
    "gram_matrix",
    "load_vgg",
    "style_loss",
    "vgg_features",
    "vgg_layer_names",
]
