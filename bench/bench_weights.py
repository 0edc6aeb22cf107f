"""A model with 1 GiB of external-data weights: the wall time and peak resident memory of `cgtools info`,
`validate`, `render --no-values` and `run --no-backward` on it, each in its own process.

    python bench/bench_weights.py [--gib 1.0] [--width 4096] [--cgtools PATH] [--keep DIR]

The model is a chain of MatMul and Tanh layers whose float32 weights (width × width each) add up to --gib GiB,
written into a temporary folder as one external-data file, a layer at a time (the generator never holds more than
one layer). Targets (issue 14): info and render --no-values ≤ 3 s and ≤ 300 MB resident; run's resident memory
≤ (weights + activations) × 1.2. --cgtools runs another installation's command (main's, for a before/after).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import record

MiB = 2**20


def write_model(folder: Path, layers: int, width: int) -> Path:
    """model.onnx and its weights.bin in `folder`: x [1, width] → (MatMul, Tanh) × layers → y."""
    import onnx
    from onnx import TensorProto, helper

    rng, offset, initializers, nodes, previous = np.random.default_rng(0), 0, [], [], "x"
    with open(folder / "weights.bin", "wb") as f:
        for i in range(layers):
            weight = (rng.standard_normal((width, width), dtype=np.float32) / np.sqrt(width)).astype("<f4")
            f.write(weight.tobytes())
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[width, width])
            for key, value in (("location", "weights.bin"), ("offset", offset), ("length", weight.nbytes)):
                tensor.external_data.add(key=key, value=str(value))
            tensor.data_location = TensorProto.EXTERNAL
            initializers.append(tensor)
            offset += weight.nbytes
            nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"h{i}"], name=f"matmul{i}"),
                      helper.make_node("Tanh", [f"h{i}"], [f"t{i}" if i < layers - 1 else "y"], name=f"tanh{i}")]
            previous = f"t{i}"
    graph = helper.make_graph(nodes, "big_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    onnx.save_model(model, str(path))
    return path


# Linux counts the memory of the process a child was spawned from in the child's peak: each command is spawned
# from a fresh, small interpreter, not from this one (which wrote the model).
PEAK = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "_, status, usage = os.wait4(child.pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


def measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one command, which must succeed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    code, kib = map(int, done.stdout.split() or (1, 0))
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr}")
    return seconds, kib / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--cgtools", default=str(Path(sys.executable).with_name("cgtools")))  # as installed
    parser.add_argument("--keep", metavar="DIR", help="Write the model into DIR (kept; reused when it is there).")
    args = parser.parse_args()
    layers = max(1, round(args.gib * 2**30 / (4 * args.width**2)))
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cgtools-weights-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.onnx"
        if not path.exists():
            write_model(folder, layers, args.width)
        weights = (folder / "weights.bin").stat().st_size / MiB
        print(f"{layers} layers of {args.width}×{args.width} float32: {weights:,.0f} MiB of weights")
        print(f"{'command':<32} {'seconds':>8} {'peak MiB':>9}  target")
        svg = str(folder / "model.svg")
        for words, command, target in (
                ("info", ["info", str(path)], "≤ 3 s, ≤ 300 MB"),
                ("validate", ["validate", str(path)], ""),
                ("render --no-values -o x.svg", ["render", str(path), "--no-values", "-o", svg], "≤ 3 s, ≤ 300 MB"),
                ("run --no-backward", ["run", str(path), "--no-backward", "--random-inputs"],
                 f"≤ {weights * 1.2:,.0f} MiB (weights × 1.2)")):
            seconds, peak = measured([args.cgtools, *command])
            print(f"{words:<32} {seconds:>8.2f} {peak:>9,.0f}  {target}")
            what = f"model with {weights:,.0f} MiB of external weights: cgtools {words}"
            if words.startswith(("info", "render")):
                record(what, seconds, target="≤ 3 s", met=seconds <= 3)
                record(f"{what}, peak memory", peak, unit="MiB", target="≤ 286 MiB (300 MB)", met=peak * MiB <= 300e6)
            elif words.startswith("run"):
                record(f"{what}, peak memory", peak, unit="MiB", target=target, met=peak <= weights * 1.2)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
