"""Recurrent layers: RNN, GRU and LSTM, every direction, layout, activation, clip and optional input ONNX defines.

One driver runs any cell over time (per direction, masked by sequence_lens) and keeps each step's gates;
backward replays them in reverse (backpropagation through time). A cell is the step and its gradient, side by
side: `step(xw, states, p)` from the input's projection x·Wᵀ + Wb, and `step_back`, which returns the
gradient of that projection and of the previous states, and adds into R's, Rb's and P's.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, one_float_type, register_op


def sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5  # no overflow for large |x|


# name (lower case) -> (default alpha, default beta, f(x, a, b), f'(x, y, a, b)); None: the function takes none
ACTIVATIONS = {
    "sigmoid": (None, None, lambda x, a, b: sigmoid(x), lambda x, y, a, b: y * (1 - y)),
    "tanh": (None, None, lambda x, a, b: np.tanh(x), lambda x, y, a, b: 1 - y * y),
    "relu": (None, None, lambda x, a, b: np.maximum(x, 0), lambda x, y, a, b: (x > 0).astype(x.dtype)),
    "affine": (1.0, 0.0, lambda x, a, b: a * x + b, lambda x, y, a, b: np.full_like(x, a)),
    "leakyrelu": (0.01, None, lambda x, a, b: np.where(x >= 0, x, a * x), lambda x, y, a, b: np.where(x >= 0, 1, a)),
    "thresholdedrelu": (1.0, None, lambda x, a, b: np.where(x > a, x, 0), lambda x, y, a, b: (x > a) * 1.0),
    "scaledtanh": (1.0, 1.0, lambda x, a, b: a * np.tanh(b * x), lambda x, y, a, b: a * b * (1 - np.tanh(b * x) ** 2)),
    "hardsigmoid": (0.2, 0.5, lambda x, a, b: np.clip(a * x + b, 0, 1),
                    lambda x, y, a, b: a * ((a * x + b > 0) & (a * x + b < 1))),
    "elu": (1.0, None, lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
            lambda x, y, a, b: np.where(x >= 0, 1, y + a)),
    "softsign": (None, None, lambda x, a, b: x / (1 + np.abs(x)), lambda x, y, a, b: 1 / (1 + np.abs(x)) ** 2),
    "softplus": (None, None, lambda x, a, b: np.logaddexp(x.dtype.type(0), x), lambda x, y, a, b: sigmoid(x)),
}


class Activation:
    """One of a layer's activation functions, its alpha and beta bound; clip bounds its input first."""

    def __init__(self, name: str, alphas: list, betas: list, clip):
        if name.lower() not in ACTIVATIONS:
            raise CgError(f"unknown activation {name!r}; expected one of {', '.join(sorted(ACTIVATIONS))} "
                          "(any case)")
        alpha, beta, self.fn, self.slope = ACTIVATIONS[name.lower()]
        # alphas and betas are consumed in order by the activations that take them (as onnxruntime does)
        self.alpha = alphas.pop(0) if alpha is not None and alphas else alpha
        self.beta = betas.pop(0) if beta is not None and betas else beta
        self.clip = clip

    def __call__(self, a):
        """The activation of the pre-activation `a` (clipped first)."""
        z = a if self.clip is None else np.clip(a, -self.clip, self.clip)
        return self.fn(z, self.alpha, self.beta).astype(a.dtype, copy=False)

    def back(self, grad, a, y):
        """The gradient of the pre-activation `a`, given the output's."""
        z = a if self.clip is None else np.clip(a, -self.clip, self.clip)
        g = grad * self.slope(z, y, self.alpha, self.beta)
        return (g if self.clip is None else g * (np.abs(a) <= self.clip)).astype(a.dtype, copy=False)


def matmul_t(a, b):
    return a @ b.T


class RNNCell:
    gates, states, activations = 1, 1, ("Tanh",)

    @staticmethod
    def step(xw, states, p):
        (h,) = states
        a = xw + matmul_t(h, p.R) + p.Rb
        y = p.acts[0](a)
        return (y,), (h, a, y)

    @staticmethod
    def step_back(saved, grads, p, acc):
        h, a, y = saved
        da = p.acts[0].back(grads[0], a, y)
        acc.R += da.T @ h
        acc.Rb += da.sum(0)
        return da, (da @ p.R,)


class GRUCell:
    gates, states, activations = 3, 1, ("Sigmoid", "Tanh")

    @staticmethod
    def step(xw, states, p):
        (h,) = states
        n = h.shape[-1]
        f, g = p.acts
        xz, xr, xh = np.split(xw, 3, -1)
        hzr = matmul_t(h, p.R[:2 * n]) + p.Rb[:2 * n]
        az, ar = xz + hzr[:, :n], xr + hzr[:, n:]
        z, r = f(az), f(ar)
        if p.linear_before_reset:
            hh_lin = matmul_t(h, p.R[2 * n:]) + p.Rb[2 * n:]
            ah = xh + r * hh_lin
        else:
            hh_lin = None
            ah = xh + matmul_t(r * h, p.R[2 * n:]) + p.Rb[2 * n:]
        hh = g(ah)
        return ((1 - z) * hh + z * h,), (h, az, z, ar, r, ah, hh, hh_lin)

    @staticmethod
    def step_back(saved, grads, p, acc):
        h, az, z, ar, r, ah, hh, hh_lin = saved
        n = h.shape[-1]
        f, g = p.acts
        (dh_new,) = grads
        Rh = p.R[2 * n:]
        dah = g.back(dh_new * (1 - z), ah, hh)
        dh = dh_new * z
        if p.linear_before_reset:
            dr = dah * hh_lin
            dlin = dah * r
            acc.R[2 * n:] += dlin.T @ h
            acc.Rb[2 * n:] += dlin.sum(0)
            dh += dlin @ Rh
        else:
            drh = dah @ Rh  # the gradient of r·h
            acc.R[2 * n:] += dah.T @ (r * h)
            acc.Rb[2 * n:] += dah.sum(0)
            dr = drh * h
            dh += drh * r
        daz, dar = f.back(dh_new * (h - hh), az, z), f.back(dr, ar, r)
        dzr = np.concatenate([daz, dar], -1)
        acc.R[:2 * n] += dzr.T @ h
        acc.Rb[:2 * n] += dzr.sum(0)
        dh += dzr @ p.R[:2 * n]
        return np.concatenate([dzr, dah], -1), (dh,)


class LSTMCell:
    gates, states, activations = 4, 2, ("Sigmoid", "Tanh", "Tanh")

    @staticmethod
    def step(xw, states, p):
        h, c = states
        f, g, hact = p.acts
        pi, po, pf = np.split(p.P, 3)
        ai, ao, af, ac = np.split(xw + matmul_t(h, p.R) + p.Rb, 4, -1)
        ai = ai + pi * c
        i = f(ai)
        if p.input_forget:
            af, fg = None, 1 - i
        else:
            af = af + pf * c
            fg = f(af)
        cc = g(ac)
        c_new = fg * c + i * cc
        ao = ao + po * c_new
        o = f(ao)
        hc = hact(c_new)
        return (o * hc, c_new), (h, c, ai, i, af, fg, ac, cc, ao, o, c_new, hc)

    @staticmethod
    def step_back(saved, grads, p, acc):
        h, c, ai, i, af, fg, ac, cc, ao, o, c_new, hc = saved
        f, g, hact = p.acts
        pi, po, pf = np.split(p.P, 3)
        n = h.shape[-1]
        dh_new, dc_new = grads
        dao = f.back(dh_new * hc, ao, o)
        dc_new = dc_new + hact.back(dh_new * o, c_new, hc) + dao * po
        acc.P[n:2 * n] += (dao * c_new).sum(0)
        dfg, di = dc_new * c, dc_new * cc
        dac = g.back(dc_new * i, ac, cc)
        dc = dc_new * fg
        if p.input_forget:
            di = di - dfg
            daf = np.zeros_like(dfg)
        else:
            daf = f.back(dfg, af, fg)
            dc += daf * pf
            acc.P[2 * n:] += (daf * c).sum(0)
        dai = f.back(di, ai, i)
        dc += dai * pi
        acc.P[:n] += (dai * c).sum(0)
        da = np.concatenate([dai, dao, daf, dac], -1)
        acc.R += da.T @ h
        acc.Rb += da.sum(0)
        return da, (da @ p.R, dc)


CELLS = {"RNN": RNNCell, "GRU": GRUCell, "LSTM": LSTMCell}


def activations_of(cell, directions: int, names, alphas, betas, clip) -> list[list[Activation]]:
    """Each direction's activation functions: the given names (one set per direction), else the cell's own."""
    names = list(names) if names else list(cell.activations) * directions
    if len(names) != len(cell.activations) * directions:
        raise CgError(f"expected {len(cell.activations) * directions} activations ({len(cell.activations)} per "
                      f"direction), found {len(names)}: {names}")
    alphas, betas = list(alphas or []), list(betas or [])
    acts = [Activation(name, alphas, betas, clip) for name in names]
    k = len(cell.activations)
    return [acts[d * k:(d + 1) * k] for d in range(directions)]


def check_inputs(cell, X, W, R, B, lens, initial, P, hidden_size: int, directions: int):
    """X, W, R, B, the initial states and P of one float type (ONNX's T), sequence_lens of integers, and shapes
    that fit together."""
    one_float_type(X=X, W=W, R=R, B=B, P=P, **dict(zip(["initial_h", "initial_c"], initial, strict=False)))
    if R.ndim != 3:
        raise CgError(f"expected R of 3 dimensions [directions, gates × hidden, hidden], found {list(R.shape)}")
    n, gates = R.shape[-1], cell.gates
    expected = {"W": (W, (directions, gates * n, X.shape[-1])), "R": (R, (directions, gates * n, n)),
                "B": (B, (directions, 2 * gates * n)), "P": (P, (directions, 3 * n))}
    for name, state in zip(["initial_h", "initial_c"], initial, strict=False):
        expected[name] = (state, (directions, X.shape[1], n))
    for name, (v, shape) in expected.items():
        if v is not None and v.shape != shape:
            raise CgError(f"expected {name} of shape {list(shape)} (X {list(X.shape)}, {directions} direction(s), "
                          f"hidden size {n}), found {list(v.shape)}")
    if hidden_size and hidden_size != n:
        raise CgError(f"hidden_size is {hidden_size}, but R's last dimension is {n}")
    if lens is not None and (not np.issubdtype(lens.dtype, np.integer) or lens.shape != X.shape[1:2]):
        raise CgError(f"expected sequence_lens of integers of shape [{X.shape[1]}] (the batch), "
                      f"found {lens.dtype}{list(lens.shape)}")


def recurrent_forward(ctx, cell, X, W, R, B, lens, initial, P, a):
    """Run `cell` over X in every direction; returns Y, Y_h (and Y_c for two states), in the node's layout."""
    if X.ndim != 3:
        raise CgError(f"expected X of 3 dimensions [seq_length, batch, input_size], found {list(X.shape)}")
    directions = 2 if a.direction == "bidirectional" else 1
    if a.layout:
        X, initial = X.swapaxes(0, 1), [s if s is None or s.ndim < 2 else s.swapaxes(0, 1) for s in initial]
    check_inputs(cell, X, W, R, B, lens, initial, P, a.hidden_size, directions)
    steps, batch, n = X.shape[0], X.shape[1], R.shape[-1]
    B = np.zeros((directions, 2 * cell.gates * n), X.dtype) if B is None else B
    P = np.zeros((directions, 3 * n), X.dtype) if P is None else P
    initial = [np.zeros((directions, batch, n), X.dtype) if s is None else s for s in initial]
    active = None if lens is None else (np.arange(steps)[:, None] < np.asarray(lens)[None, :])[..., None]
    acts = activations_of(cell, directions, a.activations, a.activation_alpha, a.activation_beta, a.clip)
    Y, finals, runs = np.zeros((steps, directions, batch, n), X.dtype), [], []
    for d in range(directions):
        p = SimpleNamespace(R=R[d], Rb=B[d, cell.gates * n:], P=P[d], acts=acts[d], input_forget=a.input_forget,
                            linear_before_reset=a.linear_before_reset)
        order = range(steps - 1, -1, -1) if a.direction == "reverse" or d == 1 else range(steps)
        xw = matmul_t(X, W[d]) + B[d, :cell.gates * n]
        states, saved = tuple(s[d] for s in initial[:cell.states]), {}
        for t in order:
            new, saved[t] = cell.step(xw[t], states, p)
            if active is not None:  # past its length, a sequence keeps its state and outputs zeros
                new = tuple(np.where(active[t], s_new, s) for s_new, s in zip(new, states, strict=True))
                Y[t, d] = np.where(active[t], new[0], 0)
            else:
                Y[t, d] = new[0]
            states = new
        finals.append(states)
        runs.append((p, order, saved))
    ctx.save(cell, X, W, active, a.layout, runs)
    outs = [Y] + [np.stack([f[k] for f in finals]) for k in range(cell.states)]
    if a.layout:
        outs = [Y.transpose(2, 0, 1, 3)] + [s.swapaxes(0, 1) for s in outs[1:]]
    return tuple(outs)


def recurrent_backward(ctx, grads) -> tuple:
    """Backpropagation through time: the gradients of X, W, R, B, sequence_lens (none), the initial states
    and P, in the node's input order."""
    cell, X, W, active, layout, runs = ctx
    if layout:
        grads = [None if g is None else g.transpose(1, 2, 0, 3) if k == 0 else g.swapaxes(0, 1)
                 for k, g in enumerate(grads)]
    gY, g_final = grads[0], (list(grads[1:]) + [None, None])[:cell.states]
    steps, batch, n = X.shape[0], X.shape[1], W.shape[1] // cell.gates
    dX, dW, dR, dB, dP, d_initial = np.zeros_like(X), [], [], [], [], []
    for d, (p, order, saved) in enumerate(runs):
        acc = SimpleNamespace(R=np.zeros_like(p.R), Rb=np.zeros_like(p.Rb), P=np.zeros_like(p.P))
        ds = [np.zeros((batch, n), X.dtype) if g is None else g[d] for g in g_final]
        dxw = np.zeros((steps, batch, W.shape[1]), X.dtype)
        for t in reversed(order):
            if gY is not None:
                ds[0] = ds[0] + gY[t, d]
            kept = None
            if active is not None:  # a finished sequence passed its state through unchanged
                kept = [np.where(active[t], 0, g) for g in ds]
                ds = [np.where(active[t], g, 0) for g in ds]
            dxw[t], ds = cell.step_back(saved[t], ds, p, acc)
            ds = list(ds) if kept is None else [a + b for a, b in zip(ds, kept, strict=True)]
        dX += dxw @ W[d]
        dW.append(np.einsum("tng,tni->gi", dxw, X))
        dB.append(np.concatenate([dxw.sum((0, 1)), acc.Rb]))
        dR.append(acc.R)
        dP.append(acc.P)
        d_initial.append(ds)
    d_initial = [np.stack([s[k] for s in d_initial]) for k in range(cell.states)]
    if layout:
        dX, d_initial = dX.swapaxes(0, 1), [s.swapaxes(0, 1) for s in d_initial]
    out = (dX, np.stack(dW), np.stack(dR), np.stack(dB), None, *d_initial)
    if cell is LSTMCell:
        out += (np.stack(dP),)
    return out[:len(ctx.needs_grad)]


DIRECTION = Literal["forward", "reverse", "bidirectional"]
INPUTS = {"ctx", "X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"}


def attributes(names: dict, **fixed) -> SimpleNamespace:
    """A forward's attributes (its locals less its inputs), and those the op does not have, fixed."""
    return SimpleNamespace(**{k: v for k, v in names.items() if k not in INPUTS}, **fixed)


@register_op("RNN")
class RNN(Operation):
    """a recurrent layer: Hₜ = f(Xₜ·Wᵀ + Hₜ₋₁·Rᵀ + Wb + Rb), f tanh by default (outputs Y, Y_h)"""

    symbol = "RNN"
    outputs = ("Y", "Y_h")

    @staticmethod
    def forward(ctx, X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha: list[float] = None,
                activation_beta: list[float] = None, activations: list[str] = None, clip: float = None,
                direction: DIRECTION = "forward", hidden_size: int = 0, layout: int = 0):
        a = attributes(locals(), input_forget=0, linear_before_reset=0)
        return recurrent_forward(ctx, RNNCell, X, W, R, B, sequence_lens, [initial_h], None, a)

    @staticmethod
    def backward(ctx, *grads):
        return recurrent_backward(ctx, grads)


@register_op("GRU")
class GRU(Operation):
    """a gated recurrent unit layer (gates z, r, h; linear_before_reset as PyTorch's) (outputs Y, Y_h)"""

    symbol = "GRU"
    outputs = ("Y", "Y_h")

    @staticmethod
    def forward(ctx, X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha: list[float] = None,
                activation_beta: list[float] = None, activations: list[str] = None, clip: float = None,
                direction: DIRECTION = "forward", hidden_size: int = 0, layout: int = 0,
                linear_before_reset: int = 0):
        a = attributes(locals(), input_forget=0)
        return recurrent_forward(ctx, GRUCell, X, W, R, B, sequence_lens, [initial_h], None, a)

    @staticmethod
    def backward(ctx, *grads):
        return recurrent_backward(ctx, grads)


@register_op("LSTM")
class LSTM(Operation):
    """a long short-term memory layer (gates i, o, f, c; peepholes P) (outputs Y, Y_h, Y_c)"""

    symbol = "LSTM"
    outputs = ("Y", "Y_h", "Y_c")

    @staticmethod
    def forward(ctx, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
                activation_alpha: list[float] = None, activation_beta: list[float] = None,
                activations: list[str] = None, clip: float = None, direction: DIRECTION = "forward",
                hidden_size: int = 0, input_forget: int = 0, layout: int = 0):
        a = attributes(locals(), linear_before_reset=0)
        return recurrent_forward(ctx, LSTMCell, X, W, R, B, sequence_lens, [initial_h, initial_c], P, a)

    @staticmethod
    def backward(ctx, *grads):
        return recurrent_backward(ctx, grads)
