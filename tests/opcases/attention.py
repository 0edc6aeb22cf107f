"""The cases of the attention family: Attention (against torch's scaled_dot_product_attention where its options
map, against the same formula written in torch otherwise), RotaryEmbedding and SwiGLU.

Q, K and V are 4-D (batch, heads, sequence, size) unless a case says 3-D (batch, sequence, heads × size).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import SKIP, Case, Const, case, randn

CASES: list[Case] = []


def heads(x, n):
    """(batch, seq, n·size) -> (batch, n, seq, size)"""
    return x.reshape(x.shape[0], x.shape[1], n, -1).transpose(1, 2)


def merged(y):
    return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)


def sdpa(**options):
    return lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, mask, **options)


def sdpa_3d(q_heads, kv_heads, **options):
    return lambda q, k, v: merged(F.scaled_dot_product_attention(
        heads(q, q_heads), heads(k, kv_heads), heads(v, kv_heads), enable_gqa=q_heads != kv_heads, **options))


def written_out(softcap=0.0, scale=None, allowed=None):
    """softmax(softcap·tanh(Q·Kᵀ·scale / softcap) + mask)·V, and rows with no key allowed zero."""
    def fn(q, k, v, mask=None):
        s = (q @ k.transpose(-1, -2)) * (scale or q.shape[-1] ** -0.5)
        if softcap:
            s = softcap * torch.tanh(s / softcap)
        if mask is not None:
            s = s + mask
        if allowed is not None:
            s = s.masked_fill(~torch.from_numpy(allowed), float("-inf"))
        p = torch.softmax(s, -1)
        return torch.nan_to_num(p, nan=0.0) @ v

    return fn


def with_past(output):
    def fn(q, k, v, mask, past_k, past_v):
        keys, values = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        return (F.scaled_dot_product_attention(q, keys, values, mask), keys, values)[output]

    return fn


WINDOW = np.array([[j - i <= 0 and i - j <= 1 for j in range(4)] for i in range(4)])  # causal, left window 1
NO_KEY_ROW = np.array([[True, False, True, True], [False] * 4, [True] * 4])  # query 1 sees no key

CASES += [
    case("Attention-4d", [randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 3)], sdpa()),
    case("Attention-4d-causal", [randn(1, 2, 4, 3), randn(1, 2, 4, 3), randn(1, 2, 4, 2)], sdpa(is_causal=True),
         is_causal=1),
    case("Attention-4d-scaled", [randn(1, 2, 3, 4), randn(1, 2, 3, 4), randn(1, 2, 3, 4)], sdpa(scale=0.3),
         scale=0.3),
    case("Attention-4d-float-mask", [randn(2, 1, 3, 4), randn(2, 1, 4, 4), randn(2, 1, 4, 2), randn(3, 4)],
         sdpa()),
    case("Attention-4d-bool-mask", [randn(1, 2, 3, 2), randn(1, 2, 4, 2), randn(1, 2, 4, 3),
                                    Const(np.array([[True, False, True, True]] * 3))], sdpa()),
    case("Attention-4d-gqa", [randn(1, 4, 3, 2), randn(1, 2, 3, 2), randn(1, 2, 3, 3)], sdpa(enable_gqa=True)),
    case("Attention-3d-gqa-causal", [randn(2, 3, 8), randn(2, 3, 4), randn(2, 3, 6)],
         sdpa_3d(4, 2, is_causal=True), q_num_heads=4, kv_num_heads=2, is_causal=1),
    case("Attention-3d-mha", [randn(1, 2, 6), randn(1, 4, 6), randn(1, 4, 4)], sdpa_3d(2, 2), q_num_heads=2,
         kv_num_heads=2),
    case("Attention-4d-softcap-float-mask", [randn(1, 2, 3, 4), randn(1, 2, 4, 4), randn(1, 2, 4, 2),
                                             randn(1, 3, 4)], written_out(softcap=0.8), softcap=0.8),
    case("Attention-4d-window", [randn(1, 1, 4, 3), randn(1, 1, 4, 3), randn(1, 1, 4, 2)],
         written_out(allowed=WINDOW), is_causal=1, left_window_size=1),
    case("Attention-4d-row-with-no-key", [randn(1, 2, 3, 2), randn(1, 2, 4, 2), randn(1, 2, 4, 2),
                                          Const(NO_KEY_ROW)], written_out(allowed=NO_KEY_ROW)),
    Case("Attention-4d-past-Y", "Attention", [randn(1, 2, 2, 3), randn(1, 2, 2, 3), randn(1, 2, 2, 2), randn(2, 5),
                                              randn(1, 2, 3, 3), randn(1, 2, 3, 2)], with_past(0)),
    Case("Attention-4d-past-present-key", "Attention", [randn(1, 2, 2, 3), randn(1, 2, 2, 3), randn(1, 2, 2, 2),
                                                        SKIP, randn(1, 2, 3, 3), randn(1, 2, 3, 2)],
         with_past(1), output=1, n_outputs=2),
]


def rope(interleaved=False, dim=None, num_heads=None):
    """RoPE written as Llama's rotate_half (or, interleaved, as GPT-J's pairs), on (batch, seq, heads, size)."""
    def fn(x, cos, sin, positions=None):
        if positions is not None:
            cos, sin = cos[positions], sin[positions]
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        xs = x.transpose(1, 2) if num_heads is None else x.reshape(*x.shape[:2], num_heads, -1)
        r = xs[..., :dim]
        if interleaved:
            even, odd = r[..., 0::2], r[..., 1::2]
            r = torch.stack([even * cos - odd * sin, odd * cos + even * sin], -1).flatten(-2)
        else:
            first, second = r.chunk(2, -1)
            r = r * torch.cat([cos, cos], -1) + torch.cat([-second, first], -1) * torch.cat([sin, sin], -1)
        y = torch.cat([r, xs[..., r.shape[-1]:]], -1)
        return y.transpose(1, 2) if num_heads is None else y.reshape(x.shape)

    return fn


def positions(values):
    return Const(values, np.int64)


CASES += [
    # position 1 is used twice: its cache rows collect both tokens' gradients
    case("RotaryEmbedding-4d-positions", [randn(2, 2, 3, 4), randn(5, 2), randn(5, 2),
                                          positions([[0, 1, 2], [1, 4, 1]])], rope()),
    case("RotaryEmbedding-4d-interleaved-positions", [randn(1, 3, 2, 6), randn(4, 3), randn(4, 3),
                                                      positions([[3, 0]])], rope(interleaved=True), interleaved=1),
    case("RotaryEmbedding-3d-partial", [randn(2, 3, 12), randn(2, 3, 2), randn(2, 3, 2)],
         rope(dim=4, num_heads=2), num_heads=2, rotary_embedding_dim=4),
    case("RotaryEmbedding-3d-interleaved-partial", [randn(1, 2, 8), randn(4, 1), randn(4, 1), positions([[2, 3]])],
         rope(interleaved=True, dim=2, num_heads=2), num_heads=2, rotary_embedding_dim=2, interleaved=1),
    case("SwiGLU-default", [randn(3, 4), randn(3, 4)], lambda a, b: F.silu(a) * b),
    case("SwiGLU-alpha", [randn(2, 5) * 3, randn(2, 5)], lambda a, b: a * torch.sigmoid(1.702 * a) * b, alpha=1.702),
]


def causal_conv(silu=False, output=0):
    def fn(x, w, b=None, past=None):
        k = w.shape[2]
        padded = torch.cat([torch.zeros(*x.shape[:2], k - 1, dtype=x.dtype) if past is None else past, x], 2)
        y = F.conv1d(padded, w, b, groups=x.shape[1])
        return (F.silu(y) if silu else y, padded[:, :, padded.shape[2] - k + 1:])[output]

    return fn


CASES += [
    case("CausalConvWithState-no-past", [randn(2, 3, 5), randn(3, 1, 3)], causal_conv()),
    case("CausalConvWithState-bias-past", [randn(2, 3, 4), randn(3, 1, 3), randn(3), randn(2, 3, 2)], causal_conv()),
    case("CausalConvWithState-silu-past", [randn(1, 2, 4), randn(2, 1, 4), randn(2), randn(1, 2, 3)],
         causal_conv(silu=True), activation="silu"),
    Case("CausalConvWithState-present-state", "CausalConvWithState",
         [randn(1, 2, 2), randn(2, 1, 4), SKIP, randn(1, 2, 3)], causal_conv(output=1), output=1, n_outputs=2),
]

TORCH_ONLY_CASES: list[Case] = []
NON_FLOAT_OPS: set[str] = set()

FLOAT32_CASES = ["Attention-3d-gqa-causal", "Attention-4d-softcap-float-mask", "RotaryEmbedding-4d-positions",
                 "SwiGLU-alpha"]
