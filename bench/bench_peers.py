"""Real models against their peers, side by side in one process: cgtools' forward against onnxruntime's, and
cgtools' forward + backward against PyTorch eager's, at 1 and at 2 threads.

    python bench/bench_peers.py [--repeat N] [--models a,b,...] [--threads 1,2] [--image SIDE]

The models are exported from torchvision and PyTorch as the tests export them (tests/models.py), batch 1 at
224×224 for the image models; the GPT-style block is the tests'. cgtools runs its compiled plan (warmed up) with
the BLAS limited to the thread count; onnxruntime runs a session per thread count (intra- and inter-op threads
set); PyTorch runs `torch.set_num_threads`. Backward starts from an upstream gradient of ones on the output;
PyTorch differentiates its params and the input, cgtools every float tensor. Each model's cgtools forward is
checked against onnxruntime's before timing. Targets: forward ≤ 3× onnxruntime for every model and a geometric
mean ≤ 2×; forward + backward ≤ 1.3× PyTorch for every model and a geometric mean ≤ 1.0×.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import median_times, record

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet18", "mobilenet_v2", "efficientnet_b0", "densenet121", "convnext_tiny", "swin_t", "vgg11",
          "gpt_block")
IMAGE_MODELS = set(MODELS) - {"gpt_block"}
WHAT = {"fwd": "forward", "f+b": "forward + backward"}
PEERS = {"fwd": ("onnxruntime", 3.0), "f+b": ("PyTorch eager", 1.3)}  # the peer, and the most cgtools may take
MEAN_TARGETS = {"fwd": ("onnxruntime", 2.0), "f+b": ("PyTorch eager", 1.0)}


def exported(name: str, folder: Path, side: int):
    sys.path.insert(0, str(ROOT / "tests"))
    from models import export

    return export(name, folder, shape=(1, 3, side, side) if name in IMAGE_MODELS else None)


def contenders(model, threads: int):
    """The three runs of one model at one thread count, each a function of no arguments."""
    import onnxruntime as ort
    import torch

    import cgtools
    from cgtools import threads as policy

    graph = cgtools.load(model.path)
    feed = {"x": model.x.numpy()}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
    expected = session.run(None, feed)[0]
    got = graph.run(feed, backward=False).values["y"]
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise SystemExit(f"{model.name}: cgtools' forward differs from onnxruntime's "
                         f"(max abs {np.max(np.abs(got - expected)):.3g})")
    x = model.x.clone().requires_grad_(True)

    def ours(backward):
        def run():
            policy.use_threads(threads)
            graph.run(feed, backward=backward, seed=np.ones_like if backward else None)
        return run

    def torch_forward_backward():
        torch.set_num_threads(threads)
        model.model.zero_grad(set_to_none=True)
        y = model.model(x)
        y.backward(torch.ones_like(y))

    def onnxruntime_forward():
        session.run(None, feed)

    return ours(False), onnxruntime_forward, ours(True), torch_forward_backward


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def geometric_mean(ratios: list[float]) -> float:
    return math.exp(sum(map(math.log, ratios)) / len(ratios))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--image", type=int, default=224, help="side of the image models' input")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    names = [n.strip() for n in args.models.split(",")]
    header = "".join(f"  {'fwd/ort ' + str(n) + 't':>13}{'':7}{'f+b/torch ' + str(n) + 't':>13}{'':7}"
                     for n in counts)
    print(f"{'model':<16}{header}   (median of {args.repeat}; times in ms as ours/theirs)")
    ratios = {(kind, n): [] for kind in ("fwd", "f+b") for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = exported(name, Path(tmp), args.image)
            row = f"{name:<16}"
            for n in counts:
                times = median_times(args.repeat, *contenders(model, n))
                for kind, (ours, theirs) in (("fwd", times[:2]), ("f+b", times[2:])):
                    ratios[kind, n].append(ours / theirs)
                    row += f"  {ours / theirs:5.2f}× {ms(ours):>6}/{ms(theirs):<6}"
                    peer, limit = PEERS[kind]
                    record(f"{name} {WHAT[kind]}, {n} thread{'s' * (n > 1)}", ours, peer=peer, theirs=theirs,
                           target=f"≤ {limit}×", met=ours / theirs <= limit)
            print(row, flush=True)
    for (kind, n), values in ratios.items():
        peer, limit = MEAN_TARGETS[kind]
        mean = geometric_mean(values)
        record(f"geometric mean of {len(values)} models, {WHAT[kind]}, {n} thread{'s' * (n > 1)}", mean,
               unit="× " + peer, target=f"≤ {limit}×", met=mean <= limit)
    print(f"{'geometric mean':<16}" + "".join(
        f"  {geometric_mean(ratios['fwd', n]):5.2f}×{'':14}{geometric_mean(ratios['f+b', n]):5.2f}×{'':14}"
        for n in counts))


if __name__ == "__main__":
    main()
