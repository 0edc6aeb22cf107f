"""The first run is the one the command line makes: `cgtools run` loads only what a run needs, has the ONNX
checker read the model's bytes rather than the model serialized again, and interprets its one run rather than
compiling the plan. Structure, not wall time: these hold however busy the machine is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cgtools

pytestmark = pytest.mark.slow  # a fresh interpreter importing numpy, onnx and cgtools

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# what `run` never needs: the drawing code and its packages, the other runtimes, the comparison and authoring code
NOT_NEEDED = ("onnx.reference", "onnxruntime", "torch", "pyvis", "jinja2", "jsonschema", "graphviz", "scipy",
              "networkx", "cgtools.export.scene", "cgtools.export.dot", "cgtools.export.html", "cgtools.export.layout",
              "cgtools.compare", "cgtools.gradcheck", "cgtools.expr", "cgtools.train", "cgtools.optim")

# runs `cgtools run` in a fresh interpreter, recording what the ONNX checker was given and which plans compiled
PROBE = r"""
import contextlib, io, json, sys

import onnx.checker

import cgtools.compiled as compiled
from cgtools.cli import main

seen = {"checked": [], "compiled": []}


def spied(record, real):
    def call(first, *args, **kwargs):
        record(first)
        return real(first, *args, **kwargs)
    return call


onnx.checker.check_model = spied(lambda m: seen["checked"].append(type(m).__name__), onnx.checker.check_model)
for name in ("compile_forward", "compile_backward"):
    setattr(compiled, name, spied(lambda steps, name=name: seen["compiled"].append(name), getattr(compiled, name)))
table = io.StringIO()
with contextlib.redirect_stdout(table):
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        seen["exit"] = e.code
seen["table"] = table.getvalue()
seen["modules"] = sorted(sys.modules)
print(json.dumps(seen))
seen["compiled"] = []  # the same graph compiled at once, to show that the spies see a compilation
import cgtools  # noqa: E402
cgtools.load(sys.argv[-1]).run(compiling=compiled.COMPILE_AT_ONCE)
print(json.dumps(seen["compiled"]))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("first-run") / "mlp.onnx"
    cgtools.convert(EXAMPLES / "mlp_xent.json", path)
    return path


@pytest.fixture(scope="module")
def seen(model) -> dict:
    """What `cgtools run MODEL` did in a fresh interpreter, and (as "compiled_at_once") the compilations of the
    same graph run with the plan compiled at once."""
    done = subprocess.run([sys.executable, "-c", PROBE, "run", str(model)], capture_output=True, text=True,
                          check=True)
    first, at_once = done.stdout.splitlines()[-2:]
    return {**json.loads(first), "compiled_at_once": json.loads(at_once)}


def test_run_of_an_onnx_model_loads_only_what_a_run_needs(model, seen):
    assert seen["exit"] == 0
    expected = cgtools.load(model).run()  # the table is the run's
    assert f"{expected.values[expected.loss].item():.4g}" in seen["table"]
    loaded = set(seen["modules"])
    assert [name for name in NOT_NEEDED if name in loaded] == []
    assert "cgtools.onnx.read" in loaded and "numpy" in loaded  # the probe saw the run's imports


def test_the_checker_reads_the_bytes_of_the_file_not_the_model_serialized_again(seen):
    assert seen["checked"] == ["bytes"]


def test_one_run_is_interpreted_not_compiled(seen):
    """Compiling a plan costs about what interpreting it a few times does: a command that runs once never pays
    for it, forward or backward."""
    assert seen["exit"] == 0 and seen["compiled"] == []
    assert "∂" in seen["table"]  # backward ran too
    assert seen["compiled_at_once"] == ["compile_forward", "compile_backward"]  # what compiling would have shown
