"""`make lecture`: docs/lecture.py makes every graph of the lecture with cgtools' own commands, and the index
committed in docs/lecture/ is the one it writes."""

import runpy
from pathlib import Path

import pypdf
import pytest

from helpers import ROOT

GALLERY = runpy.run_path(str(ROOT / "docs" / "lecture.py"))


def test_the_committed_index_is_the_scripts():
    assert (ROOT / "docs" / "lecture" / "README.md").read_text() == GALLERY["index_text"]()


def test_the_index_names_the_lectures_graphs():
    titles = [slide.title for slide in GALLERY["SLIDES"]]
    for slide in ("Computation Graph Example", "Backpropagation Example", "Secret Number Game Graph (Loss)",
                  "Perceptron Graph", "Adding Gradients with Multiple Outputs", "Example: ReLU",
                  "Schematic of Graph for Training", "Training Loop"):
        assert slide in titles


@pytest.mark.slow
def test_make_lecture_writes_every_picture_and_the_build_up(tmp_path, graphviz, pdflatex):
    made = GALLERY["make"](tmp_path)
    assert all(path.is_file() and path.stat().st_size > 0 for path in made)
    frames = sorted((tmp_path / "affine_square_frames").glob("affine_square-*.svg"))
    overlays = pypdf.PdfReader(tmp_path / "affine_square_tex" / "affine_square.pdf")
    multi_page = pypdf.PdfReader(tmp_path / "affine_square_pdf" / "affine_square-frames.pdf")
    assert len(frames) == len(overlays.pages) == len(multi_page.pages) == 9  # the frames of render --frames
    chain = (tmp_path / "affine_square_chain.svg").read_text()
    assert "∂e/∂x = ∂e/∂c · ∂c/∂x = 10a = 30" in chain
    assert "[x &gt; 0]" in (tmp_path / "relu.svg").read_text()
    assert len(list((tmp_path / "secret_number_training").glob("*.svg"))) == 4  # steps 0, 5, 10 and the last, 15
    assert Path(tmp_path / "README.md").read_text() == GALLERY["index_text"]()
