"""The lecture's graphs as a gallery: every diagram of the backpropagation lecture that is a graph, made by
cgtools' own commands into one folder, with an index (README.md) giving each slide, its commands and its
pictures. `make lecture` runs it into docs/lecture/.

    python docs/lecture.py [FOLDER]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Slide:
    title: str  # the lecture's slide
    what: str
    commands: tuple[str, ...]  # cgtools' arguments; {out} is the gallery folder
    pictures: tuple[str, ...]  # files the commands write, shown in the index
    compiled: tuple[str, ...] = ()  # TeX files the commands write, compiled by pdflatex into PDFs beside them


AFFINE = "examples/affine_square.json"
CHAIN = "--show values,grads,chain"
SLIDES = (
    Slide("Computation Graph Example", "f(x; a, b) = (ax + b)²: the graph alone, then with its values and gradients",
          (f"render {AFFINE} --no-values -o {{out}}/affine_square_graph.svg",
           f"render {AFFINE} -o {{out}}/affine_square.svg"),
          ("affine_square_graph.svg", "affine_square.svg")),
    Slide("Backpropagation Example", "Each gradient as the slides write it: upstream gradient times local gradient",
          (f"render {AFFINE} {CHAIN} -o {{out}}/affine_square_chain.svg",),
          ("affine_square_chain.svg",)),
    Slide("Forward, then backward, one node at a time", "The build-up: the bare graph, the forward pass node by "
          "node, then the backward pass, on one layout (a multi-page PDF for the slides too)",
          (f"render {AFFINE} {CHAIN} -f svg --frames {{out}}/affine_square_frames",
           f"render {AFFINE} {CHAIN} -f pdf --frames {{out}}/affine_square_pdf"),
          tuple(f"affine_square_frames/affine_square-{k}.svg" for k in (0, 4, 8))),
    Slide("The same in LaTeX", "A TikZ picture in the slides' own fonts, and the build-up as Beamer overlays: "
          "`\\begin{frame}\\input{affine_square_tex/affine_square.tex}\\end{frame}` steps through it; each file "
          "also compiles alone, here into [affine_square.pdf](affine_square.pdf) and "
          "[affine_square_tex/affine_square.pdf](affine_square_tex/affine_square.pdf)",
          (f"render {AFFINE} {CHAIN} -f tex -o {{out}}/affine_square.tex",
           f"render {AFFINE} {CHAIN} -f tex --frames {{out}}/affine_square_tex"),
          (), compiled=("affine_square.tex", "affine_square_tex/affine_square.tex")),
    Slide("Secret Number Game Graph (Loss)", "L(ŷ, y) = (x + θ − y)², the guess ŷ = x + θ",
          ("render examples/secret_number.json -o {out}/secret_number.svg",),
          ("secret_number.svg",)),
    Slide("Playing the game", "Gradient descent walking θ toward the secret while the loss shrinks: the loss per "
          "step, and the graph every 5 steps on one layout (x = 0, …, 7 and the secret y = x + 4, one at a step)",
          ("train examples/secret_number.json --data examples/data/secret_number.npz --epochs 2 --batch-size 1 "
           "--lr 0.1 --plot {out}/secret_number_loss.svg --frames {out}/secret_number_training --every 5 "
           "-o {out}/secret_number_trained.json",),
          ("secret_number_loss.svg", "secret_number_training/secret_number-0.svg",
           "secret_number_training/secret_number-3.svg")),
    Slide("Perceptron Graph", "ŷ = σ(wx + b)",
          ("render examples/perceptron.json -o {out}/perceptron.svg",),
          ("perceptron.svg",)),
    Slide("Adding Gradients with Multiple Outputs", "x² · 3x: x feeds two nodes, and its gradient is the sum of "
          "both shares (the multivariable chain rule)",
          (f"render examples/square_times_3x.json {CHAIN} -o {{out}}/square_times_3x.svg",),
          ("square_times_3x.svg",)),
    Slide("Example: ReLU", "ReLU's local gradient [x > 0] times the upstream gradient",
          (f'render --expr "y = relu(x); L = sum(y * w)" --set "x=[-1.5, 2]" --set "w=[3.0, 4.0]" {CHAIN} '
           "-o {out}/relu.svg",),
          ("relu.svg",)),
    Slide("Schematic of Graph for Training", "Inputs through the net to outputs, outputs and labels through the "
          "criterion to the loss",
          ("render examples/training_schematic.json --collapse 1 -o {out}/training_schematic.svg",),
          ("training_schematic.svg",)),
    Slide("Training Loop", "The loop of the slides (zero_grad, forward, backward, step) on the two moons: the loss "
          "per step and per epoch, and the accuracy",
          ("train examples/mlp_moons.json --data examples/data/moons.npz --epochs 60 --lr 0.05 --optimizer adam "
           "--plot {out}/moons_loss.svg -o {out}/moons_trained.json",),
          ("moons_loss.svg",)),
)


def cgtools_command() -> list[str]:
    """cgtools as installed beside this Python (the project's virtual environment)."""
    return [str(Path(sys.executable).with_name("cgtools"))]


def make(out: Path) -> list[Path]:
    """Run every slide's commands into `out`; write the index; the files made, index first."""
    out.mkdir(parents=True, exist_ok=True)
    for slide in SLIDES:
        for command in slide.commands:
            args = shlex.split(command.format(out=out))
            subprocess.run(cgtools_command() + args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for slide in SLIDES:
        for tex in slide.compiled:
            compile_tex(out / tex)
    index = out / "README.md"
    index.write_text(index_text())
    return [index, *(out / picture for slide in SLIDES for picture in slide.pictures)]


def compile_tex(tex: Path) -> None:
    """pdflatex `tex` into a PDF beside it, its by-products left in a temporary folder."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"-output-directory={scratch}",
                        tex.name], cwd=tex.parent, check=True, stdout=subprocess.DEVNULL)
        shutil.copy(Path(scratch) / tex.with_suffix(".pdf").name, tex.with_suffix(".pdf"))


def index_text() -> str:
    """The gallery's README: each slide's commands, as run from the project's root, and its pictures."""
    lines = ["# The lecture's graphs", "",
             "Every diagram of the backpropagation lecture that is a graph, made by `make lecture` (which runs "
             "`docs/lecture.py`) with the commands below, run from the project's root.", ""]
    for slide in SLIDES:
        lines += [f"## {slide.title}", "", slide.what + ".", "", "```sh"]
        lines += [f"cgtools {command.format(out='docs/lecture')}" for command in slide.commands]
        lines += ["```", ""]
        lines += [f"![{Path(picture).stem}]({picture})" for picture in slide.pictures]
        lines += [""] if slide.pictures else []
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "docs" / "lecture")
    made = make(parser.parse_args().folder)
    print(f"{made[0]}: {len(SLIDES)} slides")
