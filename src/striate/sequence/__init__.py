"""Models of sequences: RNN/LSTM/GRU from their equations, the truncated-BPTT stream loader and
the LanguageModel task, character and word language models, sampling, the neural cache,
attention and transformers. Image captioning with soft attention is
`striate.sequence.captioning`; the language-model job (run folders) is `striate.sequence.run`."""

from striate.sequence.attention import (
    LearnedPositions,
    MultiHeadAttention,
    SinusoidalPositions,
    TransformerBlock,
    causal_mask,
    scaled_dot_product_attention,
)
from striate.sequence.cache import cache_probabilities, cached_perplexity, collect, grid_search
from striate.sequence.cell_view import cell_figure, cell_html, find_cells
from striate.sequence.corpus import Corpus, Vocabulary, load_corpus, read_text, split_words
from striate.sequence.gradient_flow import gradient_flow_figure, gradient_norms
from striate.sequence.language_model import LanguageModel
from striate.sequence.lm_zoo import LANGUAGE_MODELS, build_language_model
from striate.sequence.recurrent import Recurrent
from striate.sequence.rnn_lm import RecurrentLM
from striate.sequence.sampling import sample
from striate.sequence.streams import StreamLoader
from striate.sequence.transformer import TransformerLM

__all__ = [
    "LANGUAGE_MODELS",
    "Corpus",
    "LanguageModel",
    "LearnedPositions",
    "MultiHeadAttention",
    "Recurrent",
    "RecurrentLM",
    "SinusoidalPositions",
    "StreamLoader",
    "TransformerBlock",
    "TransformerLM",
    "Vocabulary",
    "build_language_model",
    "cache_probabilities",
    "cached_perplexity",
    "causal_mask",
    "cell_figure",
    "cell_html",
    "collect",
    "find_cells",
    "gradient_flow_figure",
    "gradient_norms",
    "grid_search",
    "load_corpus",
    "read_text",
    "sample",
    "scaled_dot_product_attention",
    "split_words",
]
