"""Drawing real models: `cgtools render MODEL -o x.svg` and `-o x.html`, whole processes, values and gradients drawn.

    python bench/bench_models.py [--repeat N] [--models a,b,...]

The models: resnet18, mobilenet_v2, densenet121 (torchvision), a transformer encoder layer and a GPT-style block,
exported as the tests export them (tests/models.py), and the onnx wheel's light ResNet-50, DenseNet-121 and
Inception-v2. Each is fed random inputs from its declared input shapes (an .npz) and differentiated with an
upstream gradient of ones. Prints the median seconds of each command; the target is under 10 s for every one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXPORTED = ("resnet18", "mobilenet_v2", "densenet121", "transformer_encoder", "gpt_block")
LIGHT = ("resnet50", "densenet121", "inception_v2")
TARGET = 10.0  # seconds


def model_files(folder: Path, wanted: set) -> dict[str, Path]:
    """Every model's ONNX file by its name in the table: exported into `folder`, or the onnx wheel's."""
    import onnx

    sys.path.insert(0, str(ROOT / "tests"))
    from models import export

    files = {name: export(name, folder).path for name in EXPORTED if name in wanted}
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    files.update((f"light {name}", light / f"light_{name}.onnx") for name in LIGHT if f"light {name}" in wanted)
    return files


def inputs_file(model: Path, folder: Path) -> Path:
    """An .npz of random values for the model's inputs, from their declared shapes."""
    import cgtools

    path = folder / f"{model.stem}.inputs.npz"
    np.savez(path, **cgtools.load(model).random_inputs(seed=0))
    return path


def seconds(command: list[str], repeat: int) -> float:
    """The median wall-clock time of the command, run `repeat` times; it must succeed."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--models", default=",".join([*EXPORTED, *(f"light {n}" for n in LIGHT)]),
                        help="comma-separated names, as the table writes them")
    args = parser.parse_args()
    cgtools_command = [str(Path(sys.executable).with_name("cgtools"))]  # the installed command, as users run it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = model_files(folder, {name.strip() for name in args.models.split(",")})
        print(f"{'model':<24} {'ops':>5} {'svg s':>7} {'html s':>7}")
        slow = []
        for name, path in files.items():
            import cgtools

            feed = inputs_file(path, folder)
            row = [name, len(cgtools.load(path).nodes)]
            for fmt in ("svg", "html"):
                command = [*cgtools_command, "render", str(path), "--inputs", str(feed), "--upstream-grad", "ones",
                           "-o", str(folder / f"out.{fmt}")]
                row.append(seconds(command, args.repeat))
                if row[-1] >= TARGET:
                    slow.append(f"{name} {fmt}")
            print(f"{row[0]:<24} {row[1]:>5} {row[2]:>7.2f} {row[3]:>7.2f}", flush=True)
        print(f"over {TARGET:g} s: {', '.join(slow)}" if slow else f"every drawing under {TARGET:g} s")


if __name__ == "__main__":
    main()
