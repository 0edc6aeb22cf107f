"""Losses: a scalar to start backward from (or per-element losses with reduction="none")."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise CgError(f"expected reduction to be one of {', '.join(REDUCTIONS)}, found {reduction!r}")


def reduce_loss(per_element, reduction, denominator):
    if reduction == "none":
        return per_element
    total = per_element.sum()
    return np.asarray(total if reduction == "sum" else total / denominator, per_element.dtype)


@register_op("SoftmaxCrossEntropyLoss")
class SoftmaxCrossEntropyLoss(Operation):
    """−log softmax(scores)[label], weighted, over a batch (scores N×C×…, labels N×… integers)"""

    @staticmethod
    def forward(ctx, scores, labels, weights=None, *, reduction: str = "mean", ignore_index: int = None):
        check_reduction(reduction)
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        labels = np.asarray(labels, np.int64)
        kept = np.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
        safe = np.where(kept, labels, 0)
        # weights in the scores' dtype: a float64 weights constant must not turn a float32 loss into float64
        w = np.ones(labels.shape, scores.dtype) if weights is None else weights[safe].astype(scores.dtype)
        w = w * kept
        picked = np.take_along_axis(log_prob, safe[:, None], axis=1)[:, 0]
        denominator = w.sum()
        ctx.save(log_prob, safe, w, reduction, denominator)
        return reduce_loss(-picked * w, reduction, denominator), log_prob

    @staticmethod
    def backward(ctx, grad, grad_log_prob=None):
        log_prob, safe, w, reduction, denominator = ctx
        prob = np.exp(log_prob)
        if reduction == "mean" and grad is not None:  # None when only log_prob is used downstream
            grad = grad / denominator
        onehot = np.zeros_like(log_prob)
        np.put_along_axis(onehot, safe[:, None], 1, axis=1)
        gscores = np.zeros_like(log_prob)
        if grad is not None:
            gscores += (prob - onehot) * np.expand_dims(grad * w, 1)
        if grad_log_prob is not None:
            gscores += grad_log_prob - prob * grad_log_prob.sum(axis=1, keepdims=True)
        return gscores, None, None


@register_op("MSELoss")
class MSELoss(Operation):
    """mean of (input − target)² (or its sum, or per element)"""

    @staticmethod
    def forward(ctx, input, target, *, reduction: str = "mean"):
        check_reduction(reduction)
        diff = input - target
        ctx.save(diff, reduction)
        return reduce_loss(diff * diff, reduction, diff.size)

    @staticmethod
    def backward(ctx, grad):
        diff, reduction = ctx
        g = 2 * diff * (grad / diff.size if reduction == "mean" else grad)
        return g, -g
