"""Backward fails as forward does: any error of an op's backward, or of fitting its gradients, is a CgError at the
node's place naming the shapes; nodes list no more outputs than their op makes; the ops' own checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cgtools
from cgtools.checks import check_shapes
from cgtools.compiled import COMPILE_AT_ONCE
from cgtools.errors import CgError
from cgtools.ops import REGISTRY, Operation, register_op
from cgtools.tensor import Tensor

HUGE = (10**6, 10**6)  # 7.28 TiB of float64: numpy refuses it with a MemoryError saying so


def one_node(op, inputs=("x",), outputs=("y",), attrs=None, graph_output=None, **leaves):
    """A graph of one node whose inputs are fed leaves (values given as keyword arguments)."""
    node = {"op": op, "inputs": list(inputs), "outputs": list(outputs), "attrs": attrs or {}}
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": n} for n in leaves], "nodes": [node],
                         "outputs": [graph_output or outputs[0]]})


def failing_backward_op(error):
    """An op whose forward is the identity and whose backward raises `error()`, registered for one test."""
    @register_op("Broken")
    class Broken(Operation):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            raise error()
    return Broken


def numpy_value_error():
    return np.ones(6).reshape(4, 4)


def huge_allocation():
    return np.ones(HUGE)


@pytest.mark.parametrize("error, words", [
    (lambda: numpy_value_error(), "cannot reshape array of size 6 into shape (4,4)"),
    (lambda: TypeError("unsupported operand"), "unsupported operand"),
    (lambda: IndexError("index 9 is out of bounds"), "index 9 is out of bounds"),
    (lambda: huge_allocation(), "Unable to allocate 7.28 TiB"),
    (MemoryError, "out of memory"),
])
@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_backward_failure_is_a_cgerror_at_the_node(error, words, compiled):
    failing_backward_op(error)
    graph = one_node("Broken", x=None)
    with pytest.raises(CgError) as e:
        graph.run({"x": np.ones((2, 3))}, seed=np.ones((2, 3)), compiling=COMPILE_AT_ONCE if compiled else None)
    assert e.value.where == "nodes[0] (Broken 'y')"
    assert e.value.detail.startswith("backward failed on inputs float64[2, 3], output gradients float64[2, 3]: ")
    assert words in e.value.detail


def test_traced_tensors_get_the_same_error():
    failing_backward_op(lambda: numpy_value_error())
    y = Tensor.apply("Broken", Tensor(np.ones(3), name="x")).named("y")
    with pytest.raises(CgError, match=r"^Broken making y: backward failed on inputs float64\[3\], output gradients "
                                      r"float64\[3\]: cannot reshape"):
        y.backward(np.ones(3))


def test_cgerror_from_an_op_backward_is_placed():
    graph = one_node("ScatterND", ["x", "i", "u"], attrs={"reduction": "mul"}, x=None, i=None, u=None)
    with pytest.raises(CgError) as e:
        graph.run({"x": np.ones(4), "i": np.array([[1]]), "u": np.ones(1)}, seed=np.ones(4))
    assert str(e.value) == "nodes[0] (ScatterND 'y'): ScatterND has no gradient for reduction='mul'"


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_a_gradient_of_the_wrong_shape_is_a_cgerror(compiled):
    @register_op("WrongShape")
    class WrongShape(Operation):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, grad):
            return (np.ones(5),)

    graph = one_node("WrongShape", x=None)
    with pytest.raises(CgError) as e:
        graph.run({"x": np.ones((2, 3))}, compiling=COMPILE_AT_ONCE if compiled else None)
    assert str(e.value) == ("nodes[0] (WrongShape 'y'): backward gave a gradient of shape [5] for an input of "
                            "shape [2, 3]")


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_forward_out_of_memory_says_how_much(compiled):
    graph = one_node("ConstantOfShape", ["s"], s=None)
    with pytest.raises(CgError) as e:
        graph.run({"s": np.array(HUGE)}, backward=False, compiling=COMPILE_AT_ONCE if compiled else None)
    assert e.value.where == "nodes[0] (ConstantOfShape 'y')"
    assert e.value.detail.startswith("forward failed on inputs int64[2]: Unable to allocate 3.64 TiB")


# ---- outputs: as many as the op makes, at most ---------------------------------------------------------------

@pytest.mark.parametrize("op, outputs, attrs, message", [
    ("Relu", ["y", "z"], {}, "Relu makes 1 output (Y), found 2"),
    ("MaxPool", ["y", "i", "z"], {"kernel_shape": [2]}, "MaxPool makes 1 to 2 outputs (Y, Indices), found 3"),
    ("Dropout", ["y", "m", "z"], {}, "Dropout makes 1 to 2 outputs (output, mask), found 3"),
])
def test_a_node_listing_more_outputs_than_its_op_makes_is_refused_at_load(op, outputs, attrs, message):
    with pytest.raises(CgError) as e:
        one_node(op, outputs=outputs, attrs=attrs, x=None)
    assert str(e.value) == f"nodes[0] ({op} 'y').outputs: {message}"


def test_declared_outputs_match_onnx():
    """Every op ONNX defines makes as many outputs as ONNX's schema says, the first required (or, as the
    recurrent ops', optional), or any number (variadic)."""
    defs = pytest.importorskip("onnx.defs")
    checked = 0
    for name, op in REGISTRY.items():
        if not defs.has(name):
            continue
        outputs = defs.get_schema(name).outputs
        options = [o.option.name for o in outputs]
        if options == ["Variadic"]:
            assert op.spec.most_outputs == float("inf"), name
        else:
            # cgtools makes every output after the first optional, also those ONNX requires (TopK's Indices,
            # CausalConvWithState's present_state): made either way, listed or not; RNN, GRU, LSTM: all optional
            assert options[0] in ("Single", "Optional") and set(options[1:]) <= {"Single", "Optional"}, name
            assert op.spec.most_outputs == len(outputs), name
            assert len(outputs) == 1 or op.spec.outputs == tuple(o.name for o in outputs), name
        checked += 1
    assert checked > 80


def test_optional_and_variadic_outputs_still_run():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    pool = one_node("MaxPool", outputs=["y", "i"], attrs={"kernel_shape": [2, 2]}, graph_output="i", x=None)
    run = pool.run({"x": x})  # backward from Indices (int64) alone: nothing flows back
    assert run.values["i"].dtype == np.int64 and not run.grads["x"].any()
    run = one_node("MaxPool", outputs=["y", "i"], attrs={"kernel_shape": [2, 2]}, x=None).run(
        {"x": x}, seed=np.ones((2, 3, 3, 3)))
    assert run.grads["x"].shape == x.shape
    split = one_node("Split", outputs=["a", "b", "c"], attrs={"num_outputs": 3}, graph_output="b", x=None)
    np.testing.assert_array_equal(split.run({"x": np.arange(6.0)}, seed=np.ones(2)).grads["x"], [0, 0, 1, 1, 0, 0])
    norm = one_node("LayerNormalization", ["x", "s"], outputs=["y"], x=None, s=None)  # fewer: Mean, InvStdDev left out
    assert norm.run({"x": x, "s": np.ones(4)}, seed=np.ones(x.shape)).grads["x"].shape == x.shape


def test_a_step_making_fewer_outputs_than_listed_is_a_cgerror():
    graph = one_node("BatchNormalization", ["x", "s", "s", "s", "s"], outputs=["y", "m", "v"], x=None, s=None)
    with pytest.raises(CgError, match=r"^nodes\[0\] \(BatchNormalization 'y'\): the op made 1 output here, but the "
                                      r"node lists 3"):
        graph.run({"x": np.ones((2, 3)), "s": np.ones(3)}, backward=False)


def test_variadic_inputs_cannot_be_left_empty():
    with pytest.raises(CgError, match=r"^nodes\[0\] \(Max 'y'\)\.inputs: Max takes at least 1 inputs \(inputs…\), "
                                      r"found 2 \(input 'inputs' left empty\)"):
        one_node("Max", ["x", ""], x=None)


# ---- the ops' own checks, forward and backward -----------------------------------------------------------------

def test_clip_bounds_are_scalars_at_run_and_when_shapes_are_known():
    graph = one_node("Clip", ["x", "lo"], x=None, lo=None)
    with pytest.raises(CgError, match=r"^nodes\[0\] \(Clip 'y'\): expected min to be a scalar \(the same bound for "
                                      r"every element\), found shape \[3\]"):
        graph.run({"x": np.ones(3), "lo": np.zeros(3)}, seed=np.ones(3))
    declared = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "shape": [3]}, {"name": "lo", "shape": [2, 3]}],
                             "nodes": [{"op": "Clip", "inputs": ["x", "lo"], "outputs": ["y"]}], "outputs": ["y"]})
    with pytest.raises(CgError, match="expected min to be a scalar"):
        check_shapes(declared)
    run = graph.run({"x": np.array([-1.0, 0.5, 2.0]), "lo": np.array([0.0])}, seed=np.ones(3))  # one element: a scalar
    np.testing.assert_array_equal(run.values["y"], [0, 0.5, 2])
    np.testing.assert_array_equal(run.grads["lo"], [1.0])


def test_gemm_takes_matrices():
    graph = one_node("Gemm", ["a", "b"], a=None, b=None)
    with pytest.raises(CgError, match=r"^nodes\[0\] \(Gemm 'y'\): Gemm multiplies matrices: expected A and B of 2 "
                                      r"dimensions, found A of shape \[3, 4\] and B of shape \[4\]"):
        graph.run({"a": np.ones((3, 4)), "b": np.ones(4)}, seed=np.ones(3))


def test_gemm_takes_a_bias_that_broadcasts_to_the_product_only():
    """ONNX's C broadcasts one way, to the product's shape (M, N); a C that would widen it is refused."""
    graph = one_node("Gemm", ["a", "b", "c"], a=None, b=None, c=None)
    for c in (np.ones((4, 2, 2, 1)), np.ones(3)):
        with pytest.raises(CgError, match=r"expected C to broadcast to the product's shape \[1, 5\], found C of shape"):
            graph.run({"a": np.ones((1, 4)), "b": np.ones((4, 5)), "c": c}, seed=1.0)
    run = graph.run({"a": np.ones((1, 4)), "b": np.ones((4, 5)), "c": np.ones((1, 1))}, seed=np.ones((1, 5)))
    assert run.grads["c"].shape == (1, 1) and run.grads["a"].shape == (1, 4)


def against_torch(graph, feed: dict, torch_fn, seed):
    """The graph's gradients for `seed` equal torch autograd's."""
    run = graph.run(feed, seed=seed)
    leaves = {name: torch.tensor(x, requires_grad=True) for name, x in feed.items()}
    torch_fn(*leaves.values()).backward(torch.from_numpy(np.asarray(seed)))
    for name, leaf in leaves.items():
        np.testing.assert_allclose(run.grads[name], leaf.grad.numpy(), err_msg=name)
    return run


@pytest.mark.parametrize("equation, shapes", [("i,j->ij", [(0,), (3,)]), ("ij->ji", [(3, 0)]),
                                              ("ij->i", [(0, 2)]), ("ij,jk->ik", [(2, 0), (0, 3)])])
def test_einsum_backward_on_empty_tensors(equation, shapes):
    feed = {f"x{k}": np.ones(s) for k, s in enumerate(shapes)}
    graph = one_node("Einsum", list(feed), attrs={"equation": equation}, **feed)
    y = graph.run(feed, backward=False).values["y"]
    against_torch(graph, feed, lambda *xs: torch.einsum(equation, *xs), np.ones(y.shape))


@pytest.mark.parametrize("shape, repeats", [((0, 2), [2, 3]), ((2, 0), [0, 3]), ((2, 3), [0, 1])])
def test_tile_backward_on_empty_tensors(shape, repeats):
    graph = one_node("Tile", ["x", "r"], x=None, r=None)
    x = np.arange(float(np.prod(shape))).reshape(shape)
    out = tuple(n * r for n, r in zip(shape, repeats))
    run = graph.run({"x": x, "r": np.array(repeats)}, seed=np.ones(out))
    expected = torch.tensor(x, requires_grad=True)
    expected.tile(repeats).backward(torch.ones(out, dtype=torch.float64))
    np.testing.assert_array_equal(run.grads["x"], expected.grad.numpy())


def test_conv_backward_with_no_channels():
    """Each output sums over no input channel: zeros (torch returns no output channels here, so no oracle)."""
    graph = one_node("Conv", ["x", "w"], x=None, w=None)
    run = graph.run({"x": np.ones((1, 0, 4, 5)), "w": np.ones((2, 0, 3, 3))}, seed=np.ones((1, 2, 2, 3)))
    np.testing.assert_array_equal(run.values["y"], np.zeros((1, 2, 2, 3)))
    assert run.grads["x"].shape == (1, 0, 4, 5) and run.grads["w"].shape == (2, 0, 3, 3)


def test_batch_normalization_wants_one_value_per_channel():
    graph = one_node("BatchNormalization", ["x", "s", "s", "s", "s"], x=None, s=None)
    with pytest.raises(CgError, match=r"expected scale of shape \[6\] \(one value per channel of X, of shape "
                                      r"\[3, 6, 1, 2\]\), found \[3, 1, 1, 2\]"):
        graph.run({"x": np.ones((3, 6, 1, 2)), "s": np.ones((3, 1, 1, 2))}, seed=np.ones((3, 6, 1, 2)))


def test_layer_normalization_backward_of_an_empty_batch():
    graph = one_node("LayerNormalization", ["x", "s"], outputs=["y", "m", "v"], x=None, s=None)
    feed = {"x": np.ones((0, 2)), "s": np.ones(2)}
    against_torch(graph, feed, lambda x, s: torch.nn.functional.layer_norm(x, (2,), s), np.ones((0, 2)))


def test_einsum_letters_label_axes_of_one_length():
    """numpy's einsum lets an empty diagonal of unequal lengths through, then backward cannot map it back."""
    graph = one_node("Einsum", attrs={"equation": "ii->i"}, x=None)
    with pytest.raises(CgError, match=r"^nodes\[0\] \(Einsum 'y'\): the letter 'i' of the equation 'ii->i' labels "
                                      r"axes of lengths 0 and 3"):
        graph.run({"x": np.ones((0, 3))}, seed=np.ones(0))


@pytest.mark.parametrize("labels, weights, message", [
    ([1, 0], None, r"expected scores of shape N×C×… and labels of shape N×…, found scores of shape \[4, 3\] and "
                   r"labels of shape \[2\]"),
    ([1, 0, 2, 0], np.ones(2), r"expected weights of shape \[3\] \(one per class\), found \[2\]"),
    ([1, 0, 3, 0], None, r"expected labels in \[0, 2\] \(the classes of the scores\), found 3"),
])
def test_softmax_cross_entropy_checks_labels_and_weights(labels, weights, message):
    names = ["s", "l"] + ["w"] * (weights is not None)
    graph = one_node("SoftmaxCrossEntropyLoss", names, **dict.fromkeys(names))
    feed = {"s": np.ones((4, 3)), "l": np.array(labels), **({"w": weights} if weights is not None else {})}
    with pytest.raises(CgError, match=r"^nodes\[0\] \(SoftmaxCrossEntropyLoss 'y'\): " + message):
        graph.run(feed)
