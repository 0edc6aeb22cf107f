"""Every numeric ONNX element type: through JSON, .npz and ONNX bit for bit, refused where it cannot hold a
value, cast as onnx's ReferenceEvaluator casts, and carrying gradients only where it should."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import cgtools
from cgtools.onnx.mapping import CODES
from cgtools.onnx.read import load_onnx
from cgtools.onnx.write import to_onnx
from cgtools.values import DTYPES, INLINE_LIMIT, NARROW_FLOATS, NARROW_INTS, decode
from helpers import error_of, graph_of

BITS = {"float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4, "int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def every_value(name: str) -> np.ndarray:
    """Values of the dtype: every one a narrow type holds (NaN once), the edges of the others."""
    dtype = np.dtype(name)
    if dtype == np.bool_:
        return np.array([True, False])
    if name in NARROW_INTS or dtype.kind in "iu":
        info = ml_dtypes.iinfo(dtype)
        return np.array(sorted({info.min, info.min + 1, -1 if info.min else 0, 0, 1, info.max - 1, info.max}),
                        dtype)
    if dtype.itemsize == 1:  # the 8-bit floats (and 6- and 4-bit ones): every value
        codes = np.arange(2 ** BITS.get(name, 8))
        values = np.unique(np.arange(256, dtype=np.uint8).view(dtype).astype(np.float64))  # NaNs once
        return values[: len(codes)].astype(dtype)
    info = ml_dtypes.finfo(dtype)
    return np.array([0.0, -0.0, 1 / 3, -2.5, float(info.max), float(info.min), float(info.tiny),
                     float(info.smallest_subnormal), np.inf, -np.inf, np.nan]).astype(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype_round_trips_bit_for_bit_through_onnx_json_and_npz(name, tmp_path):
    small = every_value(name)
    big = np.resize(small, INLINE_LIMIT + 5)  # over the inline limit: saved into the .npz beside the JSON
    code = CODES[name]
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["small"], ["y"]), helper.make_node("Identity", ["big"], ["z"])], "g", [],
        [helper.make_tensor_value_info("y", code, small.shape), helper.make_tensor_value_info("z", code, big.shape)],
        [numpy_helper.from_array(small, "small"), numpy_helper.from_array(big, "big")]),
        opset_imports=[helper.make_opsetid("", 25)])
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    graph = load_onnx(tmp_path / "m.onnx")
    assert graph.leaves["small"].dtype == name and same_bits(graph.leaves["small"].value, small)
    graph.save(tmp_path / "m.json")
    assert (tmp_path / "m.npz").is_file()
    again = cgtools.load(tmp_path / "m.json")
    assert same_bits(again.leaves["small"].value, small) and same_bits(again.leaves["big"].value, big)
    run = again.run(backward=False)
    assert same_bits(run.values["y"], small) and same_bits(run.values["z"], big)
    if name.startswith("float6"):
        return  # onnx 1.23 has no op that takes float6 yet: its checker refuses a Constant of it
    written = {t.name: numpy_helper.to_array(t) for t in to_onnx(again).graph.initializer}
    written.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in to_onnx(again).graph.node
                    if n.op_type == "Constant"})
    assert same_bits(written["small"], small) and same_bits(written["big"], big)


@pytest.mark.parametrize("dtype, data, bad", [
    ("uint8", [0, 256], "256"), ("int8", [-129], "-129"), ("uint64", [-1], "-1"), ("int16", [1.5], "1.5"),
    ("uint32", [2**32], str(2**32)), ("int4", [8], "8"), ("uint4", [-1], "-1"), ("uint2", [4], "4"),
    ("int2", [0.5], "0.5"),
])
def test_integers_a_dtype_cannot_hold_are_refused(dtype, data, bad):
    message = error_of(decode, {"dtype": dtype, "shape": [len(data)], "data": data})
    assert f"found {bad}, which {dtype} cannot hold" in message


def cast_model(source: str, target: str, saturate: int):
    attrs = {"saturate": saturate} if target.startswith("float8") and target != "float8_e8m0fnu" else {}
    return helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=CODES[target], **attrs)], "g",
        [helper.make_tensor_value_info("x", CODES[source], [None])],
        [helper.make_tensor_value_info("y", CODES[target], [None])]), opset_imports=[helper.make_opsetid("", 24)])


SAMPLES = np.array([0, 1, 2, 3, 7, -1, -2, -8, 0.5, 0.25, 1.5, 100, 300, 1e5, -1e5, 70000])


def representable(name: str) -> np.ndarray:
    """The samples the source dtype holds exactly (so the cast under test is the only rounding)."""
    dtype = np.dtype(name)
    if dtype == np.bool_:
        return np.array([True, False, True])
    with np.errstate(invalid="ignore", over="ignore"):
        held = SAMPLES.astype(dtype).astype(np.float64) == SAMPLES
    return SAMPLES[held].astype(dtype)


@pytest.mark.parametrize("source", DTYPES)
def test_cast_from_every_dtype_to_every_dtype_agrees_with_onnx_reference(source, tmp_path):
    x = representable(source)
    for target, saturate in itertools.product(DTYPES, (1, 0)):
        model = cast_model(source, target, saturate)
        try:
            (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
        except TypeError:  # between two ml_dtypes types (int4 -> float6 …) the reference has no cast either
            continue
        (tmp_path / "c.onnx").write_bytes(model.SerializeToString())
        got = load_onnx(tmp_path / "c.onnx").run({"x": x}, backward=False).values["y"]
        assert got.dtype == expected.dtype, (source, target)
        plain = [a.astype(np.float64) if target in NARROW_FLOATS else a for a in (got, expected)]
        np.testing.assert_array_equal(*plain, err_msg=f"{source} -> {target}, saturate={saturate}")


@pytest.mark.parametrize("name", DTYPES)
def test_gradients_flow_into_float16_bfloat16_float32_and_float64_only(name):
    x = np.array([1, 2, 3]).astype(name) if name != "bool" else np.array([True, False, True])
    graph = graph_of([{"op": "Mul", "inputs": ["x", "x"], "outputs": ["y"]},
                      {"op": "ReduceSum", "inputs": ["y"], "outputs": ["loss"], "attrs": {"keepdims": 0}}],
                     inputs=[{"name": "x", "dtype": name, "shape": [3]}], outputs=["loss"])
    run = graph.run({"x": x})
    if name in ("float16", "bfloat16", "float32", "float64"):
        assert run.values["loss"].dtype == np.dtype(name) and run.grads["x"].dtype == np.dtype(name)
        assert run.grads["x"].astype(np.float64).tolist() == [2.0, 4.0, 6.0]  # ∂Σx²/∂x = 2x
    else:
        assert "x" not in run.grads


def test_an_npz_of_raw_bfloat16_bytes_is_read_by_the_declared_dtype(tmp_path):
    x = np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16)
    np.savez(tmp_path / "x.npz", x=x)  # numpy stores it as |V2: its bytes, without the type
    array = decode({"file": "x.npz", "key": "x"}, dtype="bfloat16", folder=tmp_path)
    assert same_bits(array, x)
