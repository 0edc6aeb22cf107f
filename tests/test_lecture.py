"""The lecture's own examples, with its hand-computed numbers as the oracle."""

import json

import numpy as np
import pytest

import cgtools
from helpers import EXAMPLES, NAN_GRAPH, run_in_process


def test_affine_square_through_the_cli(cli):
    result = cli("run", EXAMPLES / "affine_square.json", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["values"]["c"] == 3 and out["values"]["d"] == 5 and out["values"]["e"] == 25
    grads = out["grads"]
    assert (grads["e"], grads["d"], grads["c"], grads["a"], grads["b"], grads["x"]) == (1, 10, 10, 10, 10, 30)
    assert "two" not in grads  # constants get no gradient


def test_square_times_3x_adds_gradients_over_both_paths():
    run = cgtools.load(EXAMPLES / "square_times_3x.json").run()
    assert run.values["L"] == 24
    assert run.grads["x"] == 36  # 2x·3x + x²·3 = 24 + 12
    assert run.grads["f"] == 6 and run.grads["g"] == 4


def test_secret_number_and_perceptron():
    run = cgtools.load(EXAMPLES / "secret_number.json").run()
    assert run.values["L"] == 9 and run.grads["θ"] == -6 and run.grads["y"] == 6
    run = cgtools.load(EXAMPLES / "perceptron.json").run()
    z = 0.5 * 1 - 0.25 * 2 + 0.1
    s = 1 / (1 + np.exp(-z))
    assert run.values["ŷ"] == pytest.approx(s)
    np.testing.assert_allclose(run.grads["w"], s * (1 - s) * np.array([1.0, 2.0]))
    assert run.grads["b"] == pytest.approx(s * (1 - s))


def test_run_table_shows_values_and_gradients(cli):
    result = cli("run", EXAMPLES / "affine_square.json")
    assert result.returncode == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["e"][-2:] == ["25", "1"] and rows["x"][-2:] == ["1", "30"]
    assert rows["two"][-1] == "2"  # a constant: value, no gradient column


def test_run_table_from_python():
    from cgtools.export.table import run_json, run_table

    run = cgtools.load(EXAMPLES / "affine_square.json").run()
    lines = run_table(run).splitlines()
    assert lines[0].split() == ["tensor", "from", "shape", "value", "∂e/∂·"] and set(lines[1]) <= {"─", " "}
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["e"] == ["e", "Pow", "scalar", "25", "1"] and rows["x"] == ["x", "input", "scalar", "1", "30"]
    assert rows["a"][1:] == ["param", "scalar", "3", "10"] and rows["two"][1:] == ["constant", "scalar", "2"]
    assert json.loads(run_json(run))["grads"]["x"] == 30
    forward = run_table(cgtools.load(EXAMPLES / "affine_square.json").run(backward=False), precision=2)
    assert forward.splitlines()[0].split()[-1] == "gradient" and forward.splitlines()[-1].split()[-1] == "25"


def test_set_overrides_a_value(cli):
    result = cli("run", EXAMPLES / "affine_square.json", "--set", "x=2", "--json")
    out = json.loads(result.stdout)
    assert out["values"]["e"] == 64 and out["grads"]["a"] == 2 * 8 * 2


def test_no_backward_prints_no_gradients(cli):
    out = json.loads(cli("run", EXAMPLES / "affine_square.json", "--no-backward", "--json").stdout)
    assert out["values"]["e"] == 25 and out["grads"] == {}


def test_stats_show_dead_relus_and_where_nans_are(capsys, tmp_path):
    """`run --stats`: per value and gradient, min/max/mean/std of the finite elements, the fraction of zeros,
    the NaN and infinity counts — checked against numpy on the run itself."""
    from cgtools.export.table import tensor_stats

    run = cgtools.load(EXAMPLES / "mlp_xent.json").run()
    h = run.values["h"]
    assert tensor_stats(h)["zeros"] == np.mean(h == 0) > 0  # the ReLU's dead units
    assert tensor_stats(h)["std"] == pytest.approx(h.std())
    with np.errstate(all="ignore"):
        lx = cgtools.load(NAN_GRAPH).run().values["lx"]  # log of [-1, 2]
    assert tensor_stats(lx) == {"min": np.log(2), "max": np.log(2), "mean": np.log(2), "std": 0.0, "zeros": 0.0,
                                "nan": 1, "inf": 0}
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(NAN_GRAPH))
    done = run_in_process(capsys, "run", path, "--stats")
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert rows["lx"][-2:] == ["1", "0"] and rows["∂L/∂x"][-2:] == ["1", "0"]
    assert done.returncode == 0 and "lx" in done.stderr  # the note: where the first NaN appeared
