"""Losses: a scalar to start backward from (or per-element losses with reduction="none")."""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op
from cgtools.ops.nn import log_softmax

Reduction = Literal["mean", "sum", "none"]  # of the per-element losses: their mean, their sum, or them


def reduce_loss(per_element, reduction, denominator):
    if reduction == "none":
        return per_element
    total = per_element.sum()
    return np.asarray(total if reduction == "sum" else total / denominator, per_element.dtype)


def check_labels(scores, labels, weights, ignore_index):
    """Labels as ONNX wants them: one class per score vector (N×… for scores N×C×…), each in [0, C) unless ignored;
    weights one per class."""
    if scores.ndim < 2 or labels.shape != scores.shape[:1] + scores.shape[2:]:
        raise CgError(f"expected scores of shape N×C×… and labels of shape N×…, found scores of shape "
                      f"{list(scores.shape)} and labels of shape {list(labels.shape)}")
    classes = scores.shape[1]
    if weights is not None and weights.shape != (classes,):
        raise CgError(f"expected weights of shape [{classes}] (one per class), found {list(weights.shape)}")
    wrong = (labels < 0) | (labels >= classes)
    if ignore_index is not None:
        wrong &= labels != ignore_index
    if wrong.any():
        raise CgError(f"expected labels in [0, {classes - 1}] (the classes of the scores), found {labels[wrong][0]}")


def picked_losses(log_prob, labels, weights, ignore_index):
    """−log_prob at each label, weighted: the per-element losses, where they were picked (an index into log_prob),
    their weights (0 where the label is ignored; None when all are 1) and the mean's denominator."""
    labels = np.asarray(labels, np.int64)
    check_labels(log_prob, labels, weights, ignore_index)
    kept = None if ignore_index is None else labels != ignore_index
    if kept is not None:
        labels = np.where(kept, labels, 0)  # any valid class; its weight is zeroed below
    w = None if weights is None else weights[labels].astype(log_prob.dtype)
    if kept is not None:
        w = kept.astype(log_prob.dtype) if w is None else w * kept
    grid = (np.arange(len(labels)),) if labels.ndim == 1 else np.indices(labels.shape, sparse=True)
    at_label = (grid[0], labels, *grid[1:])  # indexes log_prob[n, labels[n, …], …]
    nll = -log_prob[at_label]
    if w is not None:
        nll *= w
    return nll, at_label, w, nll.size if w is None else w.sum()


def picked_grad(grad, w, reduction, denominator):
    """The gradient of each per-element loss, from the reduced loss's."""
    if reduction == "mean":
        grad = grad / denominator
    return grad if w is None else grad * w


class _Loss(Operation):
    """A loss reduced by its `reduction`: its formulas end in "{mean}", the division by the count of what is
    averaged (`count`) for reduction "mean" and nothing otherwise."""

    count = "N"  # the batch items the mean is over

    @classmethod
    def local_gradient(cls, slot, terms, constants):
        mean = "/" + cls.count.format_map(terms) if terms["reduction"] == "mean" else ""
        return super().local_gradient(slot, {**terms, "mean": mean}, constants)


@register_op("SoftmaxCrossEntropyLoss")
class SoftmaxCrossEntropyLoss(_Loss):
    """−log softmax(scores)[label], weighted, over a batch (scores N×C×…, labels N×… integers)"""

    symbol = "cross-entropy"
    outputs = ("output", "log_prob")
    local_gradients = ("(softmax({scores}) − onehot({labels}))·{up}{mean}", None, None)

    @staticmethod
    def forward(ctx, scores, labels, weights=None, *, reduction: Reduction = "mean", ignore_index: int = None):
        log_prob = log_softmax(scores, axis=1)
        nll, at_label, w, denominator = picked_losses(log_prob, labels, weights, ignore_index)
        ctx.save(log_prob, at_label, w, reduction, denominator)
        return reduce_loss(nll, reduction, denominator), log_prob

    @staticmethod
    def backward(ctx, grad, grad_log_prob=None):
        log_prob, at_label, w, reduction, denominator = ctx
        prob = np.exp(log_prob)
        if grad is None:  # only log_prob is used downstream
            gscores = np.zeros_like(log_prob)
        else:
            grad = picked_grad(grad, w, reduction, denominator)
            # d(−log softmax[label])/d scores = softmax − onehot(label)
            gscores = prob if grad_log_prob is None else prob.copy()
            gscores[at_label] -= 1
            gscores *= np.expand_dims(grad, 1) if np.ndim(grad) else grad
        if grad_log_prob is not None:
            gscores += grad_log_prob - prob * grad_log_prob.sum(axis=1, keepdims=True)
        return gscores, None, None


@register_op("NegativeLogLikelihoodLoss")
class NegativeLogLikelihoodLoss(_Loss):
    """−input[label], weighted, over a batch (input N×C×…: log-probabilities, labels N×… integers)"""

    symbol = "NLL"
    local_gradients = ("−onehot({target})·{up}{mean}", None, None)

    @staticmethod
    def forward(ctx, input, target, weight=None, *, reduction: Reduction = "mean", ignore_index: int = None):
        nll, at_label, w, denominator = picked_losses(input, target, weight, ignore_index)
        ctx.save(input.shape, at_label, w, reduction, denominator)
        return reduce_loss(nll, reduction, denominator)

    @staticmethod
    def backward(ctx, grad):
        shape, at_label, w, reduction, denominator = ctx
        grad = picked_grad(grad, w, reduction, denominator)
        ginput = np.zeros(shape, np.result_type(grad))
        ginput[at_label] = -grad  # each label picks one element (its weight and reduction already applied)
        return ginput, None, None


@register_op("MSELoss")
class MSELoss(_Loss):
    """mean of (input − target)² (or its sum, or per element)"""

    symbol = "MSE"
    local_gradients = ("2({input} − {target})·{up}{mean}", "−2({input} − {target})·{up}{mean}")
    count = "{n}"  # every element

    @staticmethod
    def forward(ctx, input, target, *, reduction: Reduction = "mean"):
        diff = input - target
        ctx.save(diff, reduction)
        return reduce_loss(diff * diff, reduction, diff.size)

    @staticmethod
    def backward(ctx, grad):
        diff, reduction = ctx
        g = 2 * diff * (grad / diff.size if reduction == "mean" else grad)
        return g, -g
