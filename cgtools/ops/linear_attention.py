"""LinearAttention: attention as a recurrence over a (key size × value size) state per key/value head, the
way linear transformers, Mamba-2-like gated models and (Gated) DeltaNet decode.

    P_t = exp(g_t)·S_{t-1}          (gated rules; P_t = S_{t-1} otherwise)
    u_t = β_t·(v_t − P_tᵀk_t)        (delta rules; u_t = v_t otherwise)
    S_t = P_t + k_t ⊗ u_t,   o_t = scale · q_tᵀ S_t   (query heads share their group's state)

Forward keeps every step's state; backward walks the steps in reverse (backpropagation through time).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.attention import merge_heads, split_heads
from cgtools.ops.base import Operation, register_op

RULES = ("linear", "gated", "delta", "gated_delta")


def per_head(x, b, t, kv_heads, d_k, what, sizes):
    """decay (B, T, H_kv or H_kv·d_k) or beta (B, T, H_kv or 1) as (B, heads, T, 1 or d_k)."""
    if x.ndim != 3 or x.shape[-1] not in sizes:
        raise CgError(f"LinearAttention expected {what} of shape (batch, sequence, one of {sorted(set(sizes))}), "
                      f"found {list(x.shape)}")
    n = x.shape[-1]
    heads = 1 if n == 1 else kv_heads  # a beta of one value per step is shared by every head
    return x.reshape(b, t, heads, n // heads).transpose(0, 2, 1, 3)


def checked_rule(update_rule, decay, beta):
    gated, delta = update_rule in ("gated", "gated_delta"), update_rule in ("delta", "gated_delta")
    for name, given, needed in (("decay", decay is not None, gated), ("beta", beta is not None, delta)):
        if given != needed:
            raise CgError(f"LinearAttention with update_rule {update_rule!r} {'needs' if needed else 'takes no'} "
                          f"input {name!r}")
    return gated, delta


@register_op("LinearAttention")
class LinearAttention(Operation):
    """attention as a recurrent state per head: linear, gated, delta or gated-delta updates, GQA, a past state"""

    symbol = "linear attention"
    outputs = ("output", "present_state")

    @staticmethod
    def forward(ctx, query, key, value, past_state=None, decay=None, beta=None, *, q_num_heads: int,
                kv_num_heads: int, chunk_size: int = 64, scale: float = 0.0,
                update_rule: Literal["linear", "gated", "delta", "gated_delta"] = "gated_delta"):
        gated, delta = checked_rule(update_rule, decay, beta)
        if q_num_heads < 1 or kv_num_heads < 1 or q_num_heads % kv_num_heads:
            raise CgError(f"LinearAttention's q_num_heads ({q_num_heads}) must be a positive multiple of its "
                          f"kv_num_heads ({kv_num_heads})")
        work = np.promote_types(query.dtype, np.float32)  # float16 accumulates in float32, as onnx's reference
        q, k, v = (split_heads(x.astype(work), n, name) for x, n, name in
                   ((query, q_num_heads, "query"), (key, kv_num_heads, "key"), (value, kv_num_heads, "value")))
        b, _, t, d_k = q.shape
        d_v = v.shape[-1]
        shape = (b, kv_num_heads, d_k, d_v)
        if past_state is not None and past_state.shape != shape:
            raise CgError(f"LinearAttention expected past_state of shape {list(shape)}, found {list(past_state.shape)}")
        g = per_head(decay, b, t, kv_num_heads, d_k, "decay", (kv_num_heads, kv_num_heads * d_k)) if gated else None
        a = np.exp(g.astype(work))[..., None] if gated else None  # (B, H_kv, T, 1 or d_k, 1)
        be = per_head(beta, b, t, kv_num_heads, d_k, "beta", (kv_num_heads, 1)).astype(work) if delta else None
        state = np.zeros(shape, work) if past_state is None else past_state.astype(work)
        group = q_num_heads // kv_num_heads
        scale = scale or 1 / np.sqrt(d_k)
        states, outs = [], np.zeros((b, q_num_heads, t, d_v), work)
        for i in range(t):
            states.append(state)
            state = state * a[:, :, i] if gated else state
            u = be[:, :, i] * (v[:, :, i] - np.einsum("bhdm,bhd->bhm", state, k[:, :, i])) if delta else v[:, :, i]
            state = state + k[:, :, i, :, None] * u[:, :, None, :]
            outs[:, :, i] = scale * np.einsum("bhd,bhdm->bhm", q[:, :, i], np.repeat(state, group, axis=1))
        states.append(state)
        ctx.save(q, k, v, a, be, states, scale, group, (query.dtype, past_state, decay, beta))
        state_dtype = query.dtype if past_state is None else past_state.dtype
        return merge_heads(outs).astype(query.dtype), state.astype(state_dtype)

    @staticmethod
    def backward(ctx, g_out, g_state=None):
        q, k, v, a, be, states, scale, group, (dtype, past, decay, beta) = ctx
        b, hq, t, d_k = q.shape
        hkv, d_v = k.shape[1], v.shape[-1]
        dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
        da = None if a is None else np.zeros(a.shape[:-1], q.dtype)  # (B, H_kv, T, 1 or d_k)
        dbe = None if be is None else np.zeros_like(be)
        go = np.zeros((b, hq, t, d_v), q.dtype) if g_out is None else split_heads(g_out.astype(q.dtype), hq, "grad")
        ds = np.zeros(states[-1].shape, q.dtype) if g_state is None else g_state.astype(q.dtype)
        for i in reversed(range(t)):
            qi, ki, vi, gi = q[:, :, i], k[:, :, i], v[:, :, i], go[:, :, i]
            dq[:, :, i] = scale * np.einsum("bhdm,bhm->bhd", np.repeat(states[i + 1], group, axis=1), gi)
            ds = ds + scale * np.einsum("bhd,bhm->bhdm", qi, gi).reshape(b, hkv, group, d_k, d_v).sum(2)
            prev = states[i]
            p = prev if a is None else prev * a[:, :, i]
            du = np.einsum("bhdm,bhd->bhm", ds, ki)  # S_t = P_t + k_t ⊗ u_t
            dp = ds
            if be is None:
                u, dv[:, :, i] = vi, du
            else:  # u_t = β_t (v_t − P_tᵀ k_t)
                residual = vi - np.einsum("bhdm,bhd->bhm", p, ki)
                u = be[:, :, i] * residual
                dbeta = np.sum(du * residual, axis=-1, keepdims=True)
                dbe[:, :, i] = dbeta.sum(1, keepdims=True) if be.shape[1] < hkv else dbeta  # one beta for all heads
                dv[:, :, i] = be[:, :, i] * du
                dr = -be[:, :, i] * du
                dp = dp + ki[..., :, None] * dr[..., None, :]
                dk[:, :, i] += np.einsum("bhdm,bhm->bhd", p, dr)
            dk[:, :, i] += np.einsum("bhdm,bhm->bhd", ds, u)
            if a is not None:  # P_t = a_t S_{t-1}
                dadk = np.sum(dp * prev, axis=-1)
                da[:, :, i] = dadk.sum(-1, keepdims=True) if da.shape[-1] == 1 else dadk  # one decay per head
                dp = dp * a[:, :, i]
            ds = dp
        grads = [merge_heads(x).astype(dtype) for x in (dq, dk, dv)]
        grads.append(None if past is None else ds.astype(past.dtype))
        grads.append(None if decay is None else grad_per_head(da * a[..., 0], decay))  # d exp(g)/dg = exp(g)
        grads.append(None if beta is None else grad_per_head(dbe, beta))
        return tuple(grads)


def grad_per_head(g, x):
    """A (B, heads, T, n) gradient back to its input's (B, T, heads·n) layout and dtype."""
    return merge_heads(g).reshape(x.shape).astype(x.dtype)
