"""The first run, the only one the command line makes: `cgtools run MODEL` against the same run warm in Python.

    python bench/bench_first_run.py [--repeat N] [--models a,b,...] [--folder DIR]

The models are exported from torchvision and PyTorch as bench/bench_peers.py exports them (tests/models.py),
batch 1 at 224×224 for the image models, and fed random inputs from an .npz. For each model: (a) the median wall
time of `cgtools run MODEL --inputs X.npz --upstream-grad ones` as a whole process (its table thrown away), less
(b) the median wall time of `cgtools run --help` (the interpreter's and click's start-up), against (c) the
median in-process time of `graph.run(feed, seed=np.ones_like)` once warm (plan compiled, caches filled).
Target: (a − b) / c ≤ 2 for every model. `--folder` keeps the exported models there for the next call.
`--against OTHER` (another installation's `cgtools`, e.g. the code before a change) times its commands too,
alternating with this one's, run for run, so both see the same load on a shared machine.

The commands run as an installed cgtools does, from cached bytecode: PYTHONDONTWRITEBYTECODE is dropped from
their environment, the bytecode goes to a temporary PYTHONPYCACHEPREFIX, and one run of each command before
the timed ones writes it (compiling cgtools' modules from source costs ~0.5 s a process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_models import inputs_file
from bench_peers import MODELS, exported
from timing import median_times, record

TARGET = 2.0


def wall_seconds(commands: list[list[str]], repeat: int, env: dict) -> list[float]:
    """The median wall time of each command as a whole process after one run not counted, its output thrown
    away, the commands taking turns; each must succeed."""
    times = [[] for _ in commands]
    for _ in range(repeat + 1):
        for command, taken in zip(commands, times):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            taken.append(time.perf_counter() - start)
    return [statistics.median(taken[1:]) for taken in times]


def steady_seconds(model: Path, feed: Path, repeat: int) -> float:
    """The median time of the same run in this process, once warm."""
    import cgtools
    from cgtools.files import read_npz

    graph, values = cgtools.load(model), read_npz(feed)
    return median_times(repeat, lambda: graph.run(values, seed=np.ones_like))[0]


def model_file(name: str, folder: Path) -> Path:
    """The model exported into `folder`, exported again only when missing."""
    path = folder / f"{name}.onnx"
    return path if path.exists() else exported(name, folder, 224).path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--folder", help="where the models are exported (kept); default: a temporary folder")
    parser.add_argument("--against", metavar="OTHER", help="another `cgtools` command to time beside this one")
    args = parser.parse_args()
    commands = [[str(Path(sys.executable).with_name("cgtools"))]]  # the installed command, as users run it
    commands += [[args.against]] if args.against else []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        start_ups = wall_seconds([[*c, "run", "--help"] for c in commands], args.repeat, env)
        print(f"{'model':<16}{'CLI s':>8}{'start-up s':>12}{'steady s':>10}{'ratio':>8}"
              f"{'   OTHER: CLI s, start-up s, ratio' if args.against else ''}   (median of {args.repeat})")
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (n.strip() for n in args.models.split(",")):
            model = model_file(name, folder)
            feed = inputs_file(model, folder)
            clis = wall_seconds([[*c, "run", str(model), "--inputs", str(feed), "--upstream-grad", "ones"]
                                 for c in commands], args.repeat, env)
            steady = steady_seconds(model, feed, max(args.repeat, 3))
            ratio, *other = [(cli - start_up) / steady for cli, start_up in zip(clis, start_ups)]
            against = f"   {clis[1]:8.2f}{start_ups[1]:8.2f}{other[0]:7.2f}×" if other else ""
            print(f"{name:<16}{clis[0]:8.2f}{start_ups[0]:12.2f}{steady:10.3f}{ratio:7.2f}×{against}"
                  f"{'' if ratio <= TARGET else '  over the target'}", flush=True)
            record(f"{name}: first run, `cgtools run` less its --help start-up", clis[0] - start_ups[0],
                   peer="the same run warm in Python", theirs=steady, target=f"≤ {TARGET:g}×", met=ratio <= TARGET)


if __name__ == "__main__":
    main()
