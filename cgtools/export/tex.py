"""Diagrams as LaTeX: a TikZ picture of the layout Graphviz makes, with the labels typeset as maths.

Shapes, edges and arrowheads are Graphviz's own drawing operations from the layout frames.py makes
(`dot -Tjson`), redrawn by TikZ at the same coordinates; the labels are the scene's lines, typeset by TeX in
the fonts of the document around them: names as maths identifiers, ∂e/∂c as \\frac{\\partial e}{\\partial c},
× σ ² as \\times \\sigma ^{2}. One Graphviz point is 1em/fontsize (the theme's font size): the picture scales
with the font it is set in, so `{\\small \\input{…}}` draws it smaller.

`to_tex` writes a file that is a document when compiled alone (one page cropped to the picture) and only the
picture when \\input into a document; `overlays_tex` writes the frames' build-up as one picture whose labels
appear step by step as Beamer overlays, the active node outlined at its step, as in the frames.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from cgtools.errors import CgError
from cgtools.export.frames import Frames, json_layout, make_folder, placed_edges
from cgtools.export.scene import Line, Reveal, Scene, View, at
from cgtools.export.themes import theme
from cgtools.files import write_atomic

GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi "
         "psi omega").split()
SYMBOLS = {
    "∂": r"\partial", "·": r"\cdot", "×": r"\times", "÷": r"\div", "−": "-", "±": r"\pm", "‖": r"\|",
    "∞": r"\infty", "≤": r"\leq", "≥": r"\geq", "≠": r"\neq", "≈": r"\approx", "→": r"\to", "…": r"\ldots",
    "√": r"\surd", "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee", "⊕": r"\oplus", "⊙": r"\odot", "∘": r"\circ",
    "⌈": r"\lceil", "⌉": r"\rceil", "⌊": r"\lfloor", "⌋": r"\rfloor", "Σ": r"\Sigma", "Π": r"\Pi", "Δ": r"\Delta",
    "Γ": r"\Gamma", "Θ": r"\Theta", "Λ": r"\Lambda", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega", "µ": r"\mu",
    "ŷ": r"\hat{y}", "⚠": r"\mbox{\textbf{(!)}}",
    **{unicodedata.lookup(f"GREEK SMALL LETTER {name.replace('lambda', 'lamda')}"): "\\" + name for name in GREEK},
}
SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺ⁿᵀ", [*"0123456789-+n", r"\top"]))
SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
# ASCII characters TeX reads as commands, written as themselves: in maths, and in text
MATH_ASCII = {"\\": r"\backslash", "{": r"\{", "}": r"\}", "#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&",
              "_": r"\_", "^": r"\mbox{\^{}}", "~": r"\mbox{\~{}}", '"': r"\mbox{\texttt{\char34}}"}
TEXT_ASCII = {**MATH_ASCII, "\\": r"$\backslash$", "^": r"\^{}", "~": r"\~{}", "<": "$<$", ">": "$>$", "|": "$|$",
              '"': r"\texttt{\char34}"}  # written so in any font encoding, OT1 too
ACCENTS = {"\u0301": "\\'", "\u0300": "\\`", "\u0302": "\\^", "\u0308": '\\"', "\u0303": "\\~", "\u0327": "\\c ",
           "\u030c": "\\v ", "\u0304": "\\="}
# characters that end a name: spaces, operators, brackets, and every character written as a maths symbol
NAME_ENDS = set(" \t\n=+·×÷()[],;<>|") | set(SYMBOLS) | set(SUPERSCRIPTS) | set(SUBSCRIPTS)
OPERATORS = {"exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "max", "min", "det"}  # TeX's own \exp …
OPERAND = r"\([^()]*\)|/?[^\s=+·×÷()\[\],/∂‖]+(?:/(?!∂)[^\s=+·×÷()\[\],/∂‖]+)*"  # a name, ONNX's /a/b too
FRACTION = re.compile(rf"∂({OPERAND})/∂({OPERAND})")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def tex_math(text: str, role: str = "") -> str:
    """A label line as the diagram shows it, in TeX's maths mode (without the dollars): `∂e/∂c = 10 · ∂(c + b)/∂c`
    reads `\\frac{\\partial e}{\\partial c} = 10\\cdot\\frac{\\partial (c + b)}{\\partial c}`. Names of one letter
    are maths letters, longer ones `\\mathit{…}` (`\\mathrm{…}` for an op's symbol, or before a bracket, as
    `\\mathrm{clip}(\\cdot, 0, 6)`); every character TeX would read otherwise is written as itself."""
    tokens, i = [], 0
    while i < len(text):
        kind, tex, i = next_token(text, i, role)
        tokens.append((kind, tex))
    pieces = []
    for k, (kind, tex) in enumerate(tokens):
        if kind == "space":
            before, after = tokens[k - 1][0] if k else "", tokens[k + 1][0] if k + 1 < len(tokens) else ""
            if "cdot" in (before, after):
                continue  # \cdot spaces itself
            tex = "\\ " if before in ("ord", "close") and after in ("ord", "open") else " "  # `[64×10]\\ \\mu=…`
        pieces.append(tex)
    return joined(pieces)


def next_token(text: str, i: int, role: str) -> tuple[str, str, int]:
    """The token of `text` at `i`: its kind (for spacing), its TeX and where the next one starts."""
    if m := FRACTION.match(text, i):
        numerator, denominator = (tex_math(part) for part in m.groups())
        return "ord", rf"\frac{{\partial {numerator}}}{{\partial {denominator}}}", m.end()
    ch = text[i]
    if m := NUMBER.match(text, i):
        return "ord", m.group(), m.end()
    for table, mark in ((SUPERSCRIPTS, "^"), (SUBSCRIPTS, "_")):
        if ch in table:
            j = i
            while j < len(text) and text[j] in table:
                j += 1
            return "close", mark + "{" + joined([table[c] for c in text[i:j]]) + "}", j
    if ch.isspace():
        return "space", " ", i + 1
    if ch not in NAME_ENDS and ch not in "-/":
        j = i
        while j < len(text) and text[j] not in NAME_ENDS and (text[j] not in "-/" or continues(text, j + 1)):
            j += 1
        return "ord", word(text[i:j], role == "symbol" or text.startswith("(", j)), j
    kind = "cdot" if ch == "·" else "open" if ch in "([" else "close" if ch in ")]" else \
        "op" if ch in "=+-−×÷,;<>|" else "ord"
    return kind, char_tex(ch, math=True), i + 1


def continues(text: str, j: int) -> bool:
    """Whether a name goes on at `j`, after a - or a / inside it (`x/‖x‖` and `∂e/∂c` are not one name)."""
    return j < len(text) and text[j] not in NAME_ENDS and text[j] not in "-/"


def word(name: str, upright: bool) -> str:
    """A name (or an op's word) in maths: `x`, `\\mathit{weight}`, `\\tanh`, `\\mathrm{ReLU}`."""
    if name in OPERATORS and upright:
        return "\\" + name
    if name == "inf":
        return r"\infty"
    inner = joined([r"\mbox{-}" if c == "-" else char_tex(c, math=True) for c in name])  # a hyphen, not a minus
    if len(name) == 1 and name.isascii() and name.isalpha():
        return name
    return (r"\mathrm{" if upright and len(name) > 1 else r"\mathit{") + inner + "}"


def char_tex(ch: str, math: bool) -> str:
    """One character as TeX writes it, in maths or in text; one TeX cannot typeset shows its code point."""
    escapes = MATH_ASCII if math else TEXT_ASCII
    if ch in escapes:
        return escapes[ch]
    if ch.isascii() and ch.isprintable():
        return ch
    if ch.isspace():
        return " "
    for table, mark in ((SYMBOLS, ""), (SUPERSCRIPTS, "^"), (SUBSCRIPTS, "_")):
        if ch in table:
            tex = mark + ("{" + table[ch] + "}" if mark else table[ch])
            return tex if math else f"${tex}$"
    base, *marks = unicodedata.normalize("NFD", ch)
    if base.isascii() and base.isalpha() and len(marks) == 1 and marks[0] in ACCENTS:
        accented = f"{ACCENTS[marks[0]]}{{{base}}}"
        return rf"\mbox{{{accented}}}" if math else accented
    code = rf"\texttt{{[U+{ord(ch):04X}]}}"
    return rf"\mbox{{{code}}}" if math else code


def joined(pieces) -> str:
    """TeX pieces one after another, a space after a control word that a letter follows (`\\cdot d`)."""
    out = ""
    for piece in pieces:
        if piece and re.search(r"\\[A-Za-z]+$", out) and piece[0].isalpha():
            out += " "
        out += piece
    return out


def tex_text(text: str) -> str:
    """A user string written as itself in TeX's text mode (a graph's name, its doc)."""
    return "".join(char_tex(c, math=False) for c in str(text))


SIZES = ((0.7, r"\scriptsize"), (0.8, r"\footnotesize"), (0.9, r"\small"), (1.0, ""), (1.2, r"\large"),
         (1.44, r"\Large"))  # LaTeX's sizes, relative to the text's


def size(points: float, t: dict) -> str:
    """The LaTeX size nearest to `points` in the theme, relative to its font size."""
    return min(SIZES, key=lambda s: abs(s[0] - points / t["fontsize"]))[1]


ROLE_COLOURS = {"value": "value", "grad": "grad", "share": "grad", "names": "muted", "shape": "muted",
                "loss": "muted", "doc": "muted"}


def line_tex(text: str, role: str, t: dict) -> str:
    """A label line in its role's colour, size and weight, from the theme."""
    if role == "blank" or not text:
        return ""
    colour = "cgalert" if role.startswith("alert") else "cg" + ROLE_COLOURS.get(role, "text")
    body = tex_text(text) if role in ("title", "doc") else f"${tex_math(text, role)}$"
    if role in ("param", "output", "title") or role.startswith("alert"):
        body = r"\boldmath\bfseries " + body
    small = {"symbol": size(t["symbol_size"], t), "names": size(t["small"], t), "shape": size(t["small"], t),
             "loss": size(t["small"], t), "doc": size(t["small"], t)}.get(role, "")
    return rf"{{\color{{{colour}}}{small}{' ' if small else ''}{body}}}"


class Palette:
    """The picture's colours by name: the theme's (`cgvalue`, `cgfillparam`, …) and any other Graphviz used."""

    def __init__(self, t: dict):
        self.names, self.defined = {}, []
        for key, value in [*((f"fill{kind}", c) for kind, c in t["fill"].items()), *t.items()]:  # fills by their name
            if isinstance(value, str) and value.startswith("#"):
                self.define(f"cg{key}", value)

    def define(self, name: str, colour: str) -> str:
        self.defined.append((name, colour[1:7].upper()))
        return self.names.setdefault(colour[1:7].lower(), name)

    def name(self, colour: str) -> str:
        """Graphviz's `#rrggbb` or `#rrggbbaa` as a colour name; none for a transparent one."""
        if not colour.startswith("#"):
            return colour if colour in ("black", "white", "none") else "cgtext"
        if colour[7:9] == "00":
            return "none"
        return self.names.get(colour[1:7].lower()) or self.define(f"cgcolour{len(self.defined)}", colour)

    def definitions(self) -> str:
        return "".join(rf"\definecolor{{{name}}}{{HTML}}{{{hex_}}}%" + "\n" for name, hex_ in self.defined)  # no spaces


def n(v) -> str:
    """A coordinate as short as it reads: 54.22, 27."""
    return f"{float(v):.6g}"


def xdot(ops: list[dict], palette: Palette, fs: float, outline: tuple[str, float] | None = None) -> list[str]:
    """Graphviz's drawing operations (xdot: colours, styles, ellipses, polygons, Béziers) as TikZ paths; with
    `outline` (colour, width), only their outlines in it, for the active node of a frame."""
    pen, fill, width, dash, paths = "black", "none", 1.0, "", []
    for op in ops:
        kind = op["op"]
        if kind == "c":
            pen = palette.name(op["color"])
        elif kind == "C":
            fill = palette.name(op["color"])
        elif kind == "S" and op["style"].startswith("setlinewidth("):
            width = float(op["style"][len("setlinewidth("):-1])
        elif kind == "S" and op["style"] in ("dashed", "dotted", "solid", "bold"):
            dash = "" if op["style"] in ("solid", "bold") else op["style"]
            width = max(width, 2.0) if op["style"] == "bold" else width
        elif kind in "eEpPbBL":
            draw, w = outline or (pen, width)
            options = [f"draw={draw}"] if draw != "none" else []
            options += [f"fill={fill}"] if kind in "EPB" and fill != "none" and not outline else []
            if options:
                options += [f"line width={w / fs:.4g}em"] + ([dash] if dash else [])
                paths.append(rf"\path[{', '.join(options)}] {path(kind, op)};")
    return paths


def path(kind: str, op: dict) -> str:
    """One xdot shape as a TikZ path: an ellipse, a polygon or polyline, or a chain of cubic Béziers."""
    if kind in "eE":
        x, y, rx, ry = op["rect"]
        return f"({n(x)},{n(y)}) ellipse [x radius={n(rx)}, y radius={n(ry)}]"
    points = [f"({n(x)},{n(y)})" for x, y in op["points"]]
    if kind in "bB":
        text = points[0] + "".join(f" .. controls {a} and {b} .. {c}"
                                   for a, b, c in zip(points[1::3], points[2::3], points[3::3]))
    else:
        text = " -- ".join(points)
    return text + (" -- cycle" if kind in "pPB" else "")


def label(pos: str, lines: list[str], font: str = "") -> str:
    """Label lines centred where Graphviz put the label (a node's centre, an edge's `lp`)."""
    x, y = pos.split(",")[:2]
    options = "align=center, inner sep=0pt" + (f", font={font}" if font else "")
    body = "\\\\".join(lines)
    return rf"\node[{options}] at ({n(x)},{n(y)}) {{{body}}};"


class Picture:
    """The TikZ picture of a scene on its Graphviz layout; with `steps` (the frames' reveals), each label line
    shown from its step on and the active node outlined at its steps, as Beamer overlays."""

    def __init__(self, scene: Scene, layout: dict, steps: list[Reveal] | None = None):
        self.scene, self.layout, self.steps = scene, layout, steps
        self.t = theme(scene.view.theme)
        self.palette = Palette(self.t)

    def text(self) -> str:
        body = [*self.frame(), *self.clusters(), *self.nodes(), *self.edges(), *self.title()]
        if self.steps:  # as many overlays as frames, though the last frame only takes the highlight away
            body.append(rf"\only<{len(self.steps)}>{{}}")
        unit = f"{1 / self.t['fontsize']:.6g}em"
        return (self.palette.definitions() + rf"\begin{{tikzpicture}}[x={unit}, y={unit}]" + "\n"
                + "\n".join(body) + "\n" + r"\end{tikzpicture}")

    def draw(self, ops: list[dict], outline=None) -> list[str]:
        return xdot(ops, self.palette, self.t["fontsize"], outline)

    def frame(self) -> list[str]:
        """Graphviz's bounding box with its padding; the theme's background unless it is white."""
        x0, y0, x1, y1 = (float(v) for v in self.layout["bb"].split(","))
        pad = float(self.layout.get("pad", 0)) * 72
        box = f"({n(x0 - pad)},{n(y0 - pad)}) rectangle ({n(x1 + pad)},{n(y1 + pad)})"
        background = [] if self.t["background"].lower() == "#ffffff" else [rf"\fill[cgbackground] {box};"]
        return [rf"\useasboundingbox {box};", *background]

    def clusters(self) -> list[str]:
        """The bodies of If, Loop and Scan: their dashed boxes and labels."""
        bodies, out = self.scene.graph.graph.get("bodies") or {}, []
        for obj in self.layout.get("objects", []):
            body = bodies.get(obj["name"].removeprefix("cluster_"))
            if body is not None and "nodes" in obj:
                out += self.draw(obj.get("_draw_", []))
                text = " · ".join(text for text, _ in at(body["label"], Reveal()))
                out += [label(obj["lp"], [line_tex(text, "doc", self.t)])] if "lp" in obj else []
        return out

    def nodes(self) -> list[str]:
        placed, out = {obj["name"]: obj for obj in self.layout.get("objects", [])}, []
        for key, data in self.scene.graph.nodes(data=True):
            obj = placed[key]
            out += self.draw(obj.get("_draw_", []))
            out += self.highlight(obj, (data["kind"], data["model"]))
            out.append(label(obj["pos"], [self.line(line) for line in data["lines"]]))
        return out

    def highlight(self, obj: dict, node: tuple[str, str]) -> list[str]:
        """The node outlined in the accent colour at the steps it is at work, as the frames draw it."""
        active = [str(k + 1) for k, step in enumerate(self.steps or ()) if step.active == node]
        if not active:
            return []
        outline = self.draw(obj["_draw_"], ("cgaccent", self.t["penwidth"] * 2.5))
        return [rf"\only<{','.join(active)}>{{{' '.join(outline)}}}"]

    def edges(self) -> list[str]:
        out, font = [], size(self.t["small"] + 2, self.t)
        for (*_, data), obj in zip(self.scene.graph.edges(data=True), placed_edges(self.layout)):
            for part in ("_draw_", "_hdraw_", "_tdraw_"):
                out += self.draw(obj.get(part, []))
            if "lp" in obj:
                out.append(label(obj["lp"], [self.line(line) for line in data["lines"]], font))
        return out

    def title(self) -> list[str]:
        if not self.scene.title or "lp" not in self.layout:
            return []
        return [label(self.layout["lp"], [self.line(line) for line in self.scene.title])]

    def line(self, line: Line) -> str:
        """A label line; in overlays, shown from the step that reveals it, what stands in its place before."""
        shown = line_tex(line.text, line.role, self.t)
        if self.steps is None or line.until is None:
            return shown
        first = next((k for k, step in enumerate(self.steps) if step.shows(*line.until)), None)
        before = line_tex(*line.before, self.t)
        if first is None or first == 0:
            return before if first is None else shown
        # braced: a command taking overlays looks past its argument, here at the end of the node's text
        step = first + 1
        return rf"{{\alt<{step}->{{{shown}}}{{{before}}}}}" if before else rf"{{\uncover<{step}->{{{shown}}}}}"


# A file that is a document when compiled alone and only its picture when \input: once a document has begun,
# LaTeX has made \documentclass an error (\@notprerr), which the file tests for.
INPUT_TEST = r"\expandafter\ifx\csname @notprerr\endcsname\documentclass\else"
ALONE = INPUT_TEST + r""" % compiled on its own: one page, cropped to the picture
\documentclass{article}
\usepackage{tikz}
\begin{document}
\def\cgtoolsput{\pdfpagewidth=\wd0 \pdfpageheight=\ht0 \hoffset=-1in \voffset=-1in \shipout\box0 \end{document}}
\fi
"""
SLIDES = INPUT_TEST + r""" % compiled on its own: one Beamer frame holding the overlays
\documentclass{beamer}
\usepackage{tikz}
\def\cgtoolsslides{\begin{document}\begin{frame}\input{\jobname}\end{frame}\end{document}}
\expandafter\cgtoolsslides
\fi
"""
# \input: no wider than the line, no higher than most of the page (a slide's text area)
FIT = r"""\ifdim\wd0>\linewidth\setbox0=\hbox{\resizebox{\linewidth}{!}{\box0}}\fi
\ifdim\ht0>0.85\textheight\setbox0=\hbox{\resizebox{!}{0.85\textheight}{\box0}}\fi
\box0
"""
PICTURE_NOTE = """\
% {name}, drawn by cgtools: a TikZ picture of its Graphviz layout, the labels typeset as maths.
% Compiled on its own (pdflatex FILE.tex) it is one PDF page, cropped to the picture.
% In a document whose preamble has \\usepackage{{tikz}}, \\input{{FILE.tex}} draws the picture in the fonts around
% it, 1em/{fontsize} per Graphviz point ({{\\small\\input{{FILE.tex}}}} draws it smaller), fitted to the line.
"""
OVERLAYS_NOTE = """\
% {name}'s build-up, drawn by cgtools: {steps} Beamer overlays, one per frame (the bare graph, the forward pass node
% by node, then the backward pass), on one layout. In a Beamer deck whose preamble has \\usepackage{{tikz}}:
%   \\begin{{frame}}\\input{{FILE.tex}}\\end{{frame}}
% Compiled on its own (pdflatex FILE.tex), it is that frame alone.
"""


def comment_safe(name) -> str:
    """A name inside a TeX comment: on one line, so that nothing of it is read as TeX."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(name)).split())


def to_tex(graph, run=None, view: View = View()) -> str:
    """The diagram as a TikZ picture in a file that compiles on its own and can be \\input (module docstring)."""
    from cgtools.export.grouping import diagram_scene
    from cgtools.export.layout import FRAMES_LIMIT, refuse_oversized

    if not (view.focus or view.collapse):
        refuse_oversized(len(graph.nodes), graph, FRAMES_LIMIT, "a TeX picture")
    refuse_colouring(view)
    scene = diagram_scene(graph, run, view)
    refuse_oversized(scene.graph.number_of_nodes(), graph, FRAMES_LIMIT, "a TeX picture")
    picture = Picture(scene, json_layout(scene)).text()
    note = PICTURE_NOTE.format(name=comment_safe(graph.name or "graph"), fontsize=theme(view.theme)["fontsize"])
    return (note + ALONE + r"\providecommand\cgtoolsput{" + FIT.replace("\n", "") + "}\n"
            + "\\setbox0=\\hbox{%\n" + picture + "}%\n\\cgtoolsput\n")


def overlays_tex(frames: Frames, name: str) -> str:
    """The frames' build-up as one picture of Beamer overlays, for \\input in a frame (module docstring)."""
    picture = Picture(frames.scene, frames.layout(), frames.reveals).text()
    note = OVERLAYS_NOTE.format(name=comment_safe(name), steps=len(frames))
    return note + SLIDES + "\\setbox0=\\hbox{%\n" + picture + "}%\n" + FIT


def write_overlays(graph, run, view: View, folder: Path | str, stem: str) -> tuple[Path, int]:
    """`{stem}.tex` in `folder` (made if missing): the frames as Beamer overlays; with the number of steps."""
    refuse_colouring(view)
    folder = Path(folder)
    make_folder(folder)
    frames = Frames(graph, run, view, "tex")
    text = overlays_tex(frames, graph.name or stem)
    path = folder / f"{stem}.tex"
    write_atomic(path, lambda f: f.write(text.encode()))
    return path, len(frames)


def refuse_colouring(view: View) -> None:
    if view.colouring.by:
        raise CgError(f"-f tex draws no colour scale: --color-by {view.colouring.by} needs -f svg, png, pdf or html")
