"""The graph model and the interpreter: networkx form, round trips, accumulation, scale."""

import json

import networkx as nx
import numpy as np
import pytest

import cgtools
from helpers import EXAMPLES, NAN_GRAPH, graph_of

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def test_x_times_x_keeps_both_edges_and_both_gradients():
    g = graph_of([{"op": "Mul", "inputs": ["x", "x"], "outputs": ["y"]}], inputs=[{"name": "x", "value": 3.0}])
    G = g.to_networkx()
    assert isinstance(G, nx.MultiDiGraph)
    assert sorted(G.edges("x", keys=True)) == [("x", "y", 0), ("x", "y", 1)]
    run = g.run()
    assert run.grads["x"] == 6  # both uses contribute: y = x², dy/dx = 2x
    G = run.to_networkx()
    assert [d["grad"] for _, _, d in G.edges(data=True)] == [6, 6]


def test_networkx_carries_values_and_gradients_after_a_run():
    g = cgtools.load(EXAMPLES / "affine_square.json")
    G = g.run().to_networkx()
    edge = G.edges["d", "e", 0]
    assert edge["tensor"] == "d" and edge["value"] == 5 and edge["grad"] == 10
    assert G.nodes["x"]["kind"] == "input" and G.nodes["x"]["grad"] == 30
    assert G.nodes["e"]["op"] == "Pow" and G.nodes["e"]["values"]["e"] == 25
    assert list(G.nodes) == ["x", "a", "b", "two", "c", "d", "e"]  # deterministic order


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_json_networkx_json_round_trip(path):
    g = cgtools.load(path)
    again = cgtools.Graph.from_networkx(g.to_networkx())
    assert again.to_dict() == g.to_dict()
    assert json.loads(json.dumps(g.to_dict())) == g.to_dict()
    first, second = g.run(), again.run()
    for name in first.values:
        np.testing.assert_array_equal(first.values[name], second.values[name])
    for name in first.grads:
        np.testing.assert_array_equal(first.grads[name], second.grads[name])


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_save_and_load_round_trip(path, tmp_path):
    g = cgtools.load(path)
    g.save(tmp_path / "copy.json")
    assert cgtools.load(tmp_path / "copy.json").to_dict() == g.to_dict()


def test_from_networkx_reads_inputs_from_edges():
    G = cgtools.load(EXAMPLES / "affine_square.json").to_networkx()
    G.remove_edge("a", "c", key=0)
    G.add_edge("b", "c", key=0, tensor="b")  # c = b * x now
    run = cgtools.Graph.from_networkx(G).run()
    assert run.values["c"] == 2 and run.values["e"] == 16


def test_large_arrays_are_saved_beside_the_graph(tmp_path):
    w = np.arange(2000.0).reshape(40, 50)
    g = graph_of([{"op": "ReduceSum", "inputs": ["w"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                 params=[{"name": "w", "value": w.tolist()}])
    g.save(tmp_path / "big.json")
    doc = json.loads((tmp_path / "big.json").read_text())
    assert doc["params"][0]["value"] == {"file": "big.npz", "key": "w"}
    np.testing.assert_array_equal(cgtools.load(tmp_path / "big.json").leaves["w"].value, w)


def test_running_twice_gives_the_same_gradients():
    g = cgtools.load(EXAMPLES / "mlp_xent.json")
    first = {k: v.copy() for k, v in g.run().grads.items()}
    second = g.run().grads
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_integer_tensors_get_no_gradient_and_float32_stays_float32():
    g = cgtools.load(EXAMPLES / "mlp_xent.json")
    run = g.run()
    assert "labels" not in run.grads and "W1" in run.grads
    X = np.asarray(g.leaves["X"].value, np.float32)
    params = {k: np.asarray(g.leaves[k].value, np.float32) for k in ("W1", "b1", "W2", "b2")}
    run32 = g.run({"X": X, **params})
    assert run32.values["L"].dtype == np.float32
    assert all(run32.grads[k].dtype == np.float32 for k in ("X", "W1", "b1", "z1", "logits"))
    np.testing.assert_allclose(run32.grads["W1"], run.grads["W1"], rtol=1e-4, atol=1e-6)


def test_tensors_the_loss_ignores_get_zero_gradient():
    g = graph_of([{"op": "Mul", "inputs": ["x", "y"], "outputs": ["p"]},
                  {"op": "Exp", "inputs": ["y"], "outputs": ["side"]}],
                 inputs=[{"name": "x", "value": 2.0}, {"name": "y", "value": 5.0}], outputs=["p", "side"], loss="p")
    run = g.run()
    assert run.grads["x"] == 5 and run.grads["y"] == 2 and run.grads["side"] == 0
    assert run.values["side"] == pytest.approx(np.exp(5))


def test_broadcast_gradients_are_reduced_to_the_input_shape():
    g = graph_of([{"op": "Mul", "inputs": ["m", "row"], "outputs": ["p"]},
                  {"op": "ReduceSum", "inputs": ["p"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                 inputs=[{"name": "m", "value": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}],
                 params=[{"name": "row", "value": [[10.0, 20.0]]}])
    run = g.run()
    np.testing.assert_array_equal(run.grads["row"], [[9.0, 12.0]])
    np.testing.assert_array_equal(run.grads["m"], [[10.0, 20.0]] * 3)


def test_seed_gradient_for_a_non_scalar_loss():
    g = graph_of([{"op": "Mul", "inputs": ["x", "x"], "outputs": ["y"]}], inputs=[{"name": "x", "value": [1.0, 2.0]}])
    run = g.run(seed=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(run.grads["x"], [2.0, 40.0])


@pytest.mark.slow
def test_a_chain_of_100000_nodes_runs_forward_and_backward():
    n = 100_000
    nodes = [{"op": "Add" if k % 2 else "Mul", "inputs": [f"t{k}", "c"], "outputs": [f"t{k + 1}"]} for k in range(n)]
    g = graph_of(nodes, inputs=[{"name": "t0", "value": 1.0}], params=[{"name": "c", "value": 1.0}])
    run = g.run()
    assert run.values[f"t{n}"] == n / 2 + 1
    # with c = 1: each Add passes 1 to c, each Mul k passes t_k = 1 + k/2
    half = n // 2
    assert run.grads["t0"] == 1.0 and run.grads["c"] == half * (half + 1) / 2 + half


def test_nodes_listed_out_of_order_run_in_topological_order():
    g = graph_of([{"op": "Add", "inputs": ["c", "b"], "outputs": ["d"]},
                  {"op": "Mul", "inputs": ["a", "x"], "outputs": ["c"]}],
                 inputs=[{"name": "x", "value": 1.0}],
                 params=[{"name": "a", "value": 3.0}, {"name": "b", "value": 2.0}], outputs=["d"])
    assert g.run().values["d"] == 5


def test_custom_op_registered_from_python():
    @cgtools.register_op("CustomCube")
    class Cube(cgtools.Operation):
        """x³"""

        @staticmethod
        def forward(ctx, value, *, scale: float = 1.0):
            ctx.append(value)
            ctx.append(scale)
            return scale * value**3

        @staticmethod
        def backward(ctx, grad_output):
            value, scale = ctx[0], ctx[-1]
            return [3 * scale * value**2 * grad_output]

    g = graph_of([{"op": "CustomCube", "inputs": ["x"], "outputs": ["y"], "attrs": {"scale": 2}}],
                 inputs=[{"name": "x", "value": 2.0}])
    run = g.run()
    assert run.values["y"] == 16 and run.grads["x"] == 24


def test_npz_values_load_without_pickle(tmp_path):
    np.savez(tmp_path / "w.npz", W=np.eye(2))
    doc = {"cgtools": "1.0", "params": [{"name": "W", "value": {"file": "w.npz", "key": "W"}}],
           "nodes": [{"op": "ReduceSum", "inputs": ["W"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
           "outputs": ["s"]}
    (tmp_path / "g.json").write_text(json.dumps(doc))
    assert cgtools.load(tmp_path / "g.json").run().values["s"] == 2


def test_per_use_gradients_add_up_to_the_tensor_gradient():
    g = cgtools.load(EXAMPLES / "square_times_3x.json")
    run = g.run(per_use=True)
    assert run.use_grads[("f", 0)] == 24 and run.use_grads[("g", 1)] == 12  # 2x·3x and x²·3 at x = 2
    assert run.use_grads[("f", 0)] + run.use_grads[("g", 1)] == run.grads["x"]
    assert g.run().use_grads == {}  # kept only when asked
    mlp = cgtools.load(EXAMPLES / "mlp_xent.json").run(per_use=True)
    assert set(mlp.use_grads) >= {("XW1", 0), ("XW1", 1), ("L", 0)}


def test_non_finite_tensors_in_order():
    doc = NAN_GRAPH
    with np.errstate(all="ignore"):
        run = cgtools.load(doc).run()
    values, grads = run.non_finite()
    assert values == ["lx", "ex", "L"] and grads == ["lx", "x"]
