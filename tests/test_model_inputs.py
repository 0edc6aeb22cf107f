"""What a model is fed and what is trained, on real exports: ONNX initializers read as weights become params and
the exporter's other constants stay constants (against the model's named_parameters), --params/--constants
override that, --random-inputs sizes symbolic dims with --dim, and --labels/--loss-fn attach cross-entropy or
MSE whose gradients equal PyTorch's."""

import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models import export

import cgtools
from cgtools.cli.options import upstream_gradient
from cgtools.errors import CgError
from cgtools.losses import with_loss

MODELS = ["resnet18", "mobilenet_v2", "densenet121", "transformer_encoder", "gpt_block"]


@pytest.fixture(scope="module")
def trainable(tmp_path_factory):
    """Models exported as they train (tests/models.py: params nudged apart, BatchNorm not folded), batch 2."""
    folder, made = tmp_path_factory.mktemp("trainable"), {}

    def get(name: str):
        if name not in made:
            made[name] = export(name, folder, trainable=True, batch=2)
        return made[name]

    return get


def shapes(arrays) -> Counter:
    """Shapes up to order (the exporters transpose Linear weights for MatMul), counted."""
    return Counter(tuple(sorted(np.shape(a))) for a in arrays)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_the_params_of_an_export_are_the_models_parameters(trainable, name):
    model = trainable(name)
    graph = cgtools.load(model.path)
    params = graph.leaves_of("param")
    expected = dict(model.model.named_parameters())
    assert len(params) == len(expected)
    assert shapes(p.value for p in params) == shapes(p.detach().numpy() for p in expected.values())
    # kept names are those weights, whatever the exporter renamed (onnx::MatMul_118, val_0) is found by role
    assert all(p.name in expected for p in params if not p.name.startswith(("onnx::", "val_")))
    for buffer, _ in model.model.named_buffers():  # BatchNorm's running statistics are not trained
        if buffer in graph.leaves:
            assert graph.leaves[buffer].kind == "constant", buffer


def test_exporter_made_scalars_and_masks_are_constants(exported):
    graph = cgtools.load(exported("gpt_block").path)
    floats = [leaf for leaf in graph.leaves.values() if leaf.value is not None and leaf.value.dtype.kind == "f"]
    assert all(leaf.kind == "constant" for leaf in floats if leaf.value.size == 1)
    assert all(leaf.kind == "param" for leaf in floats if leaf.value.size > 1)
    assert {"ln1.weight", "qkv.bias", "mlp.2.bias"} <= {leaf.name for leaf in graph.leaves_of("param")}
    encoder = cgtools.load(exported("transformer_encoder").path)  # dynamo: 1/sqrt(head size) is a constant
    assert all(leaf.value.size > 1 for leaf in encoder.leaves_of("param"))
    assert any(leaf.value.size == 1 and leaf.value.dtype.kind == "f" for leaf in encoder.leaves_of("constant"))


def test_params_and_constants_flip_a_leaf(exported, cli):
    path = exported("gpt_block").path
    graph = cgtools.load(path)
    scalar = next(leaf.name for leaf in graph.leaves_of("constant") if leaf.value.dtype.kind == "f")
    flipped = cgtools.load(path, params=[scalar], constants=["ln1.weight"])
    assert flipped.leaves["ln1.weight"].kind == "constant" and flipped.leaves[scalar].kind == "param"
    assert len(flipped.leaves_of("param")) == len(graph.leaves_of("param"))
    x = exported("gpt_block").x.numpy()
    grads = flipped.run({"x": x}, seed=1.0).grads
    assert "ln1.weight" not in grads and scalar in grads
    count = len(graph.leaves_of("param"))
    result = cli("info", path, "--constants", "ln1.weight,ln1.bias")
    assert result.returncode == 0 and f"{count - 2} params" in result.stdout, result.stderr
    with pytest.raises(CgError, match="did you mean 'ln1.weight'"):
        cgtools.load(path, constants=["ln1.weigth"])
    result = cli("run", path, "--params", "ln1.weigth")
    assert result.returncode == 1 and "--params" in result.stderr and "did you mean 'ln1.weight'" in result.stderr
    result = cli("info", path, "--params", "x")
    assert result.returncode == 1 and "input without a value" in result.stderr


def torch_grads(model, x, loss_of):
    """∂loss/∂x and ∂loss/∂param for every param, from PyTorch's autograd."""
    model.zero_grad()
    x = x.clone().requires_grad_()
    loss_of(model(x)).backward()
    return x.grad.numpy(), {name: p.grad.numpy() for name, p in model.named_parameters()}


def assert_grads_equal(ours: dict, model, x, loss_of, graph):
    grad_x, expected = torch_grads(model, x, loss_of)
    np.testing.assert_allclose(ours["x"], grad_x, rtol=1e-3, atol=1e-6 * np.abs(grad_x).max())
    by_name = {leaf.name: np.asarray(ours[leaf.name]) for leaf in graph.leaves_of("param")}
    for name, grad in expected.items():
        # a weight the exporter renamed is matched by its gradient's shape and values, up to a transpose
        got = by_name.get(name)
        if got is None:
            got = next(g.T for g in by_name.values() if g.shape == grad.T.shape and np.allclose(g.T, grad, 1e-3, 1e-6))
        np.testing.assert_allclose(got, grad, rtol=1e-3, atol=1e-5 * max(np.abs(grad).max(), 1e-6), err_msg=name)


@pytest.mark.slow
def test_an_upstream_gradient_of_ones_gives_pytorchs_gradients_of_the_sum(trainable, cli, tmp_path):
    # resnet18 in Python (the command's --json of its 11M weights' values is close to a gigabyte), the same
    # upstream gradient the command makes; the GPT block through the command itself
    model = trainable("resnet18")
    graph = cgtools.load(model.path)
    run = graph.run({"x": model.x.numpy()}, seed=upstream_gradient("ones"))
    assert_grads_equal(run.grads, model.model, model.x, lambda y: y.sum(), graph)
    block = trainable("gpt_block")
    np.savez(tmp_path / "x.npz", x=block.x.numpy())
    result = cli("run", block.path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "ones", "--json")
    assert result.returncode == 0, result.stderr
    assert_grads_equal(json_arrays(result.stdout), block.model, block.x, lambda y: y.sum(), cgtools.load(block.path))


def json_arrays(stdout: str) -> dict:
    return {name: np.asarray(grad) for name, grad in json.loads(stdout)["grads"].items()}


@pytest.mark.slow
def test_labels_attach_pytorchs_cross_entropy(trainable, cli, tmp_path):
    model = trainable("resnet18")
    labels = np.array([3, 999])
    attached = with_loss(cgtools.load(model.path), labels, "xent", inputs={"x": model.x.numpy()})
    assert attached.sentence == "loss = cross-entropy of 'y' against labels (mean over 2 labels)"
    run = attached.graph.run({"x": model.x.numpy()})
    expected = F.cross_entropy(model.model(model.x), torch.tensor(labels)).item()
    assert float(run.values[attached.loss]) == pytest.approx(expected, rel=1e-5)
    assert_grads_equal(run.grads, model.model, model.x, lambda y: F.cross_entropy(y, torch.tensor(labels)),
                       attached.graph)
    np.savez(tmp_path / "x.npz", x=model.x.numpy())
    np.save(tmp_path / "labels.npy", labels)
    result = cli("run", model.path, "--inputs", tmp_path / "x.npz", "--labels", tmp_path / "labels.npy",
                 "--loss-fn", "xent", "--stats")
    assert result.returncode == 0, result.stderr
    assert "note: loss = cross-entropy of 'y' against labels.npy (mean over 2 labels)" in result.stderr
    assert re.search(rf"^loss +float32 +scalar +{expected:.4g}", result.stdout, re.M), result.stdout[-2000:]


@pytest.mark.slow
def test_a_float_target_attaches_pytorchs_mse(trainable, cli, tmp_path):
    model = trainable("gpt_block")
    target = np.random.default_rng(0).standard_normal(tuple(model.x.shape)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=model.x.numpy())
    np.savez(tmp_path / "target.npz", target=target)
    result = cli("run", model.path, "--inputs", tmp_path / "x.npz", "--labels", tmp_path / "target.npz", "--json")
    assert result.returncode == 0, result.stderr
    assert "loss = mean squared error of 'y' against target.npz" in result.stderr
    assert_grads_equal(json_arrays(result.stdout), model.model, model.x,
                       lambda y: F.mse_loss(y, torch.tensor(target)), cgtools.load(model.path))
    result = cli("render", model.path, "--inputs", tmp_path / "x.npz", "--labels", tmp_path / "target.npz",
                 "-o", tmp_path / "gpt.svg", "-f", "dot")
    assert result.returncode == 0 and "loss = mean squared error" in result.stderr, result.stderr
    assert "MSE" in (tmp_path / "gpt.svg").read_text()


def test_label_mistakes_are_clear_errors(exported, cli, tmp_path):
    model = exported("resnet18")  # logits y: 1×1000
    np.savez(tmp_path / "x.npz", x=model.x.numpy())
    cases = [(np.array([1, 2]), "expected [1], one class index per example"),
             (np.array([1000]), "class index 1000 at [0] is out of range: 'y' has 1000 classes (0 to 999)"),
             (np.array([0.5]), "a float target"),
             (np.zeros((1, 1000), np.int64), "needs a float target")]
    for i, (labels, expected) in enumerate(cases):
        np.save(tmp_path / f"labels{i}.npy", labels)
        fn = ["--loss-fn", "mse"] if i == 3 else ["--loss-fn", "xent"] if i == 2 else []
        result = cli("run", model.path, "--inputs", tmp_path / "x.npz", "--labels", tmp_path / f"labels{i}.npy", *fn)
        assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = cli("run", model.path, "--inputs", tmp_path / "x.npz", "--labels", tmp_path / "labels0.npy",
                 "--upstream-grad", "ones")
    assert result.returncode == 1 and "not both" in result.stderr
    result = cli("gradcheck", model.path, "--inputs", tmp_path / "x.npz", "--loss-fn", "xent")
    assert result.returncode == 1 and "--loss-fn needs --labels" in result.stderr


@pytest.fixture(scope="module")
def symbolic_batch(tmp_path_factory):
    """The GPT block exported with a symbolic batch dimension named `batch`."""
    return export("gpt_block", tmp_path_factory.mktemp("dynamic"),
                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}).path


def test_random_inputs_size_symbolic_dims(symbolic_batch, cli):
    assert cgtools.load(symbolic_batch).leaves["x"].dims == ("batch", 8, 32)
    result = cli("run", symbolic_batch, "--random-inputs", "3", "--dim", "batch=2", "--upstream-grad", "ones", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert np.shape(run["values"]["x"]) == (2, 8, 32) and np.shape(run["values"]["y"]) == (2, 8, 32)
    assert np.shape(run["grads"]["qkv.bias"]) == (96,)
    again = json.loads(cli("run", symbolic_batch, "--random-inputs", "3", "--dim", "batch=2", "--json",
                           "--no-backward").stdout)
    assert again["values"]["x"] == run["values"]["x"]  # seeded
    result = cli("render", symbolic_batch, "--random-inputs", "-f", "dot", "-o", "-", "--upstream-grad", "mean")
    assert result.returncode == 0
    assert "dimension 'batch' drawn with size 1 (size it with --dim batch=N)" in result.stderr
    result = cli("gradcheck", symbolic_batch, "--random-inputs", "1", "--dim", "batch=1", "--max-elements", "4",
                 "--labels", write_target(symbolic_batch), "--rtol", "1e-3")
    assert result.returncode == 0, result.stdout + result.stderr


def write_target(path):
    target = path.with_name("target.npy")
    np.save(target, np.zeros((1, 8, 32), np.float32))
    return target


def test_a_bad_dim_is_an_error(symbolic_batch, cli):
    for args, expected in [(["--random-inputs", "--dim", "bach=2"], "no input has a dimension named 'bach' "
                            "(did you mean 'batch'?)"),
                           (["--random-inputs", "--dim", "batch=0"], "expected NAME=SIZE"),
                           (["--dim", "batch=2"], "give --random-inputs too")]:
        for command in ("run", "compare", "info"):
            result = cli(command, symbolic_batch, *args)
            assert result.returncode == 1 and expected in result.stderr, (command, args, result.stderr)


def test_integer_inputs_index_within_the_table_they_gather_from():
    doc = {"cgtools": "1.0", "inputs": [{"name": "i", "dtype": "int64", "shape": [50]}],
           "params": [{"name": "table", "value": [[0.0, 1.0]] * 7}],
           "nodes": [{"op": "Gather", "inputs": ["table", "i"], "outputs": ["rows"]}], "outputs": ["rows"]}
    drawn = cgtools.load(doc).random_inputs(0)["i"]
    assert drawn.dtype == np.int64 and drawn.min() >= 0 and drawn.max() == 6


@pytest.mark.slow
def test_swin_t_params_are_its_parameters(tmp_path):
    model = export("swin_t", tmp_path, trainable=True)
    graph = cgtools.load(model.path)
    assert len(graph.leaves_of("param")) == len(list(model.model.parameters()))
    assert all(leaf.value.size > 1 for leaf in graph.leaves_of("param"))
