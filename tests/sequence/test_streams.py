"""StreamLoader: the rows are contiguous runs of the stream (checked by concatenation), targets
are the next tokens, offsets move with seed and epoch, and a resume mid-epoch gives exactly the
batches that were left."""

from __future__ import annotations

import pytest
import torch

from striate.errors import DataError, InputError
from striate.sequence.streams import StreamLoader
from striate.state_file import load_state, save_state


def _stream(n: int = 1000, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (n,), generator=torch.Generator().manual_seed(seed))


def _rows(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([x for x, _, _ in batches], 1), torch.cat([y for _, y, _ in batches], 1)


def test_evaluation_rows_are_the_stream_cut_in_batch_size_pieces():
    tokens = _stream(1003)
    loader = StreamLoader(tokens, 4, 7, shuffle=False)
    batches = list(loader)
    n = (1003 - 1) // 4  # 250 inputs per row
    assert len(loader) == len(batches) == -(-n // 7)
    assert [x.shape[1] for x, _, _ in batches] == [7] * 35 + [5]  # a shorter last chunk
    x, y = _rows(batches)
    for j in range(4):
        assert torch.equal(x[j], tokens[j * n : (j + 1) * n])
        assert torch.equal(y[j], tokens[j * n + 1 : (j + 1) * n + 1])
    # the targets of all rows are one run of the stream: every token after the first, once
    assert torch.equal(y.flatten(), tokens[1 : 4 * n + 1])
    assert [bool(f) for _, _, f in batches] == [True] + [False] * 35
    assert all(f.dim() == 0 and f.dtype == torch.bool for _, _, f in batches)


def test_training_epochs_start_at_seeded_offsets_with_whole_chunks():
    tokens = torch.arange(2000)
    loader = StreamLoader(tokens, 3, 10, seed=5)
    offsets = []
    for _ in range(6):
        batches = list(loader)
        assert len(batches) == len(loader) and all(x.shape == (3, 10) for x, _, _ in batches)
        x, y = _rows(batches)
        o = int(x[0, 0])
        assert 0 <= o < 10
        n = x.shape[1]
        for j in range(3):
            assert torch.equal(x[j], tokens[o + j * n : o + (j + 1) * n])
        assert torch.equal(y, x + 1)  # y is x one token on
        offsets.append(o)
    assert len(set(offsets)) > 1  # epochs differ
    other = [int(next(iter(StreamLoader(tokens, 3, 10, seed=s)))[0][0, 0]) for s in range(8)]
    assert len(set(other)) > 1  # seeds differ
    again = StreamLoader(tokens, 3, 10, seed=5)
    assert [int(next(iter(again))[0][0, 0]) for _ in range(6)] == offsets  # and repeat


@pytest.mark.parametrize("stop", [0, 3, 11])
def test_resume_in_the_middle_of_an_epoch_gives_exactly_the_rest(tmp_path, stop):
    tokens = _stream(1500, seed=1)
    full = StreamLoader(tokens, 4, 9, seed=2)
    list(full)  # epoch 0
    expected = list(full)  # epoch 1

    cut = StreamLoader(tokens, 4, 9, seed=2)
    list(cut)
    it = iter(cut)
    for _ in range(stop):
        next(it)
    state = load_state(save_state(tmp_path / "s.safetensors", {"loader": cut.state_dict()}))
    resumed = StreamLoader(tokens, 4, 9, seed=2)
    resumed.load_state_dict(state["loader"])
    rest = list(resumed)
    assert len(rest) == len(expected) - stop
    for (x, y, f), (x2, y2, f2) in zip(rest, expected[stop:], strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and bool(f) == bool(f2)
    # and the epoch after continues as the uninterrupted loader's
    assert torch.equal(next(iter(resumed))[0], next(iter(full))[0])


def test_too_short_streams_and_bad_tokens_are_one_line():
    with pytest.raises(DataError) as e:
        StreamLoader(torch.arange(100), 1, 200, shuffle=False)
    msg = str(e.value)
    assert "\n" not in msg and "100 tokens" in msg and "length 200" in msg
    with pytest.raises(DataError) as e:
        StreamLoader(torch.arange(100), 8, 20)
    assert "batch 8" in str(e.value)
    StreamLoader(torch.arange(21), 1, 20, shuffle=False)  # exactly enough
    with pytest.raises(InputError):
        StreamLoader(torch.arange(100).float(), 2, 5)
