"""Seeing what a network sees: attribution maps, feature views and images made by optimisation.

Every attribution method has captum's shape, ``method(model, inputs, target=…) → tensor`` of the
inputs' shape, and takes the model's own input tensor (for a model from `striate.load_model` or
`striate.models.pretrained`, images on the 0–1 scale: the wrapper normalises them).
"""

from striate.interpret.layers import capture, conv_layers, find_layer, last_conv, resolve_targets

__all__ = ["capture", "conv_layers", "find_layer", "last_conv", "resolve_targets"]
