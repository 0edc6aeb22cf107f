"""Diagrams: golden DOT, real Graphviz renders, the lecture's numbers on the right edges, frames."""

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import cgtools
from cgtools.export import draw
from cgtools.export.dot import to_dot
from cgtools.export.frames import Frames
from cgtools.export.scene import View
from helpers import EXAMPLES, NAN_GRAPH, ROOT

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
GOLDEN = ROOT / "tests" / "golden"
SVG = "{http://www.w3.org/2000/svg}"


def svg_items(svg: bytes) -> tuple[dict, list]:
    """Nodes as {dot id: [texts]} and edges as [(tail id, head id, [texts])] from Graphviz's SVG."""
    root = ET.fromstring(svg)
    nodes, edges = {}, []
    for group in root.iter(f"{SVG}g"):
        kind = group.get("class")
        if kind not in ("node", "edge"):
            continue
        title = group.find(f"{SVG}title").text
        texts = [t.text for t in group.iter(f"{SVG}text")]
        if kind == "node":
            nodes[title] = texts
        else:
            tail, head = title.split("->")
            edges.append((tail, head, texts))
    return nodes, edges


def node_positions(svg: bytes) -> dict:
    """Each node's outline geometry (ellipse centres, polygon points, rounded-box paths) by its dot id."""
    root = ET.fromstring(svg)
    out = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            outline = [(el.tag, el.get("cx"), el.get("cy"), el.get("points"), el.get("d")) for el in group.iter()
                       if el.tag in (f"{SVG}ellipse", f"{SVG}polygon", f"{SVG}path")]
            assert outline
            out[group.find(f"{SVG}title").text] = outline
    return out


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_golden_dot(path, update_golden):
    graph = cgtools.load(path)
    text = to_dot(graph, graph.run(per_use=True))
    golden = GOLDEN / f"{path.stem}.dot"
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text(), f"DOT changed; review and rerun with --update-golden: {golden}"
    assert to_dot(graph, graph.run(per_use=True)) == text  # byte-identical across runs


def test_affine_square_svg_puts_the_lecture_numbers_on_the_right_edges(graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    nodes, edges = svg_items(draw(graph, graph.run(), fmt="svg"))
    name = {key: texts[0] for key, texts in nodes.items()}  # the first text line: leaf name or op symbol
    by_ends = {(name[t], name[h]): texts for t, h, texts in edges}
    assert by_ends[("x", "×")] == ["x = 1", "∂e/∂x = 30"]
    assert by_ends[("a", "×")] == ["a = 3", "∂e/∂a = 10"]
    assert by_ends[("b", "+")] == ["b = 2", "∂e/∂b = 10"]
    assert by_ends[("×", "+")] == ["c = 3", "∂e/∂c = 10"]
    assert by_ends[("+", "(·)²")] == ["d = 5", "∂e/∂d = 10"]
    assert by_ends[("(·)²", "e")] == ["e = 25", "∂e/∂e = 1"]
    assert ["e", "loss"] in nodes.values()  # the loss is marked


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_every_example_renders(path, fmt, tmp_path, cli, graphviz):
    out = tmp_path / f"{path.stem}.{fmt}"
    result = cli("render", path, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    data = out.read_bytes()
    magic = {"svg": b"<?xml", "png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}[fmt]
    assert data.startswith(magic)
    assert 3_000 < len(data) < 2_000_000
    if fmt == "pdf":
        from pypdf import PdfReader

        text = PdfReader(out).pages[0].extract_text()
        assert "∂" in text or path.stem == "mlp_xent"  # the gradient's Unicode survives into the PDF


def test_unicode_survives_in_png_and_pdf_fonts(graphviz):
    graph = cgtools.load(EXAMPLES / "perceptron.json")
    svg = draw(graph, graph.run(), fmt="svg").decode()
    assert "σ" in svg and "∂ŷ/∂w" in svg and 'font-family="DejaVu Sans"' in svg


def test_frames_count_and_nodes_do_not_move(tmp_path, graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    run = graph.run()
    frames = list(Frames(graph, run, View(), "svg"))
    n_ops = len(graph.nodes)
    # bare, forward node by node, the seed, backward node by node, and the finished picture
    assert len(frames) == 1 + n_ops + (1 + n_ops) + 1
    positions = [node_positions(f) for f in frames]
    assert all(p == positions[0] for p in positions)
    paths = [[next(e.iter(f"{SVG}path")).get("d") for e in ET.fromstring(f).iter(f"{SVG}g") if e.get("class") == "edge"]
             for f in frames]
    assert all(p == paths[0] for p in paths)  # edges do not move either
    texts = [" ".join(t for _, _, ts in svg_items(f)[1] for t in ts if t and t.strip()) for f in frames]
    assert "=" not in texts[0]  # the bare graph: no numbers
    assert "c = 3" in texts[1] and "d = 5" not in texts[1]  # forward, one node at a time
    assert "e = 25" in texts[n_ops] and "∂" not in texts[n_ops]
    assert "∂e/∂e = 1" in texts[n_ops + 1] and "∂e/∂d" not in texts[n_ops + 1]  # the seed
    assert "∂e/∂d = 10" in texts[n_ops + 2] and "∂e/∂x" not in texts[n_ops + 2]
    assert "∂e/∂x = 30" in texts[-2] and texts[-1] == texts[-2]
    highlighted = [sum(1 for g in ET.fromstring(f).iter(f"{SVG}g") if g.get("class") == "node"
                       and any(el.get("stroke") == "#7c3aed" for el in g.iter())) for f in frames]
    assert highlighted[0] == 0 and highlighted[-1] == 0  # nothing active on the bare and finished pictures
    assert all(h == 1 for h in highlighted[1:-1])  # exactly one node computes at each step


@pytest.mark.slow
def test_frames_command_writes_pdfs_and_one_multipage_pdf(tmp_path, cli, graphviz):
    from pypdf import PdfReader

    result = cli("render", EXAMPLES / "affine_square.json", "-f", "pdf", "--frames", tmp_path / "frames")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "frames").glob("affine_square-[0-9].pdf"))
    assert len(files) == 9
    assert len(PdfReader(tmp_path / "frames" / "affine_square-frames.pdf").pages) == 9
    assert not list(tmp_path.glob("*.svg"))  # frames only, unless -o asks for the whole picture too


def test_forward_only_frames(graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    assert len(Frames(graph, graph.run(backward=False), View(), "dot")) == 1 + len(graph.nodes) + 1


NASTY = 'q"uote {br|ace} <tag> back\\slash co:lon\nnew'


def test_user_strings_render_literally_through_dot(graphviz):
    doc = {"cgtools": "1.0", "name": NASTY, "doc": NASTY,
           "inputs": [{"name": NASTY, "value": 2.0, "doc": NASTY}],
           "nodes": [{"op": "Mul", "inputs": [NASTY, NASTY], "outputs": ["y" + NASTY], "doc": NASTY}],
           "outputs": ["y" + NASTY]}
    graph = cgtools.load(doc)
    for fmt in ("svg", "png", "pdf"):
        assert draw(graph, graph.run(), fmt=fmt)  # Graphviz accepts the DOT
    svg = draw(graph, graph.run(), fmt="svg")
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    first, second = NASTY.split("\n")
    assert first in texts and "new" in texts  # a newline becomes a line break, nothing is lost
    assert f"{first}" in texts and f"∂y{first}" in " ".join(texts)
    titles = [a.get("{http://www.w3.org/1999/xlink}title") for a in ET.fromstring(svg).iter(f"{SVG}a")]
    assert any(t and NASTY in t for t in titles)  # tooltips keep backslashes and quotes


def test_html_injection_stays_text_in_svg(graphviz):
    evil = "</t><script>a()</script>"
    doc = {"cgtools": "1.0", "inputs": [{"name": evil, "value": 1.0}],
           "nodes": [{"op": "Neg", "inputs": [evil], "outputs": ["y"]}], "outputs": ["y"]}
    graph = cgtools.load(doc)
    svg = draw(graph, graph.run(), fmt="svg")
    assert b"<script" not in svg
    assert evil in [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_show_and_theme_options(graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    run = graph.run()
    drawn = to_dot(graph, run, View(show=frozenset({"values", "constants"})))
    assert "∂e" not in drawn and "two" in drawn and "(·)²" not in drawn and ">pow<" in drawn
    assert ">c<" not in drawn  # names hidden
    paper = to_dot(graph, run, View(theme="paper", rankdir="TB"))
    assert "rankdir=TB" in paper and "<I>∂e/∂x = 30</I>" in paper
    with pytest.raises(cgtools.CgError, match="unknown theme 'neon'"):
        View(theme="neon")


def test_nan_edges_are_flagged():
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": -1.0}],
           "nodes": [{"op": "Log", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}
    graph = cgtools.load(doc)
    with pytest.warns(RuntimeWarning):
        run = graph.run()
    drawn = to_dot(graph, run)
    assert "#be123c" in drawn and "⚠ y = nan" in drawn  # the alert colour and a sign mark the NaN


@pytest.mark.slow
def test_render_cli_errors(tmp_path, cli):
    src = EXAMPLES / "affine_square.json"
    cases = [
        (["-o", tmp_path / "nowhere" / "a.svg"], "no such folder"),
        (["-f", "gif"], "'gif' is not one of"),
        (["-o", tmp_path / "a.bmp"], "unknown format 'bmp'"),
        (["-o", src, "-f", "svg"], "would overwrite the graph itself"),
        (["-o", "-", "-f", "png"], "-o - writes text"),
        (["--theme", "neon"], "'neon' is not one of"),
        (["--show", "values,colour"], "colour"),
    ]
    for args, expected in cases:
        result = cli("render", src, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("error: ") and expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_render_to_stdout_and_default_path(tmp_path, cli, graphviz):
    result = cli("render", EXAMPLES / "affine_square.json", "-o", "-", "-f", "dot")
    assert result.returncode == 0 and result.stdout.startswith("digraph cgtools {")
    copy = tmp_path / "g.json"
    copy.write_text((EXAMPLES / "affine_square.json").read_text())
    result = cli("render", copy)
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "g.svg")
    assert (tmp_path / "g.svg").read_bytes().startswith(b"<?xml")
    umask = os.umask(0o022)
    os.umask(umask)  # read back: the command ran with this umask
    assert (tmp_path / "g.svg").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not mkstemp's 0o600


@pytest.mark.slow
def test_graphviz_missing_is_a_clear_error(tmp_path, cli):
    env_bin = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"
    result = cli("render", EXAMPLES / "affine_square.json", "-o", tmp_path / "a.svg",
                 env={"PATH": str(env_bin), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "apt-get install graphviz" in result.stderr and "brew install graphviz" in result.stderr
    result = cli("render", EXAMPLES / "affine_square.json", "-o", tmp_path / "a.dot",
                 env={"PATH": str(env_bin), "HOME": str(tmp_path)})
    assert result.returncode == 0 and (tmp_path / "a.dot").read_text().startswith("digraph")


def test_graph_without_input_values_draws_without_numbers(tmp_path, cli, graphviz):
    doc = (EXAMPLES / "affine_square.json").read_text().replace('{"name": "x", "value": 1.0}', '{"name": "x"}')
    (tmp_path / "g.json").write_text(doc)
    result = cli("render", tmp_path / "g.json", "-f", "dot", "-o", "-")
    assert result.returncode == 0 and "note: no value for x" in result.stderr
    assert not re.search(r"= \d", result.stdout)


def test_jupyter_reprs(graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    assert graph._repr_svg_().startswith("<?xml") and "∂" not in graph._repr_svg_()
    assert "∂e/∂x = 30" in graph.run()._repr_svg_()


def test_shared_tensor_shows_each_use_and_the_sum(graphviz):
    """The lecture's multivariable chain rule: x feeds two nodes; each edge carries its share, the node the sum."""
    graph = cgtools.load(EXAMPLES / "square_times_3x.json")
    nodes, edges = svg_items(draw(graph, graph.run(per_use=True), fmt="svg"))
    name = {key: texts[0] for key, texts in nodes.items()}
    assert ["x = 2", "∂L/∂x = 36"] in nodes.values()
    by_ends = {(name[t], name[h]): texts for t, h, texts in edges}
    assert by_ends[("x = 2", "(·)²")] == ["∂L/∂x += 24"]
    assert by_ends[("x = 2", "3 × ·")] == ["∂L/∂x += 12"]
    assert by_ends[("(·)²", "×")] == ["f = 4", "∂L/∂f = 6"]


def test_shares_appear_as_each_reader_runs_back(graphviz):
    graph = cgtools.load(EXAMPLES / "square_times_3x.json")
    frames = [svg_items(f) for f in Frames(graph, graph.run(per_use=True), View(), "svg")]
    texts = [" ".join(t for _, _, ts in edges for t in ts if t and t.strip()) +
             " ".join(t for ts in nodes.values() for t in ts if t) for nodes, edges in frames]
    first_share = next(k for k, t in enumerate(texts) if "+=" in t)
    assert "∂L/∂x += 12" in texts[first_share] and "∂L/∂x += 24" not in texts[first_share]  # 3x runs back first
    assert "∂L/∂x = 36" not in texts[first_share]  # the sum waits for the second share
    assert "∂L/∂x += 24" in texts[first_share + 1] and "∂L/∂x = 36" in texts[first_share + 1]


def test_numbers_read_as_on_a_slide():
    from cgtools.export.labels import format_number, format_tensor

    assert format_number(25.0, 1) == "25" and format_number(12500.0) == "12500" and format_number(-0.0) == "0"
    assert format_number(1.25e-5) == "1.25×10⁻⁵" and format_number(1 / 3) == "0.3333"
    assert format_tensor(np.array([1e-18, -1e-18, 0.5, -0.5] * 2)).endswith("μ=0 ‖·‖=1")


@pytest.mark.parametrize("name", ["\\N\\G\\l", "bell\x07ring", "tab\there"])
def test_escapes_and_control_characters_in_names(name, graphviz):
    doc = {"cgtools": "1.0", "inputs": [{"name": name, "value": 1.0}],
           "nodes": [{"op": "Neg", "inputs": [name], "outputs": ["y"]}], "outputs": ["y"]}
    graph = cgtools.load(doc)
    svg = draw(graph, graph.run(), fmt="svg")
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    shown = name.replace("\x07", "␇").replace("\t", "␉")
    assert shown in texts  # literally: no Graphviz escape, no broken XML


@pytest.mark.slow
def test_frames_cli_cleans_up_and_reports_on_stderr(tmp_path, cli, graphviz):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "affine_square-12.svg").write_text("stale")
    (folder / "keep.txt").write_text("mine")
    result = cli("render", EXAMPLES / "affine_square.json", "--frames", folder, "-o", "-", "-f", "svg")
    assert result.returncode == 0 and result.stdout.startswith("<?xml")  # stdout holds only the picture
    assert "9 frames" in result.stderr
    assert not (folder / "affine_square-12.svg").exists() and (folder / "keep.txt").exists()
    (tmp_path / "afile").write_text("x")
    for args, expected in [(["--frames", tmp_path / "afile"], "is a file"), (["--frames", ""], "needs a folder"),
                           (["-o", tmp_path, "-f", "svg"], "is a folder"),
                           (["--show", "shape"], "did you mean 'shapes'"), (["--show", ","], "at least one"),
                           (["--show", "values,constants"], "with --draw-constants")]:
        result = cli("render", EXAMPLES / "affine_square.json", *args)
        assert result.returncode == 1 and expected in result.stderr, (args, result.stderr)


def test_write_frames_from_python(tmp_path, graphviz):
    from pypdf import PdfReader

    from cgtools.export.frames import NotAFolder, write_frames

    graph = cgtools.load(EXAMPLES / "affine_square.json")
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "slide-12.pdf").write_text("stale")
    (folder / "slide-notes.pdf").write_text("mine")
    written = write_frames(graph, graph.run(), View(), "pdf", folder, "slide")
    assert [p.name for p in written.frames] == [f"slide-{i}.pdf" for i in range(9)]
    assert sorted(folder.glob("slide-[0-9]*.pdf")) == written.frames
    assert not (folder / "slide-12.pdf").exists() and (folder / "slide-notes.pdf").exists()
    assert written.pdf == folder / "slide-frames.pdf" and len(PdfReader(written.pdf).pages) == 9
    written = write_frames(graph, graph.run(backward=False), fmt="dot", folder=tmp_path / "new")
    assert len(written.frames) == 1 + len(graph.nodes) + 1 and written.pdf is None
    with pytest.raises(NotAFolder, match="is a file; expected a folder"):
        write_frames(graph, None, folder=folder / "slide-0.pdf")
    with pytest.raises(cgtools.CgError, match="the HTML page steps through them itself"):
        write_frames(graph, None, fmt="html", folder=folder)


def test_cli_notes_where_the_first_nan_appears(tmp_path, cli):
    doc = NAN_GRAPH
    (tmp_path / "nan.json").write_text(json.dumps(doc))
    result = cli("run", tmp_path / "nan.json")
    assert result.returncode == 0
    assert "first NaN or infinity in the forward pass is 'lx', made by nodes[0] (Log 'lx')" in result.stderr
    assert "RuntimeWarning" not in result.stderr


def test_first_non_finite_from_python():
    with np.errstate(all="ignore"):
        run = cgtools.load(NAN_GRAPH).run()
    assert run.first_non_finite() == [
        "the first NaN or infinity in the forward pass is 'lx', made by nodes[0] (Log 'lx'); 2 more tensors follow it"]
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": 0.0}],
           "nodes": [{"op": "Sqrt", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}
    with np.errstate(all="ignore"):
        run = cgtools.load(doc).run()  # √0 is finite, its slope is not
    assert run.first_non_finite() == ["the first NaN or infinity in the backward pass is ∂y/∂x"]
    assert cgtools.load(EXAMPLES / "affine_square.json").run().first_non_finite() == []


@pytest.mark.slow
def test_two_outputs_and_no_loss_draw_forward_values_with_a_note(tmp_path, cli):
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": 2.0}],
           "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]},
                     {"op": "Exp", "inputs": ["x"], "outputs": ["z"]}], "outputs": ["y", "z"]}
    (tmp_path / "two.json").write_text(json.dumps(doc))
    result = cli("render", tmp_path / "two.json", "-f", "dot", "-o", "-")
    assert result.returncode == 0 and "2 outputs and no \"loss\"" in result.stderr
    assert "y = -2" in result.stdout and "∂" not in result.stdout


@pytest.mark.slow
def test_inputs_from_an_npz_and_a_non_scalar_loss(tmp_path, cli):
    """A model whose input has no value is fed from an .npz; its output is no scalar, so the drawing shows
    forward values and says why there are no gradients."""
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "shape": [3]}],
           "nodes": [{"op": "Softmax", "inputs": ["x"], "outputs": ["p"]}], "outputs": ["p"]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "in.npz", x=np.array([1.0, 2.0, 3.0]))
    result = cli("render", tmp_path / "m.json", "--inputs", tmp_path / "in.npz", "-f", "dot", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert "has shape [3], not a scalar; drawing forward values only" in result.stderr
    assert "p = [0.09003, 0.2447, 0.6652]" in result.stdout and "rankdir=LR" in result.stdout
    result = cli("run", tmp_path / "m.json", "--inputs", tmp_path / "in.npz", "--no-backward", "--json")
    assert json.loads(result.stdout)["values"]["p"][2] == pytest.approx(0.6652, abs=1e-4)
    np.savez(tmp_path / "bad.npz", y=np.zeros(3))
    result = cli("run", tmp_path / "m.json", "--inputs", tmp_path / "bad.npz")
    assert result.returncode == 1 and "cannot set 'y'" in result.stderr


def test_deep_graphs_flow_top_to_bottom_by_default(tmp_path, cli):
    nodes = [{"op": "Tanh", "inputs": [f"t{k}"], "outputs": [f"t{k + 1}"]} for k in range(50)]
    doc = {"cgtools": "1.0", "inputs": [{"name": "t0", "value": 0.5}], "nodes": nodes, "outputs": ["t50"]}
    (tmp_path / "deep.json").write_text(json.dumps(doc))
    result = cli("render", tmp_path / "deep.json", "-f", "dot", "-o", "-")
    assert result.returncode == 0 and "rankdir=TB" in result.stdout
