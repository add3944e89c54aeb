"""Image captioning with soft attention (Show, Attend and Tell): captioned scenes, the CNN encoder
and attention LSTM decoder, greedy and beam-search decoding, BLEU, and the Captioning task."""

from striate.sequence.captioning.bleu import BleuCounts, corpus_bleu
from striate.sequence.captioning.decoding import Decoded, beam_search, greedy_decode
from striate.sequence.captioning.figures import plot_attention, plot_captions
from striate.sequence.captioning.model import SceneEncoder, ShowAttendTell
from striate.sequence.captioning.scenes import (
    CaptionLoader,
    CaptionSet,
    make_scenes,
    scene_vocabulary,
)
from striate.sequence.captioning.task import Captioning

__all__ = [
    "BleuCounts",
    "CaptionLoader",
    "CaptionSet",
    "Captioning",
    "Decoded",
    "SceneEncoder",
    "ShowAttendTell",
    "beam_search",
    "corpus_bleu",
    "greedy_decode",
    "make_scenes",
    "plot_attention",
    "plot_captions",
    "scene_vocabulary",
]
