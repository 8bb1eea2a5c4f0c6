"""Recurrent building blocks shared by every model.

Every block reads a batch-first sequence ``(B, L, D)``. With ``return_sequences=False`` (the
default) it returns the state after the last step ``(B, n)``; GRUs can also return every step
``(B, L, n)`` (Choi's CRNN stacks two).

* :class:`GridLSTMBlock` — the paper's Grid LSTM block: TF1
  ``tf.contrib.grid_rnn.Grid2LSTMCell(num_units=n)`` run over the sequence
  (Wang et al., Sec. III-D; Kalchbrenner et al., ICLR 2016).
* :class:`KerasGRU` — Keras 2 ``GRU(n)`` semantics: ``reset_after=False``, hard sigmoid, one bias
  vector, gates stacked [z, r, h]. Used only for exact Keras parameter parity.
* :class:`SequenceGRU`, :class:`SequenceLSTM` — ``nn.GRU``/``nn.LSTM`` (batch first) that return
  the last hidden state or the whole sequence. They stay instances of ``nn.GRU``/``nn.LSTM`` so
  ``layers.keras_init_`` and the trainer's L2 grouping recognise them.
* :func:`make_gru`, :func:`make_recurrent` — the factories the models call.

Custom modules set ``l2_group = "recurrent"`` (the trainer puts their weights, projections and
biases under λ3 of eq. (2)) and implement ``reset_parameters_keras()``, which
``layers.keras_init_`` calls. The Python loops run over steps only (6–36 here); each step is a
few batched matmuls.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import glorot_uniform_, orthogonal_stacked_

#: Recurrent cells ``crnn_tf`` accepts (its ``cell`` option; ``grid_lstm`` is the paper's).
RECURRENT_CELLS = ("grid_lstm", "gru", "lstm")


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2 ``hard_sigmoid``: min(1, max(0, 0.2·x + 0.5)).

    Not ``F.hardsigmoid``, which is x/6 + 0.5.
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class GridLSTMBlock(nn.Module):
    """One Grid LSTM block of the paper (Wang et al., Sec. III-D).

    Semantics of TF1 ``tf.contrib.grid_rnn.Grid2LSTMCell(num_units=n)`` with its defaults
    (untied, no peepholes, forget bias 1; depth = input, output and priority dimension; time =
    the recurrent dimension), run over ``x_1..x_L`` from a zero state. At each step:

    1. ``p = P_m x``, ``q = P_c x`` (two bias-free D → n projections);
    2. time LSTM on input ``p`` with state ``(c^T, h^T)`` carried from the previous step;
    3. depth LSTM on input ``p`` with "previous" state ``(q, h^T_new)``;

    both LSTMs use TF's gate order [i, j, f, o] on ``[input; h]`` and add the forget bias as a
    constant. The output is ``h^D`` of the last step.

    Only the time state carries over (TF overwrites the depth state with the projections at every
    step), so the depth LSTM's intermediate outputs never reach the result: this module runs the
    time LSTM over all steps and the depth LSTM only at the last one, which is exact. The input
    parts of the time LSTM are computed for all steps in one matmul.

    Parameters: ``2·D·n + 2·(8n² + 4n)`` — 65,792 for D = 768, n = 32. Weights are stored in
    PyTorch's (out, in) layout; :meth:`load_tf_weights` takes TF's (in, out) layout.
    """

    l2_group = "recurrent"

    def __init__(self, input_size: int, hidden_size: int = 32, forget_bias: float = 1.0):
        super().__init__()
        n = hidden_size
        self.input_size, self.hidden_size, self.forget_bias = input_size, hidden_size, forget_bias
        self.project_m = nn.Parameter(torch.empty(n, input_size))
        self.project_c = nn.Parameter(torch.empty(n, input_size))
        # Rows are the gates [i, j, f, o]; columns are [input p (n) ; previous output h (n)].
        self.time_kernel = nn.Parameter(torch.empty(4 * n, 2 * n))
        self.time_bias = nn.Parameter(torch.empty(4 * n))
        self.depth_kernel = nn.Parameter(torch.empty(4 * n, 2 * n))
        self.depth_bias = nn.Parameter(torch.empty(4 * n))
        self.reset_parameters_keras()

    def reset_parameters_keras(self) -> None:
        """TF1 ``Grid2LSTMCell`` defaults: Glorot uniform kernels and projections, zero biases.

        Each projection is its own [D, n] variable in TF, so each gets its own Glorot limit.
        """
        for w in (self.project_m, self.project_c, self.time_kernel, self.depth_kernel):
            glorot_uniform_(w)
        nn.init.zeros_(self.time_bias)
        nn.init.zeros_(self.depth_bias)

    @torch.no_grad()
    def load_tf_weights(
        self, project_m, project_c, time_kernel, time_bias, depth_kernel, depth_bias
    ):
        """Copy weights in TF's layout: projections [D, n], kernels [2n, 4n], biases [4n]."""
        for dst, src in (
            (self.project_m, project_m),
            (self.project_c, project_c),
            (self.time_kernel, time_kernel),
            (self.depth_kernel, depth_kernel),
        ):
            dst.copy_(torch.as_tensor(src, dtype=dst.dtype).T)
        self.time_bias.copy_(torch.as_tensor(time_bias, dtype=self.time_bias.dtype))
        self.depth_bias.copy_(torch.as_tensor(depth_bias, dtype=self.depth_bias.dtype))

    def _lstm_update(self, gates: torch.Tensor, c_prev: torch.Tensor | None):
        i, j, f, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(i) * torch.tanh(j)
        if c_prev is not None:
            c = c + torch.sigmoid(f + self.forget_bias) * c_prev
        return c, torch.sigmoid(o) * torch.tanh(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.hidden_size
        p = F.linear(x, self.project_m)  # (B, L, n)
        time_from_input = F.linear(p, self.time_kernel[:, :n], self.time_bias)  # (B, L, 4n)
        time_recurrent = self.time_kernel[:, n:]
        c_t = h_t = None  # zero initial state: skip the matmuls of the first step
        for t in range(x.shape[1]):
            gates = time_from_input[:, t]
            if h_t is not None:
                gates = gates + F.linear(h_t, time_recurrent)
            c_t, h_t = self._lstm_update(gates, c_t)
        p_last = p[:, -1]
        q_last = F.linear(x[:, -1], self.project_c)
        depth_gates = F.linear(torch.cat([p_last, h_t], dim=-1), self.depth_kernel, self.depth_bias)
        _, h_depth = self._lstm_update(depth_gates, q_last)
        return h_depth

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, forget_bias={self.forget_bias}"


def grid_lstm_stacked(blocks: list[GridLSTMBlock], x: torch.Tensor) -> torch.Tensor:
    """Several :class:`GridLSTMBlock` of one shape run at once: ``x`` is ``(S, B, L, D)``, one
    sequence per block; returns ``(S, B, n)``, block ``s`` applied to ``x[s]``.

    The same arithmetic as :meth:`GridLSTMBlock.forward`, with each matmul batched over the
    blocks (``bmm`` of their stacked weights), so a step costs a few ops for all blocks instead
    of a few per block: CRNN-TF's eight scans at batch 8 ran hundreds of tiny ops per step.
    """
    first = blocks[0]
    n, fb = first.hidden_size, first.forget_bias
    s_, b, length, d = x.shape

    def stack(name):
        return torch.stack([getattr(blk, name) for blk in blocks])

    project_m, project_c = stack("project_m"), stack("project_c")  # (S, n, D)
    time_kernel, depth_kernel = stack("time_kernel"), stack("depth_kernel")  # (S, 4n, 2n)
    time_bias, depth_bias = stack("time_bias"), stack("depth_bias")  # (S, 4n)
    p = torch.bmm(x.reshape(s_, b * length, d), project_m.transpose(1, 2))  # (S, B·L, n)
    time_from_input = torch.baddbmm(time_bias.unsqueeze(1), p,
                                    time_kernel[:, :, :n].transpose(1, 2)).view(s_, b, length, 4 * n)
    time_recurrent = time_kernel[:, :, n:].transpose(1, 2)  # (S, n, 4n)

    def update(gates, c_prev):
        i, j, f, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(i) * torch.tanh(j)
        if c_prev is not None:
            c = c + torch.sigmoid(f + fb) * c_prev
        return c, torch.sigmoid(o) * torch.tanh(c)

    c_t = h_t = None
    for t in range(length):
        gates = time_from_input[:, :, t]
        if h_t is not None:
            gates = gates + torch.bmm(h_t, time_recurrent)
        c_t, h_t = update(gates, c_t)
    p_last = p.view(s_, b, length, n)[:, :, -1]
    q_last = torch.bmm(x[:, :, -1], project_c.transpose(1, 2))
    depth_gates = torch.baddbmm(depth_bias.unsqueeze(1), torch.cat([p_last, h_t], dim=-1),
                                depth_kernel.transpose(1, 2))
    return update(depth_gates, q_last)[1]


class KerasGRU(nn.Module):
    """Keras 2 ``GRU(n)`` with its defaults (Keras 2 ``keras.layers.GRU``).

    ``reset_after=False``, ``recurrent_activation='hard_sigmoid'``, tanh, zero initial state::

        z = hσ(W_z x + U_z h + b_z),  r = hσ(W_r x + U_r h + b_r)
        h̃ = tanh(W_h x + U_h (r ⊙ h) + b_h),  h ← z ⊙ h + (1 − z) ⊙ h̃

    One bias vector: ``3(D·n + n² + n)`` parameters (76,896 for D = 768). Gates are stacked
    [z, r, h] as in Keras; weights are stored (3n, D) / (3n, n), the transpose of Keras'
    ``kernel`` / ``recurrent_kernel`` (see :meth:`load_keras_weights`).
    """

    l2_group = "recurrent"

    def __init__(self, input_size: int, hidden_size: int = 32, return_sequences: bool = False):
        super().__init__()
        n = hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.return_sequences = return_sequences
        self.weight_ih = nn.Parameter(torch.empty(3 * n, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * n, n))
        self.bias = nn.Parameter(torch.empty(3 * n))
        self.reset_parameters_keras()

    def reset_parameters_keras(self) -> None:
        """Keras defaults: Glorot-uniform kernel, orthogonal recurrent kernel, zero bias.

        Both over the whole stacked matrix, as Keras does (Keras 2 ``GRU`` initialisers).
        """
        glorot_uniform_(self.weight_ih)
        orthogonal_stacked_(self.weight_hh)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def load_keras_weights(self, kernel, recurrent_kernel, bias) -> None:
        """Copy Keras weights: ``kernel`` (D, 3n), ``recurrent_kernel`` (n, 3n), ``bias`` (3n)."""
        self.weight_ih.copy_(torch.as_tensor(kernel, dtype=self.weight_ih.dtype).T)
        self.weight_hh.copy_(torch.as_tensor(recurrent_kernel, dtype=self.weight_hh.dtype).T)
        self.bias.copy_(torch.as_tensor(bias, dtype=self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.hidden_size
        from_input = F.linear(x, self.weight_ih, self.bias)  # (B, L, 3n)
        u_zr, u_h = self.weight_hh[: 2 * n], self.weight_hh[2 * n :]
        h = x.new_zeros(x.shape[0], n)
        outputs = []
        for t in range(x.shape[1]):
            xt = from_input[:, t]
            zr = hard_sigmoid(xt[:, : 2 * n] + F.linear(h, u_zr))
            z, r = zr[:, :n], zr[:, n:]
            candidate = torch.tanh(xt[:, 2 * n :] + F.linear(r * h, u_h))
            h = z * h + (1.0 - z) * candidate
            if self.return_sequences:
                outputs.append(h)
        return torch.stack(outputs, dim=1) if self.return_sequences else h

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, return_sequences={self.return_sequences}"


class SequenceGRU(nn.GRU):
    """``nn.GRU`` (one layer, batch first) returning the last state or every step.

    PyTorch semantics (``torch.nn.GRU``): the reset gate acts after the recurrent matmul, two bias
    vectors (3n more parameters than Keras), logistic sigmoid.
    """

    def __init__(self, input_size: int, hidden_size: int = 32, return_sequences: bool = False):
        super().__init__(input_size, hidden_size, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out, _ = super().forward(x)
        return out if self.return_sequences else out[:, -1]


class SequenceLSTM(nn.LSTM):
    """``nn.LSTM`` (one layer, batch first) returning the last hidden state."""

    def __init__(self, input_size: int, hidden_size: int = 32, return_sequences: bool = False):
        super().__init__(input_size, hidden_size, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out, _ = super().forward(x)
        return out if self.return_sequences else out[:, -1]


def make_gru(
    input_size: int, hidden: int = 32, keras: bool = False, return_sequences: bool = False
) -> nn.Module:
    """A GRU reading ``(B, L, input_size)``: ``nn.GRU`` by default, Keras semantics if ``keras``."""
    cls = KerasGRU if keras else SequenceGRU
    return cls(input_size, hidden, return_sequences=return_sequences)


def make_recurrent(
    cell: str, input_size: int, hidden: int = 32, *, keras_gru: bool = False
) -> nn.Module:
    """One recurrent block of ``crnn_tf`` (one per scan): ``(B, L, input_size)`` → ``(B, hidden)``.

    ``cell`` is ``"grid_lstm"``, ``"gru"`` or ``"lstm"``; ``keras_gru`` picks the Keras GRU.
    """
    if cell == "grid_lstm":
        return GridLSTMBlock(input_size, hidden)
    if cell == "gru":
        return make_gru(input_size, hidden, keras=keras_gru)
    if cell == "lstm":
        return SequenceLSTM(input_size, hidden)
    raise ValueError(f"unknown recurrent cell {cell!r}; use one of {list(RECURRENT_CELLS)}")
