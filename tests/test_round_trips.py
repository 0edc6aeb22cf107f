"""`cgtools convert` from ONNX to JSON and back, on every light model of the onnx wheel and on the models
exported at test time: the written model passes onnx.checker with full shape inference, and onnxruntime gives
the outputs it gives on the original."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import cgtools
from cgtools.onnx.write import to_onnx
from helpers import LIGHT, assert_round_trip, dummy_input, onnxruntime_outputs

LIGHT_MODELS = sorted(path.stem for path in LIGHT.glob("light_*.onnx"))
EXPORTED = [("mobilenet_v3_small", False), ("mobilenet_v3_small", True), ("unet", False), ("unet", True)]


def test_the_wheel_ships_the_light_models():
    assert {"light_bvlc_alexnet", "light_inception_v1", "light_squeezenet", "light_vgg19"} <= set(LIGHT_MODELS)


@pytest.mark.slow  # whole networks, converted twice and run three times
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_round_trip(name, tmp_path, capsys):
    """(SqueezeNet, VGG-19, AlexNet and Inception-v1, opset 9, have a Dropout whose mask output was of the
    data's type before opset 10.)"""
    source = LIGHT / f"{name}.onnx"
    feed = dict([dummy_input(cgtools.load(source))])
    assert_round_trip(source, feed, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("name, trainable", EXPORTED,
                         ids=[f"{n}-{'batchnorm' if t else 'folded'}" for n, t in EXPORTED])
def test_exported_model_round_trip(name, trainable, exported, tmp_path, capsys):
    model = exported(name, trainable=trainable)
    assert_round_trip(model.path, {"x": model.x.numpy()}, tmp_path, capsys)


@pytest.mark.parametrize("opset, mask", [(9, np.float32), (10, np.bool_), (13, np.bool_)])
def test_dropouts_mask_is_written_with_the_type_of_its_opset(opset, mask):
    """Before opset 10 Dropout's mask had the data's type (bool since): the written model declares it so,
    passes full shape inference, and onnxruntime makes the mask of that type (its values in inference are
    not compared: onnxruntime's kernels before opset 12 give zeros, the ONNX reference ones)."""
    graph = cgtools.Graph.from_dict({
        "cgtools": "1.0", "opset": opset, "inputs": [{"name": "x", "value": [[1.0, -2.0, 3.0]], "dtype": "float32"}],
        "nodes": [{"op": "Dropout", "inputs": ["x"], "outputs": ["y", "kept"]},
                  {"op": "Relu", "inputs": ["y"], "outputs": ["z"]}],
        "outputs": ["z", "kept"]})
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    declared = {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
                for v in model.graph.output}
    assert declared == {"z": np.float32, "kept": mask}
    z, kept = onnxruntime_outputs(model, {"x": np.array([[1.0, -2.0, 3.0]], np.float32)})
    assert kept.dtype == mask
    np.testing.assert_array_equal(z, [[1.0, 0.0, 3.0]])
