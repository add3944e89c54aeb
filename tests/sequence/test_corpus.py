"""Corpora: the vocabulary against hand-counted references, the named splits against their rules
counted on the raw files, and one clear line for each kind of bad text file."""

from __future__ import annotations

import gzip
import re
from collections import Counter

import pytest
import torch

from striate.errors import ConfigError, DataError, InputError
from striate.sequence.corpus import Vocabulary, load_corpus, read_text, split_words

# nanoGPT's data/shakespeare_char/prepare.py prints these 65 characters (vocab size 65)
NANOGPT_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------ Vocabulary


def test_word_vocabulary_most_frequent_ties_alphabetical_specials_first():
    words = ["b", "a", "c", "a", "b", "d", "e", "e", "e"]
    v = Vocabulary.build(words, "word", max_size=3, specials=["<pad>"])
    # counts e 3, a 2, b 2, c 1, d 1: top 3 with a before b on the tie
    assert v.tokens == ("<pad>", "<unk>", "e", "a", "b")
    assert v.unknown == "<unk>" and len(v) == 5
    assert v.encode(["a", "zzz", "e"]).tolist() == [3, 1, 2]
    assert v.decode([2, 3, 4]) == "e a b"
    assert Vocabulary.build(words, "word", min_count=2).tokens == ("<unk>", "e", "a", "b")


def test_char_vocabulary_round_trip_and_json():
    text = "hello, world\n"
    v = Vocabulary.build(text, "char")
    assert v.tokens == tuple(sorted(set(text))) and v.unknown is None
    ids = v.encode(text)
    assert ids.dtype == torch.int64 and ids.tolist() == [v.tokens.index(c) for c in text]
    assert v.decode(ids) == text
    assert Vocabulary.from_json(v.to_json()) == v


def test_characters_outside_the_vocabulary_are_named():
    v = Vocabulary.build("abc", "char")
    with pytest.raises(InputError) as e:
        v.encode("a€bé", name="prompt")
    msg = _one_line(e)
    assert msg.startswith("prompt has characters outside the vocabulary: '€', 'é'")
    assert "3 characters" in msg


def test_split_words():
    assert split_words("And God said, Let the LORD's light be: 12 days.") == [
        "and", "god", "said", ",", "let", "the", "lord's", "light", "be", ":", "12", "days", ".",
    ]  # fmt: skip


# ------------------------------------------------------------------ read_text


def test_read_text_bad_files(tmp_path):
    cases = {
        "empty.txt": b"",
        "blank.txt": b" \n\n ",
        "nul.txt": b"abc\x00def",
        "latin1.txt": "caf\xe9".encode("latin-1"),
        "notgzip.gz": b"plain text, not gzip",
        "truncated.gz": gzip.compress(b"some text " * 1000)[:50],
    }
    words = {
        "empty.txt": "empty",
        "blank.txt": "empty",
        "nul.txt": "binary",
        "latin1.txt": "not UTF-8",
        "notgzip.gz": "not a valid gzip",
        "truncated.gz": "truncated",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            read_text(tmp_path / name)
        assert words[name] in _one_line(e), name
    with pytest.raises(DataError) as e:
        read_text(tmp_path / "missing.txt")
    assert "no such file" in _one_line(e)
    with pytest.raises(DataError) as e:
        read_text(tmp_path)
    assert "folder" in _one_line(e)
    (tmp_path / "ok.txt.gz").write_bytes(gzip.compress("näive\n".encode()))
    assert read_text(tmp_path / "ok.txt.gz") == "näive\n"


# ------------------------------------------------------------------ named corpora


def test_tinyshakespeare_is_nanogpts_split(shared_data):
    path = shared_data / "text" / "tinyshakespeare.txt"
    c = load_corpus("tinyshakespeare", "char", root=shared_data / "text")
    assert "".join(c.vocab.tokens) == NANOGPT_CHARS
    assert (len(c.train), len(c.val)) == (1_003_854, 111_540)
    assert torch.equal(c.test, c.val) and "test = validation" in c.split_rule
    text = path.read_text()
    assert c.vocab.decode(c.train) + c.vocab.decode(c.val) == text


def _kjv_chapters_by_hand(raw: str) -> list[list[str]]:
    """Each chapter's verses (text without numbers), read independently of the loader."""
    chapters: list[list[str]] = []
    for line in raw.splitlines():
        if line and not line[0].isspace() and re.search(r" \d+$", line):
            chapters.append([])
        elif re.match(r"  \d+ ", line):
            chapters[-1].append(line.split(" ", 3)[3])
        elif line.strip():
            chapters[-1][-1] += " " + line
    return chapters


@pytest.fixture(scope="module")
def kjv(shared_data):
    raw = gzip.decompress((shared_data / "text" / "kjv.txt.gz").read_bytes()).decode()
    return _kjv_chapters_by_hand(raw), load_corpus("kjv", "word", root=shared_data)


def test_kjv_split_follows_the_stated_rule(kjv):
    chapters, c = kjv
    assert len(chapters) == 1189 and sum(map(len, chapters)) == 31_102
    eos = c.vocab.index["<eos>"]
    for split, keep in [("train", lambda i: i % 20 < 18), ("val", lambda i: i % 20 == 18),
                        ("test", lambda i: i % 20 == 19)]:  # fmt: skip
        verses = sum(len(ch) for i, ch in enumerate(chapters) if keep(i))
        assert int((getattr(c, split) == eos).sum()) == verses, split
    first_val = chapters[18][0]  # Genesis 19:1
    assert first_val.startswith("And there came two angels to Sodom")
    n = len(split_words(first_val))
    assert c.vocab.decode(c.val[:n]) == " ".join(split_words(first_val))
    assert "c % 20 == 18" in c.split_rule and "<eos>" in c.split_rule


def test_kjv_vocabulary_is_the_training_words(kjv):
    chapters, c = kjv
    assert len(c.vocab) == 10_002 and c.vocab.tokens[:2] == ("<eos>", "<unk>")
    train = " ".join(" ".join(ch) for i, ch in enumerate(chapters) if i % 20 < 18)
    counts = Counter(split_words(train))
    assert len(counts) > 10_000
    # the kept words are the most frequent ones: none left out is more frequent than one kept
    kept = c.vocab.tokens[2:]
    assert min(counts[w] for w in kept) >= max(v for w, v in counts.items() if w not in kept)
    unk = c.vocab.index["<unk>"]
    assert 0 < float((c.val == unk).float().mean()) < 0.02


def test_a_path_is_split_90_5_5(tmp_path):
    text = "".join(f"line {i} of the text.\n" for i in range(200))
    (tmp_path / "t.txt").write_text(text)
    c = load_corpus(tmp_path / "t.txt", "char")
    n = len(text)
    assert (len(c.train), len(c.val), len(c.test)) == (int(n * 0.9), int(n * 0.95) - int(n * 0.9),
                                                       n - int(n * 0.95))  # fmt: skip
    assert c.vocab.decode(torch.cat([c.train, c.val, c.test])) == text
    w = load_corpus(tmp_path / "t.txt", "word", max_vocab=5)
    assert len(w.vocab) == 6 and len(w.train) + len(w.val) + len(w.test) == len(split_words(text))


def test_bad_corpus_names_and_short_texts(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_corpus("tinyshakespear")
    assert "tinyshakespeare" in _one_line(e)
    (tmp_path / "short.txt").write_text("abc")
    with pytest.raises(DataError) as e:
        load_corpus(tmp_path / "short.txt")
    assert "too few" in _one_line(e)
    with pytest.raises(DataError) as e:
        load_corpus("kjv", "word", root=tmp_path)
    assert "kjv.txt.gz not found" in _one_line(e)
