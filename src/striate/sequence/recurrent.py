"""RNN, LSTM and GRU layers written from their equations, with torch's parameter layout so
state dicts map both ways, and torch's fused kernels as the fast path where the math is the same.

Equations (batch-first, one layer; torch's stacked-weight gate order):
- vanilla RNN (Elman 1990): h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu, or linear).
- LSTM (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000), gates stacked i, f, g, o:
  i, f, o = σ(·), g = tanh(·); c_t = f⊙c_{t-1} + i⊙g; h_t = o⊙tanh(c_t). The slides (lecture 10 of
  002_*.txt) stack them i, f, o, g, use one W on [h; x] and leave the biases out: the same cell,
  another row order.
- GRU (Cho et al. 2014), gates stacked r, z, n; r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise;
  "torch" form: n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn)), r applied after the matmul;
  "slides" form (Cho et al. 2014 and the slides): n = tanh(W_in x + b_in + W_hn (r⊙h) + b_hn).
  Both then h_t = (1−z)⊙n + z⊙h_{t-1}: z keeps the old state, in Cho et al. (eq. 7), in the slides
  and in torch alike (Chung et al. 2014 write the mirror image, z weighting the candidate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from striate.checks import boolean, one_of, positive_int, probability
from striate.errors import ConfigError, InputError

KINDS = ("rnn", "lstm", "gru")
GRU_FORMS = ("torch", "slides")
IMPLEMENTATIONS = ("auto", "fused", "equations")
INITS = ("torch", "identity")
NONLINEARITIES = ("tanh", "relu", "linear")
GATES = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
_MODES = {"rnn": "RNN_TANH", "lstm": "LSTM", "gru": "GRU"}
_TORCH_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = Tensor | tuple[Tensor, Tensor]


class Recurrent(nn.RNNBase):
    """Multi-layer RNN/LSTM/GRU, batch-first, parameters named and shaped exactly as
    torch.nn.RNN/LSTM/GRU (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}; LSTM gate
    order i,f,g,o; GRU r,z,n) so state dicts map both ways.

    It is an `nn.RNNBase`, so it keeps torch's parameter bookkeeping (flat weights, cuDNN
    flattening after `.to()`); `forward` is its own: torch's fused op on those weights, or the
    equations step by step. Dropout is applied to every layer's outputs but the last's, in
    training mode, as torch does (with one layer it is off; torch would warn).
    `nonlinearity` ("tanh", "relu", or "linear": equations only) and `bias` are for the vanilla
    RNN and for layers without biases, as torch's layers allow.
    """

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        gru_form: str = "torch",
        implementation: str = "auto",
        init: str = "torch",
        nonlinearity: str = "tanh",
        bias: bool = True,
    ) -> None:
        owner = "Recurrent"
        kind = one_of(owner, "kind", kind, KINDS)
        input_size = positive_int(owner, "input_size", input_size)
        hidden_size = positive_int(owner, "hidden_size", hidden_size)
        num_layers = positive_int(owner, "num_layers", num_layers)
        dropout = probability(owner, "dropout", dropout, high_open=True)
        gru_form = one_of(owner, "gru_form", gru_form, GRU_FORMS)
        implementation = one_of(owner, "implementation", implementation, IMPLEMENTATIONS)
        init = one_of(owner, "init", init, INITS)
        nonlinearity = one_of(owner, "nonlinearity", nonlinearity, NONLINEARITIES)
        bias = boolean(owner, "bias", bias)
        if kind != "rnn" and nonlinearity != "tanh":
            raise ConfigError(
                f"Recurrent: nonlinearity={nonlinearity!r} is for kind='rnn' only, got"
                f" kind={kind!r}; drop nonlinearity or use kind='rnn'"
            )
        if kind != "gru" and gru_form != "torch":
            raise ConfigError(
                f"Recurrent: gru_form={gru_form!r} is for kind='gru' only, got kind={kind!r}"
            )
        if init == "identity" and kind != "rnn":
            raise ConfigError(
                f"Recurrent: init='identity' (W_hh = I, Le et al. 2015) is for kind='rnn', got"
                f" kind={kind!r}; use init='torch'"
            )
        mode = "RNN_RELU" if (kind == "rnn" and nonlinearity == "relu") else _MODES[kind]
        # dropout acts between layers: one layer has none (torch warns; here it is simply off)
        dropout = dropout if num_layers > 1 else 0.0
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias=bias, batch_first=True, dropout=dropout
        )
        self.kind, self.gru_form, self.init = kind, gru_form, init
        self.nonlinearity = nonlinearity
        self.fused = _fused_possible(kind, gru_form, nonlinearity)
        if implementation == "fused" and not self.fused:
            what = "gru_form='slides'" if kind == "gru" else f"nonlinearity={nonlinearity!r}"
            raise ConfigError(
                f"Recurrent: implementation='fused' needs torch's own equations, and {what} has"
                " no fused kernel in torch; use implementation='auto' or 'equations'"
            )
        self.implementation = implementation
        if init == "identity":
            self.identity_init()

    def reset_parameters(self) -> None:
        """torch's init, U(−1/√H, 1/√H) for every weight and bias (the same draws as torch's
        layer after the same seed), then W_hh = I where init="identity"."""
        super().reset_parameters()
        if getattr(self, "init", "torch") == "identity":  # unset while RNNBase.__init__ runs
            self.identity_init()

    def identity_init(self) -> None:
        """W_hh = I and zero biases in every layer (Le, Jaitly & Hinton 2015, "IRNN"; 001_*.md's
        RNN post): the state is carried unchanged at first. W_ih keeps torch's uniform init."""
        with torch.no_grad():
            for k in range(self.num_layers):
                nn.init.eye_(getattr(self, f"weight_hh_l{k}"))
                if self.bias:
                    getattr(self, f"bias_ih_l{k}").zero_()
                    getattr(self, f"bias_hh_l{k}").zero_()

    def extra_repr(self) -> str:
        s = f"{self.kind}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.kind == "gru":
            s += f", gru_form={self.gru_form!r}"
        if self.kind == "rnn" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s + f", implementation={self.implementation!r}"

    # ----------------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:  # type: ignore[override]
        """x (B, T, D) → outputs of the last layer (B, T, H) and the final state: h (L, B, H),
        or (h, c) for the LSTM. `state` None starts from zeros."""
        h0, c0 = self._initial_state(x, state)
        if self.implementation != "equations" and self.fused:
            out, h, c = self._forward_fused(x, h0, c0)
        else:
            out, h, c, _ = self._run_equations(x, h0, c0, keep=False)
        return out, ((h, c) if self.kind == "lstm" else h)

    def trace(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """The equations path, keeping every layer and step: "h" (L, B, T, H), "c" for the LSTM,
        and each gate by its name ("i", "f", "g", "o" for the LSTM, "r", "z", "n" for the GRU),
        after its nonlinearity, (L, B, T, H). For the interpretable-cell view (Karpathy et al.
        2015: which LSTM cell tracks quotes or line length)."""
        h0, c0 = self._initial_state(x, state)
        _, _, _, kept = self._run_equations(x, h0, c0, keep=True)
        return {name: torch.stack(layers) for name, layers in kept.items()}

    # ----------------------------------------------------------------------------------------
    def _initial_state(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor | None]:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(
                f"Recurrent: x must be a (batch, time, {self.input_size}) tensor, got {shape};"
                " add a batch dimension with x.unsqueeze(0) for one sequence"
            )
        if not x.is_floating_point():
            raise InputError(
                f"Recurrent: x must be floating point, got {x.dtype}; embed token ids first"
            )
        if x.shape[1] == 0:
            raise InputError("Recurrent: x has no time steps (T = 0); give at least one step")
        want = (self.num_layers, x.shape[0], self.hidden_size)
        if state is None:
            h0 = x.new_zeros(want)
            return h0, (x.new_zeros(want) if self.kind == "lstm" else None)
        if self.kind == "lstm":
            if not (isinstance(state, (tuple, list)) and len(state) == 2):
                raise InputError(
                    "Recurrent: an LSTM state is the pair (h, c), each (num_layers, batch,"
                    f" hidden), got {type(state).__name__}"
                )
            h0, c0 = state
            _check_state("h", h0, want)
            _check_state("c", c0, want)
            return h0, c0
        if not isinstance(state, Tensor):
            raise InputError(
                f"Recurrent: a {self.kind.upper()} state is one tensor h (num_layers, batch,"
                f" hidden), got {type(state).__name__}"
            )
        _check_state("h", state, want)
        return state, None

    def _forward_fused(self, x: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """torch's own kernel (what nn.RNN/LSTM/GRU.forward call) on this module's weights."""
        self._update_flat_weights()  # as torch's forward: weights swapped by functional_call
        args = (self._flat_weights, self.bias, self.num_layers, float(self.dropout))
        args = (*args, self.training, False, True)  # training, bidirectional, batch_first
        h0 = h0.contiguous()
        if self.kind == "lstm":
            out, h, c = torch.lstm(x, (h0, c0.contiguous()), *args)
            return out, h, c
        op = {"RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu, "GRU": torch.gru}[self.mode]
        out, h = op(x, h0, *args)
        return out, h, None

    def _run_equations(
        self, x: Tensor, h0: Tensor, c0: Tensor | None, *, keep: bool
    ) -> tuple[Tensor, Tensor, Tensor | None, dict[str, list[Tensor]]]:
        """Layer by layer, step by step. Works time-major inside, as torch's CPU kernel does, so
        the inter-layer dropout draws the same mask from the same generator state."""
        layer_in = x.transpose(0, 1)  # (T, B, D)
        hs, cs = [], []
        kept: dict[str, list[Tensor]] = {}
        names = ("h", "c", *GATES[self.kind]) if self.kind == "lstm" else ("h", *GATES[self.kind])
        for k in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            b_ih = getattr(self, f"bias_ih_l{k}") if self.bias else None
            b_hh = getattr(self, f"bias_hh_l{k}") if self.bias else None
            xp = F.linear(layer_in, w_ih, b_ih)  # every step's input projection at once
            h, c = h0[k], (c0[k] if c0 is not None else None)
            steps: dict[str, list[Tensor]] = {n: [] for n in names}
            for t in range(xp.shape[0]):
                h, c, gates = self._step(xp[t], h, c, w_hh, b_hh)
                steps["h"].append(h)
                if keep:
                    if c is not None:
                        steps["c"].append(c)
                    for n, g in zip(GATES[self.kind], gates, strict=True):
                        steps[n].append(g)
            out = torch.stack(steps["h"])  # (T, B, H)
            hs.append(h)
            if c is not None:
                cs.append(c)
            if keep:
                for n in names:
                    kept.setdefault(n, []).append(torch.stack(steps[n], dim=1))  # (B, T, H)
            last = k == self.num_layers - 1
            layer_in = out if last else F.dropout(out, self.dropout, self.training)
        h_n = torch.stack(hs)
        c_n = torch.stack(cs) if cs else None
        return layer_in.transpose(0, 1), h_n, c_n, kept

    def _step(
        self, xp: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, ...]]:
        """One time step of one layer, from the input projection xp = W_ih x_t + b_ih."""
        H = self.hidden_size
        if self.kind == "rnn":
            a = xp + F.linear(h, w_hh, b_hh)
            act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda v: v}
            return act[self.nonlinearity](a), None, ()
        if self.kind == "lstm":
            gates = xp + F.linear(h, w_hh, b_hh)
            i, f, g, o = gates.chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            return o * torch.tanh(c), c, (i, f, g, o)
        x_r, x_z, x_n = xp.chunk(3, dim=-1)
        if self.gru_form == "torch":
            h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)  # r after the matmul
        else:
            b_rz = b_hh[: 2 * H] if b_hh is not None else None
            b_n = b_hh[2 * H :] if b_hh is not None else None
            h_r, h_z = F.linear(h, w_hh[: 2 * H], b_rz).chunk(2, dim=-1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h, w_hh[2 * H :], b_n))  # r before the matmul
        return (1 - z) * n + z * h, None, (r, z, n)

    # ----------------------------------------------------------------------------------------
    def to_torch(self) -> nn.RNN | nn.LSTM | nn.GRU:
        """The same layer as torch.nn.RNN/LSTM/GRU (batch_first=True, same weights, same device
        and dtype). The slides' GRU and the linear RNN have no torch equivalent."""
        if not self.fused:
            what = "gru_form='slides'" if self.kind == "gru" else "nonlinearity='linear'"
            raise ConfigError(f"Recurrent.to_torch: torch has no layer computing {what}")
        p = next(self.parameters())
        extra = {"nonlinearity": self.nonlinearity} if self.kind == "rnn" else {}
        layer = _TORCH_CLASSES[self.kind](
            self.input_size,
            self.hidden_size,
            self.num_layers,
            bias=self.bias,
            batch_first=True,
            dropout=self.dropout,
            device=p.device,
            dtype=p.dtype,
            **extra,
        )
        layer.load_state_dict(self.state_dict())
        layer.train(self.training)
        return layer

    @classmethod
    def from_torch(cls, layer: nn.RNN | nn.LSTM | nn.GRU, **options) -> Recurrent:
        """A Recurrent with `layer`'s weights (copied), device and dtype. `options`: gru_form,
        implementation. Recurrent is batch-first whatever `layer.batch_first` says."""
        kinds = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}
        kind = next((v for t, v in kinds.items() if type(layer) is t), None)
        if kind is None:
            raise InputError(
                "Recurrent.from_torch: layer must be a torch.nn.RNN, LSTM or GRU,"
                f" got {type(layer).__name__}"
            )
        if layer.bidirectional or layer.proj_size:
            raise InputError(
                "Recurrent.from_torch: bidirectional layers and LSTM projections are not"
                " supported; give a unidirectional layer with proj_size=0"
            )
        extra = {}
        if kind == "rnn":
            extra["nonlinearity"] = "relu" if layer.mode == "RNN_RELU" else "tanh"
        new = cls(
            kind,
            layer.input_size,
            layer.hidden_size,
            layer.num_layers,
            dropout=float(layer.dropout) if layer.num_layers > 1 else 0.0,
            bias=layer.bias,
            **extra,
            **options,
        )
        p = next(layer.parameters())
        new = new.to(device=p.device, dtype=p.dtype)
        new.load_state_dict(layer.state_dict())
        new.train(layer.training)
        return new


def _fused_possible(kind: str, gru_form: str, nonlinearity: str) -> bool:
    """Whether torch's kernel computes the same function (all but the slides' GRU, linear RNN)."""
    return not (kind == "gru" and gru_form == "slides") and nonlinearity != "linear"


def _check_state(name: str, v: object, want: tuple[int, int, int]) -> None:
    if not isinstance(v, Tensor) or tuple(v.shape) != want:
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise InputError(
            f"Recurrent: initial state {name} must have shape (num_layers, batch, hidden) ="
            f" {want}, got {got}"
        )


__all__ = ["GATES", "KINDS", "Recurrent"]
