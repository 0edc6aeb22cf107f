"""`render --color-by value|grad|diff` and `compare -o`: edges coloured on a log scale of their tensor's magnitude,
with a legend, in DOT, SVG and the HTML page; the first divergence of an altered real model outlined."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import cgtools
from cgtools.export import draw
from cgtools.export.colours import Colouring, magnitudes, rgb, rms, scale_for
from cgtools.export.dot import render, to_dot
from cgtools.export.scene import View
from cgtools.export.themes import THEMES
from helpers import run_in_process

# x = 1e-3, y = 1000·x = 1, z = 1000·y = 1e3: three edges three decades apart; the gradients run the other way
KNOWN = {"cgtools": "1.0", "name": "known", "inputs": [{"name": "x", "value": 0.001}],
         "constants": [{"name": "k", "value": 1000.0}],
         "nodes": [{"op": "Mul", "inputs": ["x", "k"], "outputs": ["y"]},
                   {"op": "Mul", "inputs": ["y", "k"], "outputs": ["z"]}],
         "outputs": ["z"]}
DRAWN = "window.cgtools && window.cgtools.drawn"
SVG = "{http://www.w3.org/2000/svg}"


def luminance(colour: str) -> float:
    r, g, b = rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def edge_colours(dot: str) -> dict[tuple[str, str], str]:
    return {(u, v): c for u, v, c in re.findall(r'^(\w+) -> (\w+) \[.*\bcolor="(#[0-9a-f]{6})"', dot, re.M)}


@pytest.mark.parametrize("name", list(THEMES))
def test_the_scale_is_logarithmic_and_monotone_in_lightness(name):
    scale = scale_for([2e-3, None, 0.0, 5e2, math.inf], THEMES[name]["scale"])
    assert (scale.lo, scale.hi) == (-3, 3)  # whole decades around the finite, positive magnitudes
    for k in range(-3, 4):
        assert scale.position(10.0 ** k) == pytest.approx((k + 3) / 6)
    for k in range(-3, 3):  # a factor of 3 is the same step anywhere on the scale
        assert scale.position(3 * 10.0 ** k) - scale.position(10.0 ** k) == pytest.approx(math.log10(3) / 6)
    assert scale.position(0.0) == 0 and scale.position(1e-9) == 0 and scale.position(1e9) == 1
    lightness = [luminance(scale.colour(m)) for m in np.logspace(-3, 3, 61)]
    steps = np.diff(lightness)
    assert np.all(steps > 0) or np.all(steps < 0), lightness  # reads in greyscale too
    assert [label for label, _ in scale.ticks()] == ["10⁻³", "10⁻²", "10⁻¹", "1", "10", "10²", "10³"]


def test_magnitudes_are_root_mean_squares_and_largest_differences():
    assert rms(np.array([3.0, -4.0])) == pytest.approx(math.sqrt(12.5))
    assert rms(np.array([1.0, np.nan])) == math.inf and rms(np.zeros(0)) is None and rms(None) is None
    found = magnitudes("t", {"t": np.full((2, 2), -2.0)}, {"t": np.array([0.0, 0.0])}, {"t": 0.25})
    assert found == {"value": 2.0, "grad": 0.0, "diff": 0.25}


def test_three_decades_give_three_colours_in_order_and_a_legend_in_dot_and_svg(tmp_path, capsys, graphviz):
    (tmp_path / "known.json").write_text(json.dumps(KNOWN))
    done = run_in_process(capsys, "render", tmp_path / "known.json", "--color-by", "value", "-f", "dot", "-o", "-")
    assert done.returncode == 0, done.stderr
    colours = edge_colours(done.stdout)
    x, y, z = colours["L0", "N0"], colours["N0", "N1"], colours["N1", "O0"]
    assert len({x, y, z}) == 3 and luminance(x) < luminance(y) < luminance(z)
    slide = THEMES["slide"]["scale"]
    assert (x, z) == (slide[0], slide[-1])  # 1e-3 and 1e3 are the scale's ends
    assert "rms of the value, log scale" in done.stdout and "10⁻³" in done.stdout and "10³" in done.stdout
    svg = render(done.stdout, "svg").decode()
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "rms of the value, log scale" in texts and {"10⁻³", "1", "10³"} <= set(texts)
    assert {x.lower(), z.lower()} <= {p.get("fill", "").lower() for p in ET.fromstring(svg).iter(f"{SVG}polygon")}


def test_colouring_by_gradient_reverses_the_order_and_frames_colour_only_what_they_show():
    graph = cgtools.load(KNOWN)
    dot = to_dot(graph, graph.run(), View(colouring=Colouring("grad")))
    colours = edge_colours(dot)  # ∂z/∂x = 1e6, ∂z/∂y = 1e3, ∂z/∂z = 1
    assert luminance(colours["L0", "N0"]) > luminance(colours["N0", "N1"]) > luminance(colours["N1", "O0"])
    assert "rms of the gradient" in dot
    from cgtools.export.scene import FORWARD

    assert edge_colours(to_dot(graph, graph.run(), View(colouring=Colouring("grad")), FORWARD)) == {}


def test_without_color_by_the_dot_has_no_legend():
    graph = cgtools.load(KNOWN)
    dot = to_dot(graph, graph.run())
    assert "legend" not in dot and edge_colours(dot) == {}


def test_colouring_by_gradient_without_gradients_says_so(tmp_path, capsys):
    (tmp_path / "known.json").write_text(json.dumps(KNOWN))
    done = run_in_process(capsys, "render", tmp_path / "known.json", "--color-by", "grad", "--no-backward",
                          "-f", "dot", "-o", "-")
    assert done.returncode == 0 and "note: no gradients to colour the edges by" in done.stderr
    assert edge_colours(done.stdout) == {} and "legend" not in done.stdout
    wrong = run_in_process(capsys, "render", tmp_path / "known.json", "--color-by", "value", "--against", "reference")
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: --against is what --color-by diff compares with")


def test_the_page_starts_on_the_asked_measure_and_switching_recolours(tmp_path, open_page, graphviz):
    graph = cgtools.load(KNOWN)
    path = tmp_path / "known.html"
    path.write_bytes(draw(graph, graph.run(), View(colouring=Colouring("value")), "html"))
    page = open_page(path).page
    page.wait_for_function(DRAWN)
    edge_colour = "window.cgtools.edges.get().sort((a, b) => a.id < b.id ? -1 : 1).map(e => e.color.color)"
    expected = page.evaluate("window.cgtools.data.colouring.measures")
    assert page.is_checked("#magnitude") and page.input_value("#measure") == "value"
    assert page.evaluate(edge_colour) == expected["value"]["colours"]
    assert page.is_visible("#scale") and "rms of the value" in page.inner_text("#scale")
    assert "10⁻³" in page.inner_text("#scale") and "10³" in page.inner_text("#scale")
    page.select_option("#measure", "grad")
    assert page.evaluate(edge_colour) == expected["grad"]["colours"] != expected["value"]["colours"]
    assert "rms of the gradient" in page.inner_text("#scale")
    page.uncheck("#magnitude")
    assert set(page.evaluate(edge_colour)) == {THEMES["slide"]["line"]} and not page.is_visible("#scale")
    assert not open_page(path).errors


def altered_conv(source, target, index: int) -> str:
    """A copy of the model with one element of the `index`-th Conv's weight changed; that Conv's name."""
    model = onnx.load(str(source))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][index]
    (weight,) = [t for t in model.graph.initializer if t.name == conv.input[1]]
    array = numpy_helper.to_array(weight).copy()
    array[0, 0, 0, 0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(target))
    return conv.name


def svg_drawing(svg: str) -> tuple[dict, nx.DiGraph]:
    """The outline colour and text of every node by id, and the edges with their colours, from Graphviz's SVG."""
    nodes, edges = {}, nx.DiGraph()
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        title = g.findtext(f"{SVG}title")
        shape = next((s for s in g.iter() if s.tag in (f"{SVG}ellipse", f"{SVG}polygon", f"{SVG}path")), None)
        if g.get("class") == "node":
            nodes[title] = (shape.get("stroke"), " ".join(t.text or "" for t in g.iter(f"{SVG}text")))
        elif g.get("class") == "edge":
            u, v = title.split("->")
            edges.add_edge(u, v, colour=shape.get("stroke"))
    return nodes, edges


@pytest.mark.slow
def test_compare_draws_the_altered_resnet18_with_its_conv_outlined(exported, tmp_path, capsys, graphviz):
    model = exported("resnet18")
    name = altered_conv(model.path, tmp_path / "altered.onnx", 5)
    done = run_in_process(capsys, "compare", model.path, tmp_path / "altered.onnx", "--random-inputs",
                          "-o", tmp_path / "diff.svg")
    assert done.returncode == 1 and f"'{name}'" in done.stdout  # the outputs differ
    graph = cgtools.load(model.path)
    altered = f"N{[n.name for n in graph.nodes].index(name)}"
    nodes, edges = svg_drawing((tmp_path / "diff.svg").read_text())
    accent = THEMES["slide"]["accent"]
    assert [key for key, (stroke, _) in nodes.items() if stroke == accent] == [altered]
    assert "≠ first divergence: max abs" in nodes[altered][1]
    out = {edges.edges[altered, v]["colour"] for v in edges.successors(altered)}
    before = {edges.edges[e]["colour"] for e in edges.edges if e[1] in nx.ancestors(edges, altered)}
    assert before and out and max(map(luminance, before)) < min(map(luminance, out))


def test_frames_keep_the_legend_inside_the_picture(tmp_path, capsys, graphviz):
    (tmp_path / "known.json").write_text(json.dumps(KNOWN))
    done = run_in_process(capsys, "render", tmp_path / "known.json", "--color-by", "grad", "--frames", tmp_path / "f",
                          "-f", "svg")
    assert done.returncode == 0 and "Graphviz" not in done.stderr, done.stderr  # no "too small for label"
    last = ET.fromstring((tmp_path / "f" / "known-6.svg").read_text())
    assert "rms of the gradient, log scale" in [t.text for t in last.iter(f"{SVG}text")]
