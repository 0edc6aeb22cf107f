"""ONNX model forward speed: cgtools against onnx's ReferenceEvaluator and onnxruntime, side by side in one process.

    python bench/bench_onnx.py [--model resnet50|densenet121] [--repeat N]

The model is one of the light models the onnx wheel ships (ResNet-50 by default), fed the input onnx's own
runner uses. Every contender computes the same forward pass (checked against the stored output before timing:
cgtools must match it; another contender that does not is noted); times are medians of
interleaved rounds. onnxruntime runs twice: with its default threads and with one thread (cgtools' numpy kernels
run on whatever threads the BLAS uses). Targets: cgtools at least 5× faster than ReferenceEvaluator, at most
3× slower than onnxruntime.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from timing import median_times, record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=["resnet50", "densenet121"])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    import cgtools

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{args.model}.onnx"
    graph = cgtools.load(path)
    (leaf,) = graph.leaves_of("input")
    n = int(np.prod(leaf.shape))
    feed = {leaf.name: (np.arange(n).reshape(leaf.shape) / n).astype(np.float32)}
    (output,) = graph.outputs

    model = onnx.load(str(path))
    reference = ReferenceEvaluator(model)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    ort_default = ort.InferenceSession(str(path), quiet, providers=["CPUExecutionProvider"])
    single = ort.SessionOptions()
    single.log_severity_level = 3
    single.intra_op_num_threads = single.inter_op_num_threads = 1
    ort_single = ort.InferenceSession(str(path), single, providers=["CPUExecutionProvider"])

    contenders = {
        "cgtools": lambda: graph.run(feed, backward=False).values[output],
        "ReferenceEvaluator": lambda: reference.run(None, feed)[0],
        "onnxruntime (default threads)": lambda: ort_default.run(None, feed)[0],
        "onnxruntime (1 thread)": lambda: ort_single.run(None, feed)[0],
    }
    # the stored output, within the tolerance onnx's own runner uses for the model
    expected = numpy_helper.to_array(onnx.load_tensor(str(path.with_name(f"light_{args.model}_output_0.pb"))))
    rtol = {"resnet50": 1e-3, "densenet121": 2e-3}[args.model]
    for name, fn in contenders.items():
        got = fn()
        if not np.allclose(got, expected, rtol=rtol, atol=1e-7):
            worst = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-30)))
            if name == "cgtools":
                raise SystemExit(f"cgtools differs from the stored output (relative {worst:.2g})")
            print(f"note: {name} differs from the stored output by up to {worst:.2g} (relative; rtol {rtol})")

    times = dict(zip(contenders, median_times(args.repeat, *contenders.values())))
    print(f"light {args.model} forward, batch 1, float32 ({len(graph.nodes)} nodes), median of {args.repeat}, "
          f"{os.cpu_count()} cores:")
    for name, seconds in times.items():
        print(f"  {name:<30} {seconds * 1e3:9.1f} ms")
    ours = times["cgtools"]
    print(f"cgtools is {times['ReferenceEvaluator'] / ours:.2f}x faster than ReferenceEvaluator (target >= 5x)")
    what = f"light {args.model} forward"
    record(what, ours, peer="ReferenceEvaluator", theirs=times["ReferenceEvaluator"], target="≤ 0.2×",
           met=ours * 5 <= times["ReferenceEvaluator"])
    for name in ("onnxruntime (default threads)", "onnxruntime (1 thread)"):
        print(f"cgtools takes {ours / times[name]:.2f}x the time of {name} (target <= 3x)")
        record(what, ours, peer=name, theirs=times[name], target="≤ 3×", met=ours <= 3 * times[name])


if __name__ == "__main__":
    main()
