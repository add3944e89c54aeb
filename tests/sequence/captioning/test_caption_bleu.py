"""Corpus BLEU against NLTK's corpus_bleu and the worked examples of Papineni et al. (2002)."""

import math
import random

import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from striate.errors import InputError
from striate.sequence.captioning.bleu import BleuCounts, corpus_bleu

WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3,) * 3, 4: (0.25,) * 4}


def _corpus(seed: int, n: int = 40):
    rng = random.Random(seed)
    words = [
        "a",
        "small",
        "large",
        "red",
        "blue",
        "green",
        "circle",
        "square",
        "triangle",
        "left",
        "right",
        "of",
        "above",
        "below",
    ]
    hyps, refs = [], []
    for _ in range(n):
        base = [rng.choice(words) for _ in range(rng.randint(4, 10))]
        refs.append(
            [
                [w if rng.random() < 0.7 else rng.choice(words) for w in base][: rng.randint(2, 12)]
                for _ in range(rng.randint(1, 3))
            ]
        )
        hyps.append([w if rng.random() < 0.8 else rng.choice(words) for w in base])
    return hyps, refs


@pytest.mark.parametrize("seed", range(5))
def test_equals_nltk_corpus_bleu(seed):
    """Hypotheses of at least 4 words: NLTK counts a hypothesis without n-grams of order n as
    having one (its denominator is max(1, count)); Papineni et al. and striate count none."""
    hyps, refs = _corpus(seed)
    ours = corpus_bleu(hyps, refs)
    for n in range(1, 5):
        assert ours[f"bleu{n}"] == pytest.approx(
            nltk_corpus_bleu(refs, hyps, weights=WEIGHTS[n]), rel=1e-12, abs=1e-15
        ), n


def test_brevity_penalty_and_closest_reference_length_as_nltk():
    """Short hypotheses (BP < 1) and a tie between reference lengths (the shorter counts)."""
    hyps = [["a", "red", "circle"], ["a", "blue"]]
    refs = [[["a", "red", "circle", "left", "of"], ["a", "red"]], [["a", "blue", "big", "x"]]]
    # hypothesis 1 (3 words): references of 5 and 2 words are both 2 away; the shorter wins
    counts = BleuCounts(4)
    for h, r in zip(hyps, refs, strict=True):
        counts.add(h, r)
    assert (counts.hypothesis_length, counts.reference_length) == (5, 2 + 4)
    for n in (1, 2):
        assert corpus_bleu(hyps, refs)[f"bleu{n}"] == pytest.approx(
            nltk_corpus_bleu(refs, hyps, weights=WEIGHTS[n])
        )
    bp = math.exp(1 - 6 / 5)
    assert corpus_bleu(hyps, refs)["bleu1"] == pytest.approx(bp * 1.0)


def test_papineni_worked_examples():
    """Section 2.1: "the the the the the the the" against two references has modified unigram
    precision 2/7; candidate 1 of example 1 shares 17 of its 18 unigrams with the references."""
    ref1 = ["the", "cat", "is", "on", "the", "mat"]
    ref2 = ["there", "is", "a", "cat", "on", "the", "mat"]
    counts = BleuCounts(1)
    counts.add(["the"] * 7, [ref1, ref2])
    assert (counts.matches[0], counts.totals[0]) == (2, 7)
    candidate = [
        "It",
        "is",
        "a",
        "guide",
        "to",
        "action",
        "which",
        "ensures",
        "that",
        "the",
        "military",
        "always",
        "obeys",
        "the",
        "commands",
        "of",
        "the",
        "party",
    ]
    refs = [
        [
            "It",
            "is",
            "a",
            "guide",
            "to",
            "action",
            "that",
            "ensures",
            "that",
            "the",
            "military",
            "will",
            "forever",
            "heed",
            "Party",
            "commands",
        ],
        [
            "It",
            "is",
            "the",
            "guiding",
            "principle",
            "which",
            "guarantees",
            "the",
            "military",
            "forces",
            "always",
            "being",
            "under",
            "the",
            "command",
            "of",
            "the",
            "Party",
        ],
        [
            "It",
            "is",
            "the",
            "practical",
            "guide",
            "for",
            "the",
            "army",
            "always",
            "to",
            "heed",
            "the",
            "directions",
            "of",
            "the",
            "party",
        ],
    ]
    counts = BleuCounts(2)
    counts.add(candidate, refs)
    assert (counts.matches[0], counts.totals[0]) == (17, 18)  # the paper's 17/18
    assert (counts.matches[1], counts.totals[1]) == (10, 17)  # the paper's 10/17


def test_no_match_gives_zero_and_counts_add_up():
    assert corpus_bleu([["x", "y"]], [[["a", "b"]]]) == {f"bleu{n}": 0.0 for n in range(1, 5)}
    hyps, refs = _corpus(9, 20)
    whole, parts = BleuCounts(4), BleuCounts(4)
    for h, r in zip(hyps, refs, strict=True):
        whole.add(h, r)
    a, b = BleuCounts(4), BleuCounts(4)
    for i, (h, r) in enumerate(zip(hyps, refs, strict=True)):
        (a if i % 2 else b).add(h, r)
    parts += a
    parts += b
    assert parts.scores() == whole.scores()
    assert BleuCounts.from_list(whole.as_list()).scores() == whole.scores()
    with pytest.raises(InputError):
        corpus_bleu([["a"]], [])


def test_a_hypothesis_shorter_than_n_has_no_n_grams():
    """Where NLTK differs from the paper: its denominator for "a red" would be 1 at n = 3."""
    counts = BleuCounts(4)
    counts.add(["a", "red"], [["a", "red", "circle"]])
    assert counts.totals == [2, 1, 0, 0] and counts.matches == [2, 1, 0, 0]
