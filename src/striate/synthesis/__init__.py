"""Images made by optimisation: style transfer, fast style transfer, painterly harmonization and
texture synthesis, all seeing through the features of a pretrained network (VGG by default).

The harmonization examples are made by `python -m striate.synthesis.examples OUT_DIR`
(`striate.synthesis.examples.harmonization_examples`)."""

from striate.synthesis.colour import match_luminance, rgb_to_yiq, with_colour_of, yiq_to_rgb
from striate.synthesis.efros_leung import efros_leung
from striate.synthesis.fast import (
    PerceptualTask,
    TransformerNet,
    apply_fast_style,
    load_fast_style,
    save_fast_style,
    train_fast_style,
)
from striate.synthesis.features import (
    FeatureExtractor,
    default_vgg_weights,
    load_vgg,
    vgg_features,
    vgg_layer_names,
)
from striate.synthesis.gatys import style_targets, stylize, synthesize_texture
from striate.synthesis.harmonize import Harmonized, harmonize, style_distance
from striate.synthesis.histogram import (
    Histogram,
    feature_histogram,
    histogram_loss,
    remap_histogram,
)
from striate.synthesis.images import photograph, read_image, resize_to, save_image
from striate.synthesis.losses import blend_grams, content_loss, gram_matrix, style_loss
from striate.synthesis.normalization import ConditionalInstanceNorm2d, InstanceNorm2d
from striate.synthesis.optimize import Optimized, optimize_image
from striate.synthesis.patch_match import (
    consistent_matches,
    match_patches,
    upsample_mapping,
    used_positions,
)

__all__ = [
    "ConditionalInstanceNorm2d",
    "FeatureExtractor",
    "Harmonized",
    "Histogram",
    "InstanceNorm2d",
    "Optimized",
    "PerceptualTask",
    "TransformerNet",
    "apply_fast_style",
    "blend_grams",
    "consistent_matches",
    "content_loss",
    "default_vgg_weights",
    "efros_leung",
    "feature_histogram",
    "gram_matrix",
    "harmonize",
    "histogram_loss",
    "load_fast_style",
    "load_vgg",
    "match_luminance",
    "match_patches",
    "optimize_image",
    "photograph",
    "read_image",
    "remap_histogram",
    "resize_to",
    "rgb_to_yiq",
    "save_fast_style",
    "save_image",
    "style_distance",
    "style_loss",
    "style_targets",
    "stylize",
    "synthesize_texture",
    "train_fast_style",
    "upsample_mapping",
    "used_positions",
    "vgg_features",
    "vgg_layer_names",
    "with_colour_of",
    "yiq_to_rgb",
]
