"""The attention family of transformer models: Attention (scaled dot-product, multi-head and grouped-query,
with masks, a causal or sliding window, a key/value cache and soft capping), RotaryEmbedding and SwiGLU.

Attention keeps what backward needs — the softmax's probabilities, the (soft-capped) scores and the heads'
layout — and derives every gradient from them: masked keys, and whole rows with no key left, pass none back.
CausalConvWithState, the causal depthwise convolution with a carried state that Mamba and Gated DeltaNet put
before their attention, is here too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import FLOAT_TYPES, described
from cgtools.ops.base import Operation, one_float_type, register_op


def split_heads(x, num_heads: int, what: str):
    """(batch, seq, heads·size) -> (batch, heads, seq, size); a 4-D tensor is already so."""
    if x.ndim == 4:
        return x
    if x.ndim != 3 or num_heads < 1 or x.shape[2] % num_heads:
        raise CgError(f"Attention expected {what} of 3 dimensions (batch, sequence, heads × size, the heads given "
                      f"by q_num_heads/kv_num_heads) or 4, found shape {list(x.shape)} with {num_heads} heads")
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(batch, heads, seq, size) -> (batch, seq, heads·size), the inverse of split_heads."""
    b, h, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, h * d)


def allowed_keys(q_len, kv_len, offset, is_causal, left, right):
    """Which keys each query may see by position (causal, window): a bool (q, kv) array, or (batch, 1, q, kv)
    for a per-batch offset; None when every key is allowed. Query i sits at absolute position i + offset."""
    if not is_causal and left < 0 and right < 0:
        return None
    offset = np.reshape(offset, (-1, 1, 1, 1)) if np.ndim(offset) else offset
    diff = np.arange(q_len)[:, None] + offset - np.arange(kv_len)  # query position - key position
    allowed = np.ones(np.shape(diff), bool)
    if is_causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    return allowed


def attention_bias(mask, kv_len, allowed, nonpad, dtype):
    """The additive bias of the scores: a float mask (padded with -inf to kv_len), -inf where a bool mask, the
    causal or window positions, or the padding beyond nonpad_kv_seqlen rule a key out."""
    float_mask = np.zeros((), dtype)
    if mask is not None:
        short = kv_len - mask.shape[-1]
        if short > 0:  # ONNX pads a shorter mask: the extra keys are masked out
            fill = False if mask.dtype == bool else -np.inf
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, short)], constant_values=fill)
        if mask.dtype == bool:
            allowed = mask if allowed is None else allowed & mask
        else:
            float_mask = mask.astype(dtype, copy=False)
    if nonpad is not None:
        padding = (np.arange(kv_len) < np.reshape(nonpad, (-1, 1)))[:, None, None, :]
        allowed = padding if allowed is None else allowed & padding
    if allowed is None:
        return float_mask
    return float_mask + np.where(allowed, dtype.type(0), dtype.type(-np.inf))


def guarded_softmax(logits, no_key):
    """Softmax over the keys; a row with no key allowed (`no_key`) is all zeros, not NaN."""
    top = logits.max(axis=-1, keepdims=True)
    e = np.exp(logits - np.where(np.isneginf(top), 0, top))
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)
    return np.where(no_key, logits.dtype.type(0), p)


def expand_kv(x, reps: int):
    """Each key/value head repeated for the reps query heads that share it (grouped-query attention)."""
    return x if reps == 1 else np.repeat(x, reps, axis=1)


def fold_kv(grad, reps: int):
    """The gradient of expand_kv: the query heads' shares summed back onto the key/value head they share."""
    if reps == 1:
        return grad
    b, h, s, d = grad.shape
    return grad.reshape(b, h // reps, reps, s, d).sum(axis=2)


QK_MODES = ("the raw scores Q·Kᵀ·scale", "after softcap", "after softcap and the mask", "the softmax")


@register_op("Attention")
class Attention(Operation):
    """softmax(Q·Kᵀ·scale + mask)·V per head (grouped-query when K, V have fewer heads), with an optional
    causal or sliding window, soft cap and key/value cache"""

    symbol = "attention"
    outputs = ("Y", "present_key", "present_value", "qk_matmul_output")

    @staticmethod
    def forward(ctx, Q, K, V, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *,
                is_causal: int = 0, kv_num_heads: int = 0, q_num_heads: int = 0, qk_matmul_output_mode: int = 0,
                scale: float = None, softcap: float = 0.0, softmax_precision: int = None,
                left_window_size: int = -1, right_window_size: int = -1):
        if (past_key is None) != (past_value is None):
            raise CgError("Attention needs past_key and past_value together, or neither")
        if not 0 <= qk_matmul_output_mode < len(QK_MODES):
            raise CgError(f"expected qk_matmul_output_mode 0 to 3, found {qk_matmul_output_mode}")
        if softmax_precision is not None and softmax_precision not in FLOAT_TYPES:
            raise CgError(f"expected softmax_precision among {described(FLOAT_TYPES)}, found {softmax_precision}")
        q = split_heads(Q, q_num_heads, "Q")
        k, v = (split_heads(x, kv_num_heads, name) for x, name in ((K, "K"), (V, "V")))
        present_key = k if past_key is None else np.concatenate([past_key, k], axis=2)
        present_value = v if past_value is None else np.concatenate([past_value, v], axis=2)
        (_, heads, q_len, size), (kv_heads, kv_len) = q.shape, present_key.shape[1:3]
        if heads % kv_heads or present_value.shape[1] != kv_heads:
            raise CgError(f"Attention expected the query's heads ({heads}) a multiple of the key's and value's "
                          f"({kv_heads}, {present_value.shape[1]})")
        nonpad = None if nonpad_kv_seqlen is None else np.asarray(nonpad_kv_seqlen, np.int64).reshape(-1)
        offset = past_key.shape[2] if past_key is not None else 0 if nonpad is None else nonpad - q_len
        allowed = allowed_keys(q_len, kv_len, offset, is_causal, left_window_size, right_window_size)
        bias = attention_bias(attn_mask, kv_len, allowed, nonpad, q.dtype)
        no_key = np.isneginf(bias.max(axis=-1, keepdims=True)) if bias.ndim else False
        reps, dtype = heads // kv_heads, q.dtype.type
        # Q and K each scaled by √scale, as ONNX specifies (keeps float16 from overflowing)
        root = dtype(np.sqrt(1 / np.sqrt(size) if scale is None else scale))
        keys, values = expand_kv(present_key, reps), expand_kv(present_value, reps)
        raw = (q * root) @ (keys * root).swapaxes(-1, -2)
        capped = softcap * np.tanh(raw / dtype(softcap)) if softcap > 0 else raw
        logits = capped + bias
        if softmax_precision is not None:
            logits = logits.astype(FLOAT_TYPES[softmax_precision])
        p = guarded_softmax(logits, no_key).astype(q.dtype, copy=False)
        y = p @ values
        qk = (raw, capped, logits.astype(q.dtype, copy=False), p)[qk_matmul_output_mode]
        past_len = 0 if past_key is None else past_key.shape[2]
        mask_len = attn_mask.shape[-1] if attn_mask is not None and attn_mask.dtype.kind == "f" else None
        ctx.save(q, keys, values, p, capped, root, softcap, reps, qk_matmul_output_mode, Q.ndim, past_len, mask_len)
        return (merge_heads(y) if Q.ndim == 3 else y), present_key, present_value, qk

    @staticmethod
    def backward(ctx, gy, g_present_key=None, g_present_value=None, g_qk=None):
        q, keys, values, p, capped, root, softcap, reps, mode, rank, past_len, mask_len = ctx
        gy = np.zeros(q.shape[:3] + values.shape[3:], q.dtype) if gy is None else split_heads(gy, q.shape[1], "Y")
        extra = [g_qk if mode == m and g_qk is not None else 0 for m in range(len(QK_MODES))]
        gp = gy @ values.swapaxes(-1, -2) + extra[3]
        g_logits = p * (gp - (gp * p).sum(axis=-1, keepdims=True)) + extra[2]  # masked keys: p = 0, no gradient
        g_capped = g_logits + extra[1]
        g_raw = (g_capped * (1 - (capped / softcap) ** 2) if softcap > 0 else g_capped) + extra[0]
        gq = (g_raw @ keys) * root * root
        gk = fold_kv((g_raw.swapaxes(-1, -2) @ q) * root * root, reps)
        gv = fold_kv(p.swapaxes(-1, -2) @ gy, reps)
        if g_present_key is not None:
            gk = gk + g_present_key
        if g_present_value is not None:
            gv = gv + g_present_value
        g_mask = None if mask_len is None else g_logits[..., :mask_len]  # the engine sums it to the mask's shape
        g_past = (gk[:, :, :past_len], gv[:, :, :past_len]) if past_len else (None, None)
        gk, gv = gk[:, :, past_len:], gv[:, :, past_len:]
        if rank == 3:
            gq, gk, gv = merge_heads(gq), merge_heads(gk), merge_heads(gv)
        return gq, gk, gv, g_mask, *g_past, None


def by_position(x, num_heads: int):
    """X as (batch, sequence, heads, size): a 4-D (batch, heads, sequence, size) transposed, a 3-D
    (batch, sequence, heads·size) split into num_heads heads."""
    if x.ndim == 4:
        return x.transpose(0, 2, 1, 3)
    if x.ndim != 3 or num_heads < 1 or x.shape[2] % num_heads:
        raise CgError(f"RotaryEmbedding expected X of 4 dimensions (batch, heads, sequence, size) or 3 with "
                      f"attribute num_heads dividing the last, found shape {list(x.shape)} and num_heads={num_heads}")
    return x.reshape(*x.shape[:2], num_heads, -1)


def in_shape_of(y, x_shape):
    """The inverse of by_position."""
    return y.transpose(0, 2, 1, 3) if len(x_shape) == 4 else y.reshape(x_shape)


def pair_halves(x, interleaved: int):
    """The two coordinates of each rotated pair: (even, odd) elements if interleaved, else the two halves."""
    if interleaved:
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def paired(first, second, interleaved: int):
    """The inverse of pair_halves."""
    if interleaved:
        return np.stack([first, second], axis=-1).reshape(*first.shape[:-1], -1)
    return np.concatenate([first, second], axis=-1)


@register_op("RotaryEmbedding")
class RotaryEmbedding(Operation):
    """each pair of X's first rotary_embedding_dim features rotated by its position's angle (cos, sin from the
    caches, by position_ids when given): RoPE"""

    symbol = "RoPE"

    @staticmethod
    def forward(ctx, X, cos_cache, sin_cache, position_ids=None, *, interleaved: int = 0, num_heads: int = 0,
                rotary_embedding_dim: int = 0):
        x = by_position(X, num_heads)
        dim = rotary_embedding_dim or x.shape[3]
        cos, sin = (c if position_ids is None else c[position_ids] for c in (cos_cache, sin_cache))
        if cos.shape[-1] != dim // 2 or sin.shape[-1] != dim // 2 or dim % 2 or dim > x.shape[3]:
            raise CgError(f"RotaryEmbedding expected caches of last dimension {dim // 2} (half of rotary_embedding_dim"
                          f" {dim}, even and at most the head size {x.shape[3]}), found cos_cache "
                          f"{list(cos.shape)} and sin_cache {list(sin.shape)}")
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]  # one angle for every head
        x1, x2 = pair_halves(x[..., :dim], interleaved)
        rotated = paired(cos * x1 - sin * x2, sin * x1 + cos * x2, interleaved)
        ctx.save(X.shape, x.shape[2], x1, x2, cos, sin, dim, interleaved, position_ids, cos_cache.shape)
        return in_shape_of(np.concatenate([rotated, x[..., dim:]], axis=-1), X.shape)

    @staticmethod
    def backward(ctx, grad):
        shape, heads, x1, x2, cos, sin, dim, interleaved, position_ids, cache_shape = ctx
        g = by_position(grad, heads)
        g1, g2 = pair_halves(g[..., :dim], interleaved)
        unrotated = paired(cos * g1 + sin * g2, cos * g2 - sin * g1, interleaved)  # the rotation's transpose
        gx = in_shape_of(np.concatenate([unrotated, g[..., dim:]], axis=-1), shape)
        g_cos, g_sin = (g1 * x1 + g2 * x2).sum(axis=2), (g2 * x1 - g1 * x2).sum(axis=2)
        if position_ids is not None:  # each position's angle collects the gradient of every token at it
            g_cos, g_sin = (np.zeros(cache_shape, g.dtype) for _ in "cs")
            np.add.at(g_cos, position_ids, (g1 * x1 + g2 * x2).sum(axis=2))
            np.add.at(g_sin, position_ids, (g2 * x1 - g1 * x2).sum(axis=2))
        return gx, g_cos, g_sin, None


@register_op("SwiGLU")
class SwiGLU(Operation):
    """A·σ(alpha·A)·B: the Swish-gated linear unit of the gate A and the value B"""

    symbol = "SwiGLU"

    @staticmethod
    def forward(ctx, A, B, *, alpha: float = 1.0):
        if A.shape != B.shape:
            raise CgError(f"SwiGLU expected A and B of one shape (no broadcasting), found {list(A.shape)} and "
                          f"{list(B.shape)}")
        with np.errstate(over="ignore"):  # e^-αa overflowing to inf gives σ = 0, as it should
            gate = 1 / (1 + np.exp(-alpha * A))  # ONNX's own formula: float16 rounds as its reference does
        ctx.save(A, B, gate, alpha)
        return A * gate * B

    @staticmethod
    def backward(ctx, grad):
        a, b, gate, alpha = ctx
        return grad * b * gate * (1 + alpha * a * (1 - gate)), grad * a * gate


@register_op("CausalConvWithState")
class CausalConvWithState(Operation):
    """causal depthwise 1-D convolution of input after past_state (zeros when absent), optionally SiLU'd;
    present_state: the last kernel−1 positions, for the next step"""

    symbol = "causal conv"
    outputs = ("output", "present_state")

    @staticmethod
    def forward(ctx, input, weight, bias=None, past_state=None, *,
                activation: Literal["none", "silu", "swish"] = "none"):
        one_float_type(input=input, weight=weight, bias=bias, past_state=past_state)
        if input.ndim != 3 or weight.ndim != 3 or weight.shape[:2] != (input.shape[1], 1):
            raise CgError(f"CausalConvWithState expected input (batch, channels, length) and weight (channels, 1, "
                          f"kernel), found {list(input.shape)} and {list(weight.shape)}")
        (batch, channels, _), k = input.shape, weight.shape[2]
        past = np.zeros((batch, channels, k - 1), input.dtype) if past_state is None else past_state
        if past.shape != (batch, channels, k - 1):
            raise CgError(f"CausalConvWithState expected past_state of shape {[batch, channels, k - 1]}, found "
                          f"{list(past.shape)}")
        padded = np.concatenate([past, input], axis=2)
        windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=2)  # (batch, channels, length, k)
        conv = np.einsum("bctk,ck->bct", windows, weight[:, 0])
        if bias is not None:
            conv = conv + bias[:, None]
        gate = pre = None
        if activation != "none":  # SiLU computed in at least float32, as ONNX's reference does
            pre = conv.astype(np.promote_types(conv.dtype, np.float32))
            gate = 1 / (1 + np.exp(-pre))
            conv = (pre * gate).astype(input.dtype)
        ctx.save(padded, weight, gate, pre, past_state is not None, bias is not None)
        return conv, padded[:, :, padded.shape[2] - (k - 1):]

    @staticmethod
    def backward(ctx, grad, g_present=None):
        padded, weight, gate, pre, has_past, has_bias = ctx
        k = weight.shape[2]
        if grad is None:
            grad = np.zeros(padded.shape[:2] + (padded.shape[2] - k + 1,), padded.dtype)
        elif gate is not None:  # d/dz z·σ(z) = σ(z)·(1 + z·(1 − σ(z)))
            grad = (grad * gate * (1 + pre * (1 - gate))).astype(padded.dtype)
        length = grad.shape[2]
        g_padded = np.zeros_like(padded)
        for j in range(k):  # each kernel tap sends the gradient back to the positions it read
            g_padded[:, :, j:j + length] += grad * weight[None, :, 0, j, None]
        if g_present is not None and k > 1:
            g_padded[:, :, padded.shape[2] - (k - 1):] += g_present
        windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=2)
        g_weight = np.einsum("bct,bctk->ck", grad, windows)[:, None, :]
        g_bias = grad.sum(axis=(0, 2)) if has_bias else None
        g_past = g_padded[:, :, :k - 1] if has_past else None
        return g_padded[:, :, k - 1:], g_weight, g_bias, g_past
