"""`render -f tex`: TikZ pictures on Graphviz's layout, compiled by a real pdflatex (alone, \\input into a document,
and the --frames overlays inside a Beamer deck, one page per frame), labels typeset as maths, user strings
escaped."""

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

import cgtools
from cgtools.export.dot import display_graph
from cgtools.export.frames import Frames, json_layout
from cgtools.export.grouping import diagram_scene
from cgtools.export.scene import View
from cgtools.export.tex import Picture, tex_math, to_tex
from helpers import EXAMPLES

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
NODE = re.compile(r"\\node\[[^\]]*\] at \(([-\d.]+),([-\d.]+)\)")
HOSTILE = "a_b#%{}\\$"
BEAMER_DECK = r"""\documentclass{beamer}
\usepackage{tikz}
\begin{document}
\begin{frame}{The build-up}\input{%s}\end{frame}
\end{document}
"""


def compiled(pdflatex: str, tex: Path) -> PdfReader:
    """The PDF pdflatex makes of `tex`, in its folder; a failure shows TeX's error."""
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tex.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, "\n".join(line for line in done.stdout.splitlines() if line.startswith("!"))
    return PdfReader(tex.with_suffix(".pdf"))


def test_a_chain_rule_line_typesets_as_fractions():
    line = "∂e/∂c = ∂e/∂d · ∂d/∂c = 10 · ∂(c + b)/∂c = 10"
    assert tex_math(line) == (r"\frac{\partial e}{\partial c} = \frac{\partial e}{\partial d}\cdot"
                              r"\frac{\partial d}{\partial c} = 10\cdot\frac{\partial (c + b)}{\partial c} = 10")


@pytest.mark.parametrize("text, role, tex", [
    ("c = 3", "value", "c = 3"),
    ("∂L/∂x += 24", "share", r"\frac{\partial L}{\partial x} += 24"),
    ("1.25×10⁻⁵", "value", r"1.25\times10^{-5}"),
    ("[64×10] μ=0.01 ‖·‖=3.2", "value", r"[64\times10]\ \mu=0.01\ \|\cdot\|=3.2"),
    ("θ = [1, -2.5]", "value", r"\theta = [1, -2.5]"),
    ("(·)²", "symbol", r"(\cdot)^{2}"),
    ("clip(·, 0, 6)", "symbol", r"\mathrm{clip}(\cdot, 0, 6)"),
    ("tanh", "symbol", r"\tanh"),
    ("σ", "symbol", r"\sigma"),
    ("weight 64×3×7×7", "shape", r"\mathit{weight}\ 64\times3\times7\times7"),
    ("∂L/∂/layer1/Conv_output_0 = 2", "grad", r"\frac{\partial L}{\partial /\mathit{layer1/Conv\_output\_0}} = 2"),
    (HOSTILE + " = 1", "value", r"\mathit{a\_b\#\%\{\}\backslash\$} = 1"),
])
def test_labels_become_maths(text, role, tex):
    assert tex_math(text, role) == tex


def affine():
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    return graph, graph.run(per_use=True)


def test_positions_are_graphvizs():
    """Every node's label sits at its Graphviz position, every edge label at Graphviz's `lp`, in Graphviz's points
    (the picture's unit is 1em/fontsize)."""
    graph, run = affine()
    scene = diagram_scene(graph, run, View())
    layout = json_layout(scene)  # the layout frames draw on; to_tex lays the same scene out the same way
    text = to_tex(graph, run)
    placed = [float(v) for xy in NODE.findall(text) for v in xy]
    nodes = [float(v) for o in layout["objects"] if "pos" in o for v in o["pos"].split(",")]
    edges = [float(v) for e in layout["edges"] if "lp" in e for v in e["lp"].split(",")]
    assert len(nodes) == 2 * 7 and len(edges) == 2 * 6
    assert placed[:len(nodes)] == pytest.approx(nodes)
    assert placed[len(nodes):len(nodes) + len(edges)] == pytest.approx(edges)
    assert "[x=0.0555556em, y=0.0555556em]" in text  # slide theme: 18 pt


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_compiles_to_a_page_the_size_of_its_picture(example, tmp_path, cli, pdflatex):
    out = tmp_path / f"{example.stem}.tex"
    done = cli("render", example, "-o", out)
    assert done.returncode == 0, done.stderr
    pdf = compiled(pdflatex, out)
    graph = cgtools.load(example)
    layout = json.loads(done_layout(graph))
    x0, y0, x1, y1 = map(float, layout["bb"].split(","))
    box = pdf.pages[0].mediabox
    assert len(pdf.pages) == 1
    # one Graphviz point is 1em/18 (slide theme), the article's em is 10 TeX points, the PDF's unit 72.27/72 of one
    pad, scale = 2 * 0.2 * 72, 10 / 18 * 72 / 72.27
    assert float(box.width) == pytest.approx((x1 - x0 + pad) * scale, rel=0.002)
    assert float(box.height) == pytest.approx((y1 - y0 + pad) * scale, rel=0.002)


def done_layout(graph) -> str:
    """Graphviz's json layout of the diagram render draws by default (rankdir auto: LR for these)."""
    from cgtools.cli.drawing import auto_rankdir
    from cgtools.cli.reporting import run_for_drawing

    view = View(rankdir=auto_rankdir(graph))
    return json.dumps(json_layout(diagram_scene(graph, run_for_drawing(graph, {}, True), view)))


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_frames_are_beamer_overlays_one_page_each(example, tmp_path, cli, pdflatex):
    done = cli("render", example, "-f", "tex", "--frames", tmp_path / "frames")
    assert done.returncode == 0, done.stderr
    graph = cgtools.load(example)
    steps = len(Frames(graph, graph.run(per_use=True), View(), "dot"))
    assert f"{steps} frames as Beamer overlays" in done.stderr
    (tmp_path / "frames" / "deck.tex").write_text(BEAMER_DECK % f"{example.stem}.tex")
    assert len(compiled(pdflatex, tmp_path / "frames" / "deck.tex").pages) == steps
    assert len(compiled(pdflatex, tmp_path / "frames" / f"{example.stem}.tex").pages) == steps  # alone: that frame


def test_overlays_follow_the_frames_schedule():
    """Each edge label line is shown (in TeX) from the overlay whose frame (in DOT) first shows it, and every
    frame's active node is outlined at its overlay."""
    graph, run = affine()
    frames = Frames(graph, run, View(), "dot")
    text = Picture(frames.scene, frames.layout(), frames.reveals).text()
    for (*_, data), tex_line in zip(frames.scene.graph.edges(data=True), edge_labels(text)):
        for line, spec in zip(data["lines"], tex_line):
            shown_in = [k for k, reveal in enumerate(frames.reveals) if line.text in edge_texts(frames, reveal)]
            assert spec == shown_in[0] + 1, line.text
    for k, reveal in enumerate(frames.reveals):
        if reveal.active:
            assert re.search(rf"\\only<([\d,]*,)?{k + 1}(,[\d,]*)?>{{\\path\[draw=cgaccent", text)
    assert f"\\only<{len(frames)}>{{}}" in text


def edge_labels(text: str) -> list[list[int]]:
    """The overlay each edge label line appears from (1: always), label by label."""
    found = []
    for label in re.findall(r"\\node\[[^\]]*font=[^\]]*\] at \([^)]*\) \{(.*)\};", text):
        lines = re.split(r"(?<!\\)\\\\(?=\{)", label)
        found.append([int(m.group(1)) if (m := re.match(r"\{\\(?:alt|uncover)<(\d+)->", ln)) else 1 for ln in lines])
    return found


def edge_texts(frames: Frames, reveal) -> str:
    """The texts of the edge labels a frame draws (its DOT attributes)."""
    D = display_graph(frames.scene, reveal)
    return " | ".join(html.unescape(re.sub(r"<[^>]*>", "\n", data["label"])) for *_, data in D.edges(data=True))


@pytest.mark.slow
def test_user_strings_compile_and_show_as_written(tmp_path, pdflatex):
    """A hostile name, in every place a name is written (a node, a value, a gradient, the title), compiles alone
    and \\input twice into an article."""
    doc = {"cgtools": "1.0", "name": HOSTILE + "^~<>|\"", "doc": "é ∂ % \\end{document}",
           "inputs": [{"name": HOSTILE, "value": 2.0}],
           "nodes": [{"op": "Mul", "inputs": [HOSTILE, HOSTILE], "outputs": ["y^2~"]}], "outputs": ["y^2~"]}
    (tmp_path / "g.json").write_text(json.dumps(doc))
    graph = cgtools.load(tmp_path / "g.json")
    text = to_tex(graph, graph.run(per_use=True))
    (tmp_path / "g.tex").write_text(text)
    assert r"\mathit{a\_b\#\%\{\}\backslash\$}" in text and r"\frac{\partial \mathit{y\mbox{\^{}}2" in text
    assert "% \\end{document}" not in text.split("\\setbox0")[1]  # the doc is text, not TeX
    page = compiled(pdflatex, tmp_path / "g.tex").pages[0].extract_text()
    assert "ab#%{}\\$=2" in page.replace(" ", "")  # TeX draws _ as a rule, which has no text
    (tmp_path / "article.tex").write_text("\\documentclass{article}\\usepackage{tikz}\\begin{document}\n"
                                          "Before \\input{g.tex} between {\\small\\input{g.tex}} after.\n"
                                          "\\end{document}\n")
    assert "Before" in compiled(pdflatex, tmp_path / "article.tex").pages[0].extract_text()


def test_tex_goes_to_stdout_and_refuses_a_colour_scale(tmp_path, cli):
    done = cli("render", EXAMPLES / "affine_square.json", "-f", "tex", "-o", "-")
    assert done.returncode == 0 and done.stdout.startswith("% affine_square, drawn by cgtools")
    for extra in (["--color-by", "grad"], ["--against", "reference"]):
        done = cli("render", EXAMPLES / "affine_square.json", "-o", tmp_path / "a.tex", *extra)
        assert done.returncode == 1 and done.stderr.startswith("error: -f tex draws no colour scale")
        assert "Traceback" not in done.stderr and not (tmp_path / "a.tex").exists()
    (tmp_path / "f").write_text("")
    done = cli("render", EXAMPLES / "affine_square.json", "-f", "tex", "--frames", tmp_path / "f")
    assert done.returncode == 1 and done.stderr.startswith("error: --frames") and "is a file" in done.stderr
