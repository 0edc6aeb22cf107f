"""`--show chain`: the chain rule written on the edges, as the lecture's backward slides write it, checked against
the engine's gradients; every op with a gradient states its local derivative or is listed as stating none."""

import re

import numpy as np
import pytest

import cgtools
from cgtools.export.chain import NO_FORMULA, Chains, Partial
from cgtools.export.frames import Frames
from cgtools.export.html import to_html
from cgtools.export.labels import format_number, format_shape
from cgtools.export.scene import View, make_scene
from cgtools.ops import REGISTRY
from cgtools.ops.base import WITHOUT_FORMULA, has_gradient
from cgtools.parts import Node
from helpers import EXAMPLES, ROOT, register_cube

GOLDEN = ROOT / "tests" / "golden"
CHAIN = View(show=frozenset({"values", "grads", "chain"}))


def edge_texts(graph, run, view: View = CHAIN) -> dict:
    """Each drawn edge's label lines, by (tensor, the first tensor its reader makes or, an output node, is)."""
    S = make_scene(graph, run, view).graph
    return {(data["tensor"], S.nodes[v]["tensors"][0]): [line.text for line in data["lines"]]
            for _, v, data in S.edges(data=True)}


def node_texts(graph, run, view: View = CHAIN) -> dict:
    S = make_scene(graph, run, view).graph
    return {data["model"]: [line.text for line in data["lines"]] for _, data in S.nodes(data=True)}


def number(v) -> str:
    return format_number(float(np.asarray(v)))


def test_affine_square_edges_carry_the_lecture_lines(cli, update_golden, tmp_path):
    out = tmp_path / "affine.dot"
    result = cli("render", EXAMPLES / "affine_square.json", "--show", "values,grads,chain", "-f", "dot", "-o", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    golden = GOLDEN / "affine_square_chain.dot"
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text(), f"DOT changed; review and rerun with --update-golden: {golden}"

    graph = cgtools.load(EXAMPLES / "affine_square.json")
    run = graph.run(per_use=True)
    edges = edge_texts(graph, run)
    assert edges["d", "e"] == ["5", "∂e/∂d = 2d · ∂e/∂e = 10"]
    assert edges["c", "d"] == ["3", "∂e/∂c = ∂e/∂d · ∂d/∂c = 10 · ∂(c + b)/∂c = 10"]
    assert edges["b", "d"] == ["2", "∂e/∂b = ∂e/∂d · ∂d/∂b = 10 · ∂(c + b)/∂b = 10"]
    assert edges["x", "c"] == ["1", "∂e/∂x = ∂e/∂c · ∂c/∂x = 10a = 30"]
    assert edges["a", "c"] == ["3", "∂e/∂a = ∂e/∂c · ∂c/∂a = 10x = 10"]
    assert edges["e", "e"] == ["25", "∂e/∂e = 1"]  # the seed, as without chain
    # the numbers are the engine's: upstream ∂e/∂c and the results
    g = run.grads
    assert [number(g[t]) for t in ("d", "c", "b", "x", "a")] == ["10", "10", "10", "30", "10"]
    assert float(g["c"]) * float(run.values["a"]) == float(g["x"])  # 10a = 30 holds
    for line in re.findall(r"∂e/∂\w = [^<]*", text):  # the DOT holds exactly these lines
        assert line in {t for lines in edges.values() for t in lines}


def test_a_shared_tensor_shows_both_shares_and_their_sum():
    graph = cgtools.load(EXAMPLES / "square_times_3x.json")
    run = graph.run(per_use=True)
    x = float(run.values["x"])
    via_f, via_g = 2 * x * (3 * x), 3 * x**2  # ∂L/∂f · ∂f/∂x = g·2x and ∂L/∂g · ∂g/∂x = f·3, by hand
    assert float(run.use_grads["f", 0]) == via_f and float(run.use_grads["g", 1]) == via_g
    assert float(run.grads["x"]) == via_f + via_g
    nodes, edges = node_texts(graph, run), edge_texts(graph, run)
    total = (f"∂L/∂x = ∂L/∂f · ∂f/∂x + ∂L/∂g · ∂g/∂x = {number(via_f)} + {number(via_g)} = "
             f"{number(via_f + via_g)}")
    assert nodes["x"] == [f"x = {number(x)}", total]
    assert edges["x", "f"] == [f"∂L/∂x += ∂L/∂f · ∂f/∂x = {number(run.grads['f'])} · 2x = {number(via_f)}"]
    assert edges["x", "g"] == [f"∂L/∂x += ∂L/∂g · ∂g/∂x = {number(run.grads['g'])} · 3 = {number(via_g)}"]
    assert total == "∂L/∂x = ∂L/∂f · ∂f/∂x + ∂L/∂g · ∂g/∂x = 24 + 12 = 36"


def cube_graph():
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 2.0}],
                         "constants": [{"name": "k", "value": 5.0}],
                         "nodes": [{"op": "Cube", "inputs": ["x"], "outputs": ["y"]},
                                   {"op": "Mul", "inputs": ["y", "k"], "outputs": ["L"]}],
                         "outputs": ["L"]})


def test_an_op_without_a_formula_says_local_gradient():
    register_cube()
    graph = cube_graph()
    run = graph.run(per_use=True)
    edges = edge_texts(graph, run)
    assert edges["x", "y"] == ["2", f"∂L/∂x = ∂L/∂y · {NO_FORMULA} = {number(run.grads['x'])}"]
    assert number(run.grads["x"]) == number(3 * 2.0**2 * 5)


def test_an_op_registered_from_python_states_its_formula():
    register_cube(local_gradients=("3{value}²",))
    graph = cube_graph()
    run = graph.run(per_use=True)
    assert edge_texts(graph, run)["x", "y"] == ["2", "∂L/∂x = ∂L/∂y · ∂y/∂x = 5 · 3x² = 60"]
    assert number(run.grads["y"]) == "5" and number(run.grads["x"]) == "60"


def test_every_op_with_a_gradient_has_a_formula_or_is_listed():
    built_in = {name: cls for name, cls in REGISTRY.items() if cls.__module__.startswith("cgtools.ops")}
    with_gradient = {name for name, cls in built_in.items() if has_gradient(cls)}
    stated = {name for name in with_gradient if built_in[name].local_gradients is not None}
    assert with_gradient - stated == WITHOUT_FORMULA, "state local_gradients beside backward, or list it"
    assert not stated & WITHOUT_FORMULA
    assert {name for name, cls in built_in.items() if cls.local_gradients is not None} <= with_gradient


@pytest.mark.parametrize("name", sorted(n for n, c in REGISTRY.items() if c.local_gradients is not None))
def test_every_formula_fills_in_from_the_op_names(name):
    """Each template names only the op's inputs, outputs, attributes, {up}, {n} (and a loss's {mean})."""
    cls = REGISTRY[name]
    spec = cls.spec
    terms = {n: n for n in (*spec.inputs, *spec.outputs, *spec.attrs)} | {"up": "{up}", "n": "n"}
    terms.update((n, "0") for n in ("transA", "transB", "reduction") if n in terms)
    assert len(cls.local_gradients) <= len(spec.inputs)
    for slot in range(len(spec.inputs)):
        formula = cls.local_gradient(slot, terms, {})
        assert formula is None or formula and "{" not in formula.replace("{up}", "")


def test_tensors_get_the_formula_and_shape_and_the_formula_holds():
    graph = cgtools.load(EXAMPLES / "logistic_regression.json")
    run = graph.run(per_use=True)
    edges = edge_texts(graph, run)
    W = run.grads["W"]
    assert edges["W", "XW"][-1] == f"∂L/∂W = ∂L/∂XW · ∂XW/∂W = Xᵀ·∂L/∂XW [{W.shape[0]}×{W.shape[1]}]"
    assert edges["X", "XW"][-1].endswith("= ∂L/∂XW·Wᵀ [4×2]")
    np.testing.assert_allclose(run.values["X"].T @ run.grads["XW"], W, rtol=1e-6)  # what the line says
    np.testing.assert_allclose(run.grads["XW"] @ run.values["W"].T, run.grads["X"], rtol=1e-6)
    b = run.grads["b"]
    assert edges["b", "logits"][-1] == f"∂L/∂b = ∂L/∂logits · ∂logits/∂b = Σ(∂L/∂logits) [{b.shape[0]}]"
    np.testing.assert_allclose(run.grads["logits"].sum(axis=0), b, rtol=1e-6)


def test_backward_frames_write_the_lines_as_each_gradient_appears():
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    frames = Frames(graph, graph.run(per_use=True), CHAIN, "dot")
    texts = [frame.decode() for frame in frames]
    n_ops = len(graph.nodes)
    square, product = "∂e/∂d = 2d · ∂e/∂e = 10", "∂e/∂x = ∂e/∂c · ∂c/∂x = 10a = 30"
    first = [next(k for k, t in enumerate(texts) if line in t) for line in (square, product)]
    assert first == [n_ops + 2, len(texts) - 2]  # after the seed; with the product's backward, the last step
    assert all("∂" not in t for t in texts[:n_ops + 1])  # forward: no gradient yet


def test_chain_text_is_escaped_and_in_the_html_tooltip(tmp_path):
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "<b>&x", "value": 3.0}],
                          "nodes": [{"op": "Tanh", "inputs": ["<b>&x"], "outputs": ["t"]}], "outputs": ["t"]})
    run = graph.run(per_use=True)
    dot = cgtools.export.draw(graph, run, CHAIN, fmt="dot").decode()
    line = "∂t/∂&lt;b&gt;&amp;x = (1 − t²) · ∂t/∂t = "
    assert line in dot and not any("<b>&x" in label for label in re.findall(r"label=<(.*)>", dot))
    page = to_html(graph, run, CHAIN)  # the data the page reads is JSON with <, > and & escaped
    name = "∂t/∂\\u003cb\\u003e\\u0026x"
    tooltip = f'"grad":"{name}: {format_number(1 - np.tanh(3.0) ** 2, 6)}\\n{name} = (1 − t²) · ∂t/∂t = '
    assert tooltip in page and "<b>&x" not in page
    assert f"∂t/∂t = {number(1 - np.tanh(3.0) ** 2)}<" in dot  # tanh'(3), the engine's gradient


def test_show_chain_on_the_command_line(cli):
    result = cli("render", EXAMPLES / "affine_square.json", "--show", "chian", "-f", "dot", "-o", "-")
    assert result.returncode == 1 and "chain" in result.stderr and "Traceback" not in result.stderr


def test_the_line_keeps_its_fractions_for_typesetting():
    """A ChainLine's steps hold Partial fractions, so TeX can write ∂e/∂c as \\frac{\\partial e}{\\partial c}."""
    graph = cgtools.load(EXAMPLES / "square_times_3x.json")
    chains = Chains(graph, graph.run(per_use=True), {"three": "3", "two": "2"}, 4)
    total = chains.total("x")
    assert [part for part in total.steps[0] if isinstance(part, Partial)] == [
        Partial("L", "f"), Partial("f", "x"), Partial("L", "g"), Partial("g", "x")]
    assert total.steps[1:] == (("24 + 12",), ("36",)) and total.complete
    assert chains.edge("x", "g", 1, True).text == "∂L/∂x += ∂L/∂g · ∂g/∂x = 4 · 3 = 12"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "gpt_block"])
def test_real_models_get_a_line_on_every_edge_into_an_op(name, exported):
    model = exported(name)
    graph = cgtools.load(model.path)
    summed = Node("ReduceSum", ["y"], ["L"], {"keepdims": 0})
    graph = cgtools.Graph(list(graph.leaves.values()), [*graph.nodes, summed], ["L"])
    run = graph.run({"x": model.x.numpy()}, per_use=True)
    S = make_scene(graph, run, View(show=frozenset({"grads", "chain"}))).graph
    ops = {node.name: node for node in graph.nodes}
    for _, v, data in S.edges(data=True):
        if S.nodes[v]["kind"] != "op":
            continue
        op = ops[S.nodes[v]["model"]].op
        assert data["chain"].startswith(f"∂L/∂{data['tensor'][:5]}"), (op, data["chain"])
        assert (NO_FORMULA in data["chain"]) == (op in WITHOUT_FORMULA), (op, data["chain"])
        shape = run.grads[data["tensor"]].shape
        assert data["chain"].endswith(format_shape(shape) if shape else number(run.grads[data["tensor"]]))
    if name == "resnet18":  # the classifier's Gemm (transB = 1): ∂L/∂X = ∂L/∂y·W, as the engine computes it
        gemm = next(node for node in graph.nodes if node.op == "Gemm")
        into = next(d["chain"] for _, v, d in S.edges(data=True) if S.nodes[v]["model"] == gemm.name)
        assert into.endswith(f"= ∂L/∂y·{gemm.inputs[1]} [1×512]")
        np.testing.assert_allclose(run.grads["y"] @ run.values[gemm.inputs[1]], run.grads[gemm.inputs[0]],
                                   rtol=1e-5, atol=1e-7)
