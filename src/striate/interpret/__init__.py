"""Seeing what a network sees: attribution maps, feature views and images made by optimisation.

Every attribution method has captum's shape, ``method(model, inputs, target=…) → tensor`` of the
inputs' shape, and takes the model's own input tensor (for a model from `striate.load_model` or
`striate.models.pretrained`, images on the 0–1 scale: the wrapper normalises them).

- attributions: `saliency`, `guided_backprop`, `integrated_gradients`, `smooth_grad`
  (gradients), `grad_cam` (cam), `occlusion` / `occlusion_map` (perturbation); by name in
  `ATTRIBUTIONS` (methods);
- model-level views: `filters`, `activations`, `top_patches`, `nearest_neighbours` (features),
  `receptive_field` (receptive_field), `embedding`, `embedding_grid` (embedding);
- images made by optimising pixels: `class_visualization`, `unit_visualization`, `deep_dream`
  (ascent), `fgsm`, `fooling_image` (adversarial), `invert_features`, `total_variation`
  (inversion);
- comparing methods: `deletion_curve`, `insertion_curve`, `auc` (faithfulness),
  `randomization_check` (sanity);
- figures: `overlay`, `attribution_figure`, `image_grid`, `show_grid` (figures),
  `explanations_figure` (explanations).
"""

from striate.interpret.adversarial import fgsm, fooling_image, magnified_difference
from striate.interpret.ascent import class_visualization, deep_dream, unit_visualization
from striate.interpret.cam import grad_cam
from striate.interpret.embedding import embedding, embedding_figure, embedding_grid
from striate.interpret.explanations import explanations_figure
from striate.interpret.faithfulness import auc, deletion_curve, insertion_curve
from striate.interpret.features import (
    activations,
    activations_figure,
    filters,
    filters_figure,
    nearest_neighbours,
    neighbours_figure,
    patches_figure,
    top_patches,
)
from striate.interpret.figures import (
    attribution_figure,
    attribution_map,
    image_grid,
    overlay,
    show_grid,
)
from striate.interpret.gradients import (
    channel_max,
    guided_backprop,
    integrated_gradients,
    saliency,
    smooth_grad,
)
from striate.interpret.inversion import invert_features, total_variation
from striate.interpret.layers import (
    capture,
    conv_layers,
    features_at,
    find_layer,
    last_conv,
    last_linear,
    resolve_targets,
)
from striate.interpret.methods import ATTRIBUTIONS, attribute
from striate.interpret.perturbation import occlusion, occlusion_map
from striate.interpret.receptive_field import receptive_field
from striate.interpret.sanity import randomization_check

__all__ = [
    "ATTRIBUTIONS",
    "activations",
    "activations_figure",
    "attribute",
    "attribution_figure",
    "attribution_map",
    "auc",
    "capture",
    "channel_max",
    "class_visualization",
    "conv_layers",
    "deep_dream",
    "deletion_curve",
    "embedding",
    "embedding_figure",
    "embedding_grid",
    "explanations_figure",
    "features_at",
    "fgsm",
    "filters",
    "filters_figure",
    "find_layer",
    "fooling_image",
    "grad_cam",
    "guided_backprop",
    "image_grid",
    "insertion_curve",
    "integrated_gradients",
    "invert_features",
    "last_conv",
    "last_linear",
    "magnified_difference",
    "nearest_neighbours",
    "neighbours_figure",
    "occlusion",
    "occlusion_map",
    "overlay",
    "patches_figure",
    "randomization_check",
    "receptive_field",
    "resolve_targets",
    "saliency",
    "show_grid",
    "smooth_grad",
    "top_patches",
    "total_variation",
    "unit_visualization",
]
