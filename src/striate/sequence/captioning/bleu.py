"""Corpus BLEU-1…4 with several references per sentence (Papineni et al. 2002).

    corpus_bleu(hypotheses, references)   # {"bleu1": …, "bleu2": …, "bleu3": …, "bleu4": …}

p_n = Σ_sentences Σ_ngrams min(count in hypothesis, max count in any reference)
      / Σ_sentences (n-grams in the hypothesis)       (the modified, clipped n-gram precision)
BLEU-N = BP · exp(Σ_{n≤N} (1/N) log p_n),  BP = 1 if c > r else exp(1 − r/c)
with c the hypotheses' total length and r the sum, over sentences, of the reference length
closest to the hypothesis's (the shorter on a tie, as NLTK's `corpus_bleu` does). A p_n of 0 gives
BLEU-N = 0 (no smoothing). A hypothesis shorter than n has no n-grams (NLTK's corpus_bleu counts
one, its denominator being max(1, count); on hypotheses of at least 4 words the two agree).
Counts are summed over the corpus before dividing (corpus BLEU, not the mean of sentence
scores), so `BleuCounts` add up batch by batch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from striate.checks import positive_int
from striate.errors import InputError


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


@dataclass
class BleuCounts:
    """The sums behind corpus BLEU: clipped matches and hypothesis n-grams per order, the
    hypothesis length c and the closest reference length r."""

    max_n: int = 4
    matches: list[int] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    hypothesis_length: int = 0
    reference_length: int = 0

    def __post_init__(self) -> None:
        positive_int("BleuCounts", "max_n", self.max_n)
        self.matches = self.matches or [0] * self.max_n
        self.totals = self.totals or [0] * self.max_n

    def add(self, hypothesis: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        """Count one hypothesis (a list of words) against its references."""
        if not references:
            raise InputError("BLEU: every hypothesis needs at least one reference")
        for n in range(1, self.max_n + 1):
            hyp = _ngrams(hypothesis, n)
            most: Counter = Counter()
            for ref in references:
                most |= _ngrams(ref, n)  # | keeps the larger count of each n-gram
            self.matches[n - 1] += sum(min(c, most[g]) for g, c in hyp.items())
            self.totals[n - 1] += max(len(hypothesis) - n + 1, 0)
        c = len(hypothesis)
        self.hypothesis_length += c
        self.reference_length += min((abs(len(r) - c), len(r)) for r in references)[1]

    def __iadd__(self, other: BleuCounts) -> BleuCounts:
        if other.max_n != self.max_n:
            raise InputError(f"BLEU: cannot add counts up to {other.max_n}-grams to {self.max_n}")
        self.matches = [a + b for a, b in zip(self.matches, other.matches, strict=True)]
        self.totals = [a + b for a, b in zip(self.totals, other.totals, strict=True)]
        self.hypothesis_length += other.hypothesis_length
        self.reference_length += other.reference_length
        return self

    def as_list(self) -> list[int]:
        return [*self.matches, *self.totals, self.hypothesis_length, self.reference_length]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> BleuCounts:
        """The counts `as_list` gave (e.g. after summing them across processes)."""
        n = (len(values) - 2) // 2
        v = [round(x) for x in values]
        return cls(n, v[:n], v[n : 2 * n], v[2 * n], v[2 * n + 1])

    def scores(self) -> dict[str, float]:
        """BLEU-1 … BLEU-max_n."""
        c, r = self.hypothesis_length, self.reference_length
        if c == 0:
            return {f"bleu{n}": 0.0 for n in range(1, self.max_n + 1)}
        bp = 1.0 if c > r else math.exp(1 - r / c)
        out, logs = {}, 0.0
        for n in range(1, self.max_n + 1):
            m, t = self.matches[n - 1], self.totals[n - 1]
            if m == 0 or logs == -math.inf:
                logs = -math.inf
            else:
                logs += math.log(m / t)
            out[f"bleu{n}"] = 0.0 if logs == -math.inf else bp * math.exp(logs / n)
        return out


def corpus_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
) -> dict[str, float]:
    """Corpus BLEU-1 … BLEU-`max_n` of tokenised hypotheses, each against its references."""
    if len(hypotheses) != len(references):
        raise InputError(
            f"BLEU: {len(hypotheses)} hypotheses but {len(references)} reference lists; give "
            f"one list of references per hypothesis"
        )
    counts = BleuCounts(max_n)
    for hyp, refs in zip(hypotheses, references, strict=True):
        counts.add(hyp, refs)
    return counts.scores()
