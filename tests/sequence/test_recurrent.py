"""Recurrent against torch.nn.RNN/LSTM/GRU on the same weights (both implementations, with and
without an initial state), the slides' GRU against a hand-written step, finite differences,
dropout between layers, the identity initialisation, trace() and the torch mapping."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call

from striate.errors import ConfigError, InputError
from striate.sequence.recurrent import Recurrent

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
B, T, D, H = 3, 5, 4, 6


def _torch_layer(kind, layers=1, seed=0, **kw):
    torch.manual_seed(seed)
    return TORCH[kind](D, H, layers, batch_first=True, **kw)


def _state(kind, layers, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(layers, B, H, generator=g, dtype=dtype)
    return (h, torch.randn(layers, B, H, generator=g, dtype=dtype)) if kind == "lstm" else h


def _close(a, b, atol=1e-6):
    if isinstance(a, tuple):
        assert len(a) == len(b) == 2
        for u, v in zip(a, b, strict=True):
            _close(u, v, atol)
        return
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("implementation", ["auto", "equations"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_equals_torch_given_the_same_weights(kind, layers, implementation):
    ref = _torch_layer(kind, layers)
    ours = Recurrent(kind, D, H, layers, implementation=implementation)
    ours.load_state_dict(ref.state_dict())  # the same names and shapes
    x = torch.randn(B, T, D)
    for state in (None, _state(kind, layers)):
        want_out, want_state = ref(x, state)
        out, got_state = ours(x, state)
        _close(out, want_out)
        _close(got_state, want_state)
        assert out.shape == (B, T, H)


@pytest.mark.parametrize("implementation", ["auto", "equations"])
def test_relu_rnn_equals_torch(implementation):
    ref = _torch_layer("rnn", 2, nonlinearity="relu")
    ours = Recurrent.from_torch(ref, implementation=implementation)
    assert ours.nonlinearity == "relu"
    x = torch.randn(B, T, D)
    out, h = ours(x)
    want_out, want_h = ref(x)
    _close(out, want_out)
    _close(h, want_h)


def test_the_auto_path_is_torchs_fused_kernel():
    """ "auto" runs the very same op as nn.LSTM (bit-identical), "equations" only agrees to
    rounding: the two paths really differ."""
    ref = _torch_layer("lstm", 2)
    x = torch.randn(B, 40, D)
    fused, _ = Recurrent.from_torch(ref)(x)
    assert torch.equal(fused, ref(x)[0])
    steps, _ = Recurrent.from_torch(ref, implementation="equations")(x)
    _close(steps, fused)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_same_seed_same_initial_weights_as_torch(kind):
    ref = _torch_layer(kind, 2, seed=5)
    torch.manual_seed(5)
    ours = Recurrent(kind, D, H, 2)
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), ours.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    ours = Recurrent(kind, D, H, 2, bias=False)
    assert [n for n, _ in ours.named_parameters()] == [
        n for n, _ in ref.named_parameters() if "bias" not in n
    ]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_round_trip_through_torch(kind):
    ref = _torch_layer(kind, 2, dropout=0.25)
    ours = Recurrent.from_torch(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours.dropout == 0.25 and ours.num_layers == 2 and ours.hidden_size == H
    back = ours.to_torch()
    assert type(back) is type(ref) and back.batch_first
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), back.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2) and p1.data_ptr() != p2.data_ptr()
    ours.double()
    assert ours.to_torch().weight_hh_l0.dtype == torch.float64


def test_from_torch_keeps_dtype_and_refuses_what_it_cannot_express():
    ref = _torch_layer("gru", 1).double()
    ours = Recurrent.from_torch(ref, gru_form="slides")
    assert ours.weight_ih_l0.dtype == torch.float64 and ours.gru_form == "slides"
    with pytest.raises(InputError, match="bidirectional"):
        Recurrent.from_torch(nn.LSTM(D, H, bidirectional=True))
    with pytest.raises(InputError, match="RNN, LSTM or GRU"):
        Recurrent.from_torch(nn.Linear(D, H))
    with pytest.raises(ConfigError, match="slides"):
        ours.to_torch()


def _slides_gru_by_hand(x, h, w_ih, w_hh, b_ih, b_hh):
    """One step of the slides' GRU (lecture 10; Cho et al. 2014) in the slides' notation, the
    stacked torch weights cut into W_x*, W_h* (rows r, z, n)."""
    w_xr, w_xz, w_xh = w_ih.chunk(3)
    w_hr, w_hz, w_hh_ = w_hh.chunk(3)
    b_r = b_ih[:H] + b_hh[:H]
    b_z = b_ih[H : 2 * H] + b_hh[H : 2 * H]
    b_h = b_ih[2 * H :] + b_hh[2 * H :]
    r = torch.sigmoid(x @ w_xr.T + h @ w_hr.T + b_r)
    z = torch.sigmoid(x @ w_xz.T + h @ w_hz.T + b_z)
    h_tilde = torch.tanh(x @ w_xh.T + (r * h) @ w_hh_.T + b_h)
    return z * h + (1 - z) * h_tilde


def test_the_slides_gru_is_its_formula_and_differs_from_torchs():
    ref = _torch_layer("gru", 1)
    slides = Recurrent.from_torch(ref, gru_form="slides")  # "auto" falls back to the equations
    x, h0 = torch.randn(B, T, D), _state("gru", 1)
    out, h_n = slides(x, h0)
    p = {n: v.detach() for n, v in ref.named_parameters()}
    h = h0[0]
    for t in range(T):
        h = _slides_gru_by_hand(
            x[:, t], h, *(p[f"{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        )
        _close(out[:, t], h)
    _close(h_n[0], h)
    torch_out, _ = ref(x, h0)
    assert (torch_out - out).abs().max() > 1e-3  # r before vs after the matmul
    with pytest.raises(ConfigError, match="gru_form='slides'.*no fused kernel"):
        Recurrent("gru", D, H, gru_form="slides", implementation="fused")


@pytest.mark.parametrize(
    "kind,options",
    [
        ("rnn", {}),
        ("rnn", {"nonlinearity": "relu"}),
        ("rnn", {"nonlinearity": "linear"}),
        ("lstm", {}),
        ("gru", {}),
        ("gru", {"gru_form": "slides"}),
    ],
    ids=["rnn-tanh", "rnn-relu", "rnn-linear", "lstm", "gru-torch", "gru-slides"],
)
def test_gradients_pass_finite_differences(kind, options):
    torch.manual_seed(0)
    layer = Recurrent(kind, 2, 3, 2, implementation="equations", **options).double()
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    if options.get("nonlinearity") == "relu":
        x = (x.detach().abs() + 0.5).requires_grad_()  # away from relu's kink
    state = _state(kind, 2, dtype=torch.float64)
    state = tuple(
        s[:, :2, :3].clone().requires_grad_() for s in (state if kind == "lstm" else (state,))
    )
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(x, *rest):
        s, ps = rest[: len(state)], rest[len(state) :]
        out, fin = functional_call(
            layer, dict(zip(names, ps, strict=True)), (x, s if kind == "lstm" else s[0])
        )
        return out, *(fin if kind == "lstm" else (fin,))

    assert torch.autograd.gradcheck(f, (x, *state, *params))


def test_dropout_acts_between_layers_only():
    ref = _torch_layer("lstm", 3, dropout=0.5)
    x = torch.randn(B, T, D)
    for implementation in ("auto", "equations"):
        ours = Recurrent.from_torch(ref, implementation=implementation)
        ours.eval(), ref.eval()
        _close(ours(x)[0], ref(x)[0])
        ours.train(), ref.train()
        torch.manual_seed(7)
        want_out, (want_h, _) = ref(x)
        torch.manual_seed(7)
        out, (h, c) = ours(x)  # torch's mask from the same generator state
        _close(out, want_out)
        _close(h, want_h)
        # the last layer's outputs are not dropped: they are its final state, unscaled
        _close(out[:, -1], h[-1], atol=0)
        assert (out != 0).all()
        torch.manual_seed(8)
        assert not torch.allclose(ours(x)[0], out)  # and training mode does drop


def test_dropout_zeroes_about_p_of_the_first_layers_outputs():
    """Statistics of the equations path: the second layer (made a copy, W_ih = I, W_hh = 0) sees
    p of the first layer's outputs zeroed and the rest scaled by 1/(1−p); with one layer dropout
    has nothing to act on."""
    layer = Recurrent(
        "rnn", D, H, 2, dropout=0.3, implementation="equations", nonlinearity="linear"
    )
    with torch.no_grad():
        layer.weight_ih_l1.copy_(torch.eye(H))
        layer.weight_hh_l1.zero_(), layer.bias_ih_l1.zero_(), layer.bias_hh_l1.zero_()
    x = torch.randn(400, T, D)
    clean, _ = layer.eval()(x)
    out, _ = layer.train()(x)
    kept = out != 0
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.02
    _close(out[kept], clean[kept] / 0.7, atol=1e-5)
    single = Recurrent("gru", D, H, 1, dropout=0.5).train()
    assert single.dropout == 0 and torch.equal(single(x[:4])[0], single.eval()(x[:4])[0])


def test_identity_init_carries_the_input():
    layer = Recurrent("rnn", D, H, 2, init="identity", nonlinearity="linear")
    for k in range(2):
        assert torch.equal(getattr(layer, f"weight_hh_l{k}"), torch.eye(H))
        assert (
            not getattr(layer, f"bias_ih_l{k}").any() and not getattr(layer, f"bias_hh_l{k}").any()
        )
    # the first layer's state is the running sum of W_ih x_t: nothing fades, nothing grows
    one = Recurrent("rnn", D, H, 1, init="identity", nonlinearity="linear")
    x = torch.randn(B, T, D)
    out, h = one(x)
    _close(out, torch.cumsum(x @ one.weight_ih_l0.detach().T, dim=1), atol=1e-5)
    # no input after the first step: the state is carried unchanged, step after step
    x[:, 1:] = 0
    out, _ = one(x)
    _close(out, out[:, :1].expand(-1, T, -1), atol=0)
    h0 = _state("rnn", 1)
    _, h = one(torch.zeros(B, 50, D), h0)
    _close(h, h0, atol=0)
    layer.reset_parameters()  # a reset keeps the chosen init
    assert torch.equal(layer.weight_hh_l1, torch.eye(H)) and layer.weight_ih_l1.abs().sum() > 0
    with pytest.raises(ConfigError, match="identity"):
        Recurrent("lstm", D, H, init="identity")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_trace_keeps_every_layer_step_and_gate(kind):
    ours = Recurrent.from_torch(_torch_layer(kind, 2))
    x, state = torch.randn(B, T, D), _state(kind, 2)
    tr = ours.trace(x, state)
    gates = {"lstm": "ifgo", "gru": "rzn"}[kind]
    assert set(tr) == {"h", *gates} | ({"c"} if kind == "lstm" else set())
    assert all(v.shape == (2, B, T, H) for v in tr.values())
    out, fin = ours(x, state)
    _close(tr["h"][-1], out)
    _close(tr["h"][:, :, -1], fin[0] if kind == "lstm" else fin)
    if kind == "lstm":  # c_t = f⊙c_{t−1} + i⊙g, h_t = o⊙tanh(c_t), recomputed from the gates
        c_prev = torch.cat([state[1][:, :, None], tr["c"][:, :, :-1]], dim=2)
        _close(tr["c"], tr["f"] * c_prev + tr["i"] * tr["g"])
        _close(tr["h"], tr["o"] * torch.tanh(tr["c"]))
    else:  # h_t = (1−z)⊙n + z⊙h_{t−1}
        h_prev = torch.cat([state[:, :, None], tr["h"][:, :, :-1]], dim=2)
        _close(tr["h"], (1 - tr["z"]) * tr["n"] + tr["z"] * h_prev)


def test_bad_arguments_and_inputs_say_what_to_do():
    with pytest.raises(ConfigError, match="did you mean 'lstm'"):
        Recurrent("lstn", D, H)
    with pytest.raises(ConfigError, match="hidden_size"):
        Recurrent("rnn", D, 0)
    with pytest.raises(ConfigError, match="no fused kernel"):
        Recurrent("rnn", D, H, nonlinearity="linear", implementation="fused")
    with pytest.raises(ConfigError, match="kind='rnn' only"):
        Recurrent("gru", D, H, nonlinearity="relu")
    layer = Recurrent("lstm", D, H, 2)
    with pytest.raises(InputError, match=r"\(batch, time, 4\)"):
        layer(torch.randn(T, D))
    with pytest.raises(InputError, match="floating point"):
        layer(torch.zeros(B, T, D, dtype=torch.long))
    with pytest.raises(InputError, match=r"pair \(h, c\)"):
        layer(torch.randn(B, T, D), torch.zeros(2, B, H))
    with pytest.raises(InputError, match=r"\(2, 3, 6\)"):
        layer(torch.randn(B, T, D), (torch.zeros(1, B, H), torch.zeros(1, B, H)))


def test_copies_and_moves_like_a_module():
    layer = Recurrent("gru", D, H, 2, dropout=0.1)
    twin = copy.deepcopy(layer)
    x = torch.randn(B, T, D)
    twin.eval(), layer.eval()
    assert torch.equal(twin(x)[0], layer(x)[0])
    with torch.no_grad():
        twin.weight_hh_l1.add_(1.0)  # the fused path reads the current weights
    assert not torch.equal(twin(x)[0], layer(x)[0])
    assert layer.double()(x.double())[0].dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cuda_runs_cudnn_on_flat_weights_and_the_equations_agree(kind, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    ref = _torch_layer(kind, 2).cuda()
    ours = Recurrent.from_torch(ref)
    x, state = torch.randn(B, T, D, device="cuda"), _state(kind, 2)
    state = tuple(s.cuda() for s in state) if kind == "lstm" else state.cuda()
    equations = Recurrent.from_torch(ref, implementation="equations")
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "weights are not part of single contiguous chunk"
            out, fin = ours(x, state)
        want, want_fin = ref(x, state)
        steps, steps_fin = equations(x, state)
    _close(out, want)
    _close(fin, want_fin)
    _close(steps, want, atol=1e-5)
    _close(steps_fin, want_fin, atol=1e-5)
    assert out.device.type == "cuda"


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_functional_call_swaps_the_weights_of_the_fused_path(kind):
    """torch.func reads the weights it is given (the fused op's weight list is refreshed)."""
    fused, steps = Recurrent(kind, D, H, 2), Recurrent(kind, D, H, 2, implementation="equations")
    weights = {n: torch.randn_like(p) for n, p in fused.named_parameters()}
    x = torch.randn(B, T, D)
    _close(functional_call(fused, weights, (x,))[0], functional_call(steps, weights, (x,))[0])
    steps.load_state_dict(fused.state_dict())
    _close(fused(x)[0], steps(x)[0])  # and its own weights again afterwards


@pytest.mark.parametrize("implementation", ["auto", "equations"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_layers_without_biases_equal_torch(kind, implementation):
    ref = _torch_layer(kind, 2, bias=False)
    ours = Recurrent.from_torch(ref, implementation=implementation)
    assert not ours.bias
    x, state = torch.randn(B, T, D), _state(kind, 2)
    out, fin = ours(x, state)
    want, want_fin = ref(x, state)
    _close(out, want)
    _close(fin, want_fin)
