"""Text corpora for language models: reading a text file safely, the vocabulary (characters or
words), and the named corpora with their fixed, stated splits.

    corpus = load_corpus("tinyshakespeare", "char")   # nanoGPT's 90/10 split, 65 characters
    corpus = load_corpus("kjv", "word")               # chapters c % 20 == 18 → val, 19 → test
    corpus = load_corpus("notes.txt", "word")         # 90/5/5 contiguous

A corpus is three int64 token streams (train, val, test) and the `Vocabulary` that maps them
back to text; `split_rule` is the sentence a report prints beside its perplexities (no standard
word-level benchmark such as PTB can be had here, so the rule must be said).
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.checks import one_of, positive_int
from striate.errors import ConfigError, DataError, InputError
from striate.paths import not_a_file

LEVELS = ("char", "word")
UNKNOWN = "<unk>"
END_OF_VERSE = "<eos>"
MAX_BYTES = 1 << 30  # 1 GiB: a corpus is read whole into memory
CORPORA = {"tinyshakespeare": "tinyshakespeare.txt", "kjv": "kjv.txt.gz"}
KJV_MAX_VOCAB = 10_000  # PTB's size (Mikolov et al. 2010: 10k words)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")


class Vocabulary:
    """Tokens ↔ ids: characters (every character of the text, sorted) or words (the most
    frequent, ties alphabetical, then "<unk>" for the rest); `specials` come first."""

    def __init__(self, tokens: Sequence[str], level: str, unknown: str | None = None) -> None:
        self.level = one_of("Vocabulary", "level", level, LEVELS)
        self.tokens = tuple(tokens)
        if len(set(self.tokens)) != len(self.tokens):
            raise InputError("Vocabulary: tokens must be distinct; remove the repeated ones")
        if unknown is not None and unknown not in self.tokens:
            raise InputError(f"Vocabulary: the unknown token {unknown!r} is not among the tokens")
        self.unknown = unknown
        self.index = {t: i for i, t in enumerate(self.tokens)}
        # characters: sorted code points and their ids, for a vectorised encode
        chars = [(ord(t), i) for i, t in enumerate(self.tokens) if len(t) == 1]
        chars.sort()
        self._codes = np.array([c for c, _ in chars], dtype=np.int64)
        self._code_ids = np.array([i for _, i in chars], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({self.level}, {len(self)} tokens)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_json() == other.to_json()

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        level: str,
        *,
        max_size: int | None = None,
        min_count: int = 1,
        specials: Sequence[str] = (),
    ) -> Vocabulary:
        """The vocabulary of `tokens` (a text's characters, or its words from `split_words`).

        Characters: all of them, sorted by code point (max_size/min_count do not apply: a
        character model has no unknown token). Words: those seen at least `min_count` times, the
        `max_size` most frequent (ties alphabetical), after `specials` and "<unk>"."""
        one_of("Vocabulary", "level", level, LEVELS)
        positive_int("Vocabulary", "max_size", max_size, allow_none=True)
        positive_int("Vocabulary", "min_count", min_count)
        specials = tuple(specials)
        counts = Counter(tokens)
        for s in specials:
            counts.pop(s, None)
        if level == "char":
            if any(len(s) == 1 for s in specials):
                raise InputError(
                    "Vocabulary: a character vocabulary's specials must be longer "
                    "than one character (they would shadow a character)"
                )
            return cls([*specials, *sorted(counts)], "char")
        counts.pop(UNKNOWN, None)
        kept = (w for w, c in counts.items() if c >= min_count)
        words = sorted(kept, key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[:max_size]
        return cls([*specials, UNKNOWN, *words], "word", UNKNOWN)

    def encode(self, text_or_tokens: str | Sequence[str], *, name: str = "text") -> torch.Tensor:
        """Ids (int64, 1-D) of a text (characters; words through `split_words`) or of a list of
        tokens. Words outside the vocabulary become "<unk>"; characters outside a character
        vocabulary raise an InputError naming them (`name` says what was given: "prompt", …)."""
        if self.level == "char" and isinstance(text_or_tokens, str):
            return self._encode_chars(text_or_tokens, name)
        tokens = split_words(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        if self.unknown is not None:
            unk = self.index[self.unknown]
            ids = [self.index.get(t, unk) for t in tokens]
        else:
            missing = list(dict.fromkeys(t for t in tokens if t not in self.index))
            if missing:
                raise self._outside(missing, name)
            ids = [self.index[t] for t in tokens]
        return torch.tensor(ids, dtype=torch.int64)

    def _encode_chars(self, text: str, name: str) -> torch.Tensor:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        if not len(codes):
            return torch.zeros(0, dtype=torch.int64)
        at = np.searchsorted(self._codes, codes).clip(max=max(len(self._codes) - 1, 0))
        known = self._codes[at] == codes if len(self._codes) else np.zeros(len(codes), bool)
        if not known.all():
            raise self._outside(list(dict.fromkeys(map(chr, codes[~known].tolist()))), name)
        return torch.from_numpy(self._code_ids[at])

    def _outside(self, missing: list[str], name: str) -> InputError:
        shown = ", ".join(repr(t) for t in missing[:10]) + (", …" if len(missing) > 10 else "")
        what = "characters" if self.level == "char" else "tokens"
        return InputError(
            f"{name} has {what} outside the vocabulary: {shown} (the model knows {len(self)} "
            f"{what}); remove or replace them"
        )

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of `ids`: characters joined with "", words with " "."""
        ids = torch.as_tensor(ids, dtype=torch.int64).reshape(-1)
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(self)):
            raise InputError(
                f"Vocabulary: ids must lie in 0..{len(self) - 1}, got {int(ids.min())}.."
                f"{int(ids.max())}"
            )
        tokens = np.asarray(self.tokens, dtype=object)[ids.numpy()]
        return ("" if self.level == "char" else " ").join(tokens)

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": list(self.tokens), "unknown": self.unknown}

    @classmethod
    def from_json(cls, d: dict) -> Vocabulary:
        try:
            return cls(list(d["tokens"]), d["level"], d.get("unknown"))
        except (KeyError, TypeError) as e:
            raise DataError(f"not a vocabulary (missing {e}); the model's files are damaged") from e


def split_words(text: str) -> list[str]:
    """The word tokeniser: lower case; words (letters and digits, inner apostrophes kept:
    "lord's") and each punctuation mark as a token of its own."""
    return _WORD.findall(text.lower())


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a .txt file, or of a gzip file (.gz); a DataError for a missing, empty,
    binary, non-UTF-8, truncated or over-1-GiB file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IsADirectoryError(str(path))
        if size > MAX_BYTES:
            raise DataError(
                f"{path}: {size:,} bytes is over the 1 GiB a corpus may have; use a smaller text"
            )
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise DataError(f"{path}: over 1 GiB once decompressed; use a smaller text")
        else:
            data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as e:
        raise not_a_file(path, e, "a text file (.txt or .gz)") from e
    except EOFError as e:
        raise DataError(f"{path}: the gzip file is truncated; download or copy it again") from e
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(
            f"{path}: not a valid gzip file ({e}); give a .gz file or plain text"
        ) from e
    if b"\x00" in data:
        raise DataError(f"{path}: a binary file (it has NUL bytes), not text; give a UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); convert it to "
            f"UTF-8 or give another file"
        ) from e
    if not text.strip():
        raise DataError(f"{path}: the text is empty; give a file with text in it")
    return text


@dataclass
class Corpus:
    """Three token streams of one text and the vocabulary behind them."""

    name: str
    level: str
    vocab: Vocabulary
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    split_rule: str

    def __repr__(self) -> str:
        return (
            f"Corpus({self.name!r}, {self.level}, {len(self.vocab)} tokens in the vocabulary, "
            f"train/val/test {len(self.train):,}/{len(self.val):,}/{len(self.test):,})"
        )


def load_corpus(
    source: str | Path,
    level: str = "char",
    root: str | Path | None = None,
    *,
    max_vocab: int | None = None,
) -> Corpus:
    """A corpus by name ("tinyshakespeare", "kjv": read from `root`, else
    $STRIATE_SHARED_DATA/text or ../shared/data/text) or from a .txt/.gz path, split by its rule
    (see `split_rule`). Words: `max_vocab` most frequent training words (kjv: 10,000 by default)."""
    one_of("load_corpus", "level", level, LEVELS)
    positive_int("load_corpus", "max_vocab", max_vocab, allow_none=True)
    name = str(source)
    if name in CORPORA:
        text = read_text(_named_file(name, root))
        if name == "kjv":
            return _kjv(text, level, KJV_MAX_VOCAB if max_vocab is None else max_vocab)
        if name == "tinyshakespeare" and level == "char":
            return _tinyshakespeare(text)
        return _contiguous(name, text, level, max_vocab)
    path = Path(source)
    if not path.exists() and not path.suffix:
        raise ConfigError(
            f"load_corpus: no corpus {name!r}: give {' or '.join(map(repr, CORPORA))}, or a "
            f"path to a .txt or .gz file"
        )
    return _contiguous(path.name, read_text(path), level, max_vocab)


def _named_file(name: str, root: str | Path | None) -> Path:
    file = CORPORA[name]
    if root is not None:
        candidates = [Path(root) / file, Path(root) / "text" / file]
    else:
        shared = Path(os.environ.get("STRIATE_SHARED_DATA", Path("..") / "shared" / "data"))
        candidates = [shared / "text" / file]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"{name}: {file} not found (looked in {', '.join(str(p.parent) for p in candidates)}); "
        f"pass root=FOLDER holding it, or set STRIATE_SHARED_DATA"
    )


def _tinyshakespeare(text: str) -> Corpus:
    """nanoGPT's shakespeare_char: the vocabulary of the whole text's characters, the first 90 %
    of characters for training, the last 10 % for validation."""
    vocab = Vocabulary.build(text, "char")
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    rule = (
        "nanoGPT's split: the first 90% of characters train, the last 10% validation; there is "
        "no separate test split (test = validation); the vocabulary is the whole text's characters"
    )
    return Corpus("tinyshakespeare", "char", vocab, ids[:cut], ids[cut:], ids[cut:], rule)


def _contiguous(name: str, text: str, level: str, max_vocab: int | None) -> Corpus:
    """A text cut 90/5/5 into contiguous train/val/test parts (of characters, or of words)."""
    if level == "char":
        vocab = Vocabulary.build(text, "char")
        ids = vocab.encode(text)
        where = "the whole text's characters"
    else:
        words = split_words(text)
        n_train = int(len(words) * 0.9)
        vocab = Vocabulary.build(words[:n_train], "word", max_size=max_vocab)
        ids = vocab.encode(words)
        where = "the training words" + (f" (the {max_vocab:,} most frequent)" if max_vocab else "")
    a, b = int(len(ids) * 0.9), int(len(ids) * 0.95)
    if b - a < 2 or len(ids) - b < 2:
        raise DataError(
            f"{name}: {len(ids)} {level}s are too few to split 90/5/5 (validation and test need "
            f"at least 2 each); give a longer text"
        )
    rule = (
        f"contiguous split of the {level}s: the first 90% train, the next 5% validation, the last "
        f"5% test; vocabulary from {where}"
    )
    return Corpus(name, level, vocab, ids[:a], ids[a:b], ids[b:], rule)


_KJV_HEADING = re.compile(r"^(?:[1-3] )?[A-Z][A-Za-z ]* \d+$")
_KJV_VERSE = re.compile(r"^\s+\d+ ")


def kjv_chapters(text: str) -> list[list[str]]:
    """The King James Bible (as Debian's bible-kjv prints it) as chapters in book order, each a
    list of verses, without the chapter headings ("Genesis 1") and verse numbers."""
    chapters: list[list[str]] = []
    for line in text.splitlines():
        if _KJV_HEADING.match(line):
            chapters.append([])
        elif _KJV_VERSE.match(line):
            if not chapters:
                raise DataError("kjv: a verse before the first chapter heading; is this the KJV?")
            chapters[-1].append(_KJV_VERSE.sub("", line, count=1))
        elif line.strip() and chapters and chapters[-1]:
            chapters[-1][-1] += " " + line.strip()
    if not chapters:
        raise DataError("kjv: no chapter headings such as 'Genesis 1' found; is this the KJV?")
    return chapters


def _kjv(text: str, level: str, max_vocab: int) -> Corpus:
    """The KJV split by chapter: c % 20 == 18 validation, c % 20 == 19 test, the rest train."""
    chapters = kjv_chapters(text)
    parts: dict[str, list[list[str]]] = {"train": [], "val": [], "test": []}
    for c, verses in enumerate(chapters):
        parts["val" if c % 20 == 18 else "test" if c % 20 == 19 else "train"].append(verses)
    if level == "char":
        streams = {k: "\n\n".join("\n".join(ch) for ch in chs) for k, chs in parts.items()}
        vocab = Vocabulary.build("".join(streams.values()), "char")
        ids = {k: vocab.encode(s) for k, s in streams.items()}
        unit = (
            "characters (of the whole text): verses end with a newline, chapters with a blank line"
        )
    else:
        words = {
            k: [w for ch in chs for verse in ch for w in (*split_words(verse), END_OF_VERSE)]
            for k, chs in parts.items()
        }
        specials = [END_OF_VERSE]
        vocab = Vocabulary.build(words["train"], "word", max_size=max_vocab, specials=specials)
        ids = {k: vocab.encode(w) for k, w in words.items()}
        unit = (
            f"words (lower case, punctuation marks as tokens) with {END_OF_VERSE} after every "
            f"verse, as PTB ends every sentence (so every chapter ends with one); vocabulary: the "
            f"{max_vocab:,} most frequent training words, the rest {UNKNOWN}"
        )
    rule = (
        f"King James Bible, {len(chapters)} chapters in book order numbered c = 0, 1, …: "
        f"c % 20 == 18 validation, c % 20 == 19 test, the rest train, concatenated in order; "
        f"chapter headings and verse numbers dropped; {unit}"
    )
    return Corpus("kjv", level, vocab, ids["train"], ids["val"], ids["test"], rule)
