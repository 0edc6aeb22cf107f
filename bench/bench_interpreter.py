"""Interpreter speed against hand-written numpy and PyTorch eager, measured side by side in one process.

    python bench/bench_interpreter.py [--repeat N]

Prints medians of repeated runs and the ratios the README quotes. Every contender computes the same
thing: the forward values and the gradient of the loss with respect to every float tensor. cgtools is
measured in its steady state (a plan is compiled once interpreting it has cost what compiling would) and,
for the chain, also interpreted, as its first runs go.
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import median_times, record

import cgtools
from cgtools.compiled import NEVER_COMPILE
from cgtools.interpreter import plan_of

CHAIN_OPS = ("Add", "Mul", "Tanh", "Sigmoid")


# ---- a 2,000-op chain on shape (8,) -----------------------------------------------------------
def chain_graph(n: int, rng) -> tuple[cgtools.Graph, np.ndarray, list]:
    x = rng.uniform(-1, 1, 8)
    params, nodes, prev = [], [], "x"
    for k in range(n):
        op = CHAIN_OPS[k % 4]
        out = f"t{k}"
        if op in ("Add", "Mul"):
            p = rng.uniform(0.5, 1.5, 8)
            params.append({"name": f"p{k}", "value": p.tolist()})
            nodes.append({"op": op, "inputs": [prev, f"p{k}"], "outputs": [out]})
        else:
            nodes.append({"op": op, "inputs": [prev], "outputs": [out]})
        prev = out
    nodes.append({"op": "ReduceSum", "inputs": [prev], "outputs": ["loss"], "attrs": {"keepdims": 0}})
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": x.tolist()}], "params": params,
                          "nodes": nodes, "outputs": ["loss"]})
    return graph, x, [np.array(p["value"]) for p in params]


def chain_numpy(x, params):
    """The chain as one would write it by hand: keep what backward needs, then walk back."""
    saved, t, it = [], x, iter(params)
    for k in range(len(CHAIN_OPS) * (len(params) // 2)):
        op = CHAIN_OPS[k % 4]
        if op == "Add":
            t = t + next(it)
            saved.append(None)
        elif op == "Mul":
            p = next(it)
            saved.append((t, p))
            t = t * p
        elif op == "Tanh":
            t = np.tanh(t)
            saved.append(t)
        else:
            t = 1 / (1 + np.exp(-t))
            saved.append(t)
    loss = t.sum()
    g, grads = np.ones_like(t), []
    for k in reversed(range(len(saved))):
        op, s = CHAIN_OPS[k % 4], saved[k]
        if op == "Add":
            grads.append(g)
        elif op == "Mul":
            grads.append(g * s[0])
            g = g * s[1]
        elif op == "Tanh":
            g = g * (1 - s * s)
        else:
            g = g * s * (1 - s)
    return loss, g, grads


def chain_torch(torch, x, params):
    xt = torch.tensor(x, requires_grad=True)
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    t, it = xt, iter(ps)
    for k in range(len(CHAIN_OPS) * (len(params) // 2)):
        op = CHAIN_OPS[k % 4]
        t = t + next(it) if op == "Add" else t * next(it) if op == "Mul" else torch.tanh(t) if op == "Tanh" \
            else torch.sigmoid(t)
    t.sum().backward()
    return xt.grad


# ---- an MLP 784-256-256-10, batch 64, float32 -------------------------------------------------
def mlp_graph(rng):
    f32 = np.float32
    X = rng.normal(0, 1, (64, 784)).astype(f32)
    labels = rng.integers(0, 10, 64)
    weights = {"W1": rng.normal(0, 0.05, (784, 256)), "b1": np.zeros(256), "W2": rng.normal(0, 0.06, (256, 256)),
               "b2": np.zeros(256), "W3": rng.normal(0, 0.06, (256, 10)), "b3": np.zeros(10)}
    weights = {k: v.astype(f32) for k, v in weights.items()}
    nodes, prev = [], "X"
    for layer in (1, 2, 3):
        nodes.append({"op": "MatMul", "inputs": [prev, f"W{layer}"], "outputs": [f"m{layer}"]})
        nodes.append({"op": "Add", "inputs": [f"m{layer}", f"b{layer}"], "outputs": [f"z{layer}"]})
        if layer < 3:
            nodes.append({"op": "Relu", "inputs": [f"z{layer}"], "outputs": [f"h{layer}"]})
            prev = f"h{layer}"
    nodes.append({"op": "SoftmaxCrossEntropyLoss", "inputs": ["z3", "labels"], "outputs": ["loss"]})
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "X", "dtype": "float32"},
                                                       {"name": "labels", "dtype": "int64"}],
                          "params": [{"name": k, "value": {"dtype": "float32", "shape": list(v.shape),
                                                           "data": v.ravel().tolist()}} for k, v in weights.items()],
                          "nodes": nodes, "outputs": ["loss"]})
    return graph, X, labels, weights


def mlp_numpy(X, labels, w):
    """Forward and backward by hand, gradients for the same tensors the interpreter returns."""
    z1 = X @ w["W1"] + w["b1"]
    h1 = np.maximum(z1, 0)
    z2 = h1 @ w["W2"] + w["b2"]
    h2 = np.maximum(z2, 0)
    z3 = h2 @ w["W3"] + w["b3"]
    shifted = z3 - z3.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -logp[np.arange(n), labels].mean()
    gz3 = np.exp(logp)
    gz3[np.arange(n), labels] -= 1
    gz3 /= n
    gW3, gb3, gh2 = h2.T @ gz3, gz3.sum(0), gz3 @ w["W3"].T
    gz2 = gh2 * (z2 > 0)
    gW2, gb2, gh1 = h1.T @ gz2, gz2.sum(0), gz2 @ w["W2"].T
    gz1 = gh1 * (z1 > 0)
    gW1, gb1, gX = X.T @ gz1, gz1.sum(0), gz1 @ w["W1"].T
    return loss, (gW1, gb1, gW2, gb2, gW3, gb3, gX)


def steady_state(graph, feed=None) -> int:
    """Run a graph until its plan is compiled, as a training loop's or a sweep's runs are; returns how many runs
    that took."""
    runs = 0
    while (plan := plan_of(graph)).compiled_forward is None or \
            not all(flow.compiled_backward for flow in plan.flows.values()):
        graph.run(feed)
        runs += 1
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=51)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None

    graph, x, params = chain_graph(2000, rng)
    runs = steady_state(graph)
    # Pairs, each against the same hand-written baseline: a PyTorch run between two of ours would evict
    # the caches our next run starts from.
    ours, hand = median_times(args.repeat, lambda: graph.run(), lambda: chain_numpy(x, params))
    run = graph.run()
    _, gx, _ = chain_numpy(x, params)
    assert np.allclose(run.grads["x"], gx), "chain gradients disagree with the hand-written version"
    print(f"chain 2000 ops (8,) fwd+bwd: cgtools {ours * 1e3:.2f} ms, numpy by hand {hand * 1e3:.2f} ms"
          f" -> {ours / hand:.2f}x hand numpy (target <= 1.5x)")
    record("chain of 2,000 ops on (8,), forward + backward", ours, peer="hand numpy", theirs=hand, target="≤ 1.5×",
           met=ours / hand <= 1.5)
    interpreted = chain_graph(2000, np.random.default_rng(0))[0]
    plan_of(interpreted, NEVER_COMPILE)
    first, hand_again = median_times(args.repeat, lambda: interpreted.run(), lambda: chain_numpy(x, params))
    print(f"  its first runs, interpreted: {first * 1e3:.2f} ms -> {first / hand_again:.2f}x hand numpy; compiled "
          f"after {runs} runs")

    mlp, X, labels, w = mlp_graph(rng)
    feed = {"X": X, "labels": labels}
    steady_state(mlp, feed)
    # a run is ~1 ms: more of them, so a few slow moments of a shared machine move the median less
    mlp_ours, mlp_hand = median_times(5 * args.repeat, lambda: mlp.run(feed), lambda: mlp_numpy(X, labels, w))
    loss, hand_grads = mlp_numpy(X, labels, w)
    run = mlp.run(feed)
    assert np.allclose(run.values["loss"], loss, rtol=1e-4) and np.allclose(run.grads["W1"], hand_grads[0], atol=1e-6)
    assert run.grads["W1"].dtype == np.float32
    print(f"MLP 784-256-256-10 batch 64 float32 fwd+bwd: cgtools {mlp_ours * 1e3:.2f} ms, numpy by hand "
          f"{mlp_hand * 1e3:.2f} ms -> {mlp_ours / mlp_hand:.2f}x hand numpy (target <= 1.1x)")
    record("MLP 784-256-256-10, batch 64, forward + backward", mlp_ours, peer="hand numpy", theirs=mlp_hand,
           target="≤ 1.1×", met=mlp_ours / mlp_hand <= 1.1)

    # PyTorch last: its thread pools stay awake a while after it runs, and would slow what came next.
    if torch is not None:
        eager, hand_again = median_times(args.repeat, lambda: chain_torch(torch, x, params),
                                         lambda: chain_numpy(x, params))
        print(f"chain under PyTorch eager {eager * 1e3:.2f} ms -> {eager / hand_again:.2f}x hand numpy; cgtools is "
              f"{eager / hand_again / (ours / hand):.2f}x faster than PyTorch eager")
        record("chain of 2,000 ops on (8,), forward + backward", ours / hand, unit="× hand numpy",
               peer="PyTorch eager", theirs=eager / hand_again)

if __name__ == "__main__":
    main()
