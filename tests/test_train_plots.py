"""Training you can watch: `cgtools train --plot` draws exactly the losses it prints, `--frames` draws the graph
at every K-th step on one layout, and the page's slider puts each snapshot's θ on the graph.

The secret-number game's data (x, y = x + 4) makes its training hand-computable: with the batch's mean loss
(x + θ − y)², ∂L/∂θ = 2(θ − 4) whatever the batch, so SGD at lr 0.1 gives θ_k = 4 − 3·0.8^k and L_k = 9·0.64^k.
"""

import html
import re

import numpy as np
import pytest

from helpers import EXAMPLES, run_in_process

SECRET = ("train", EXAMPLES / "secret_number.json", "--data", EXAMPLES / "data" / "secret_number.npz",
          "--epochs", "10", "--batch-size", "4", "--lr", "0.1")
MOONS = ("train", EXAMPLES / "mlp_moons.json", "--data", EXAMPLES / "data" / "moons.npz", "--epochs", "4",
         "--lr", "0.05", "--optimizer", "adam")
DRAWN = "window.cgtools && window.cgtools.drawn"


def theta(step):
    return 4 - 3 * 0.8**step


def train(capsys, tmp_path, game, *options):
    result = run_in_process(capsys, *game, "-o", tmp_path / "trained.json", *options)
    assert result.returncode == 0, result.stderr
    return result


def printed(stdout):
    """The step losses and the epochs' (mean loss, accuracy) that --print-steps printed."""
    steps = [float(v) for v in re.findall(r"^step \d+ epoch \d+ loss (\S+)$", stdout, re.M)]
    epochs = [(float(m), float(a) if a else None)
              for m, a in re.findall(r"^epoch \d+ mean loss (\S+)(?: accuracy (\S+))?$", stdout, re.M)]
    return steps, epochs


def plotted(svg, gid):
    """The (x, y) points of the SVG path drawn for the line `gid`, in the SVG's coordinates."""
    d = re.search(rf'<g id="{gid}">\s*<path d="([^"]*)"', svg).group(1)
    return np.array([float(v) for v in re.findall(r"-?[\d.]+", d)]).reshape(-1, 2)


def fits(coordinates, data):
    """Whether the drawn coordinates are an affine image of the data: the axis's mapping, to 0.001 pixels."""
    A = np.stack([data, np.ones_like(data)], 1)
    solution, *_ = np.linalg.lstsq(A, coordinates, rcond=None)
    return np.abs(A @ solution - coordinates).max() < 1e-3 and abs(solution[0]) > 1e-6


@pytest.mark.slow
def test_the_secret_numbers_plot_draws_the_printed_losses_on_a_log_axis(capsys, tmp_path):
    result = train(capsys, tmp_path, SECRET, "--plot", tmp_path / "loss.svg", "--print-steps")
    steps, epochs = printed(result.stdout)
    np.testing.assert_allclose(steps, [9 * 0.64**k for k in range(20)], rtol=1e-12)  # the game, by hand
    assert [m for m, _ in epochs] == [float(np.mean(steps[k:k + 2])) for k in range(0, 20, 2)]
    svg = (tmp_path / "loss.svg").read_text()
    points = plotted(svg, "step-loss")
    assert len(points) == len(steps) == 20
    assert fits(points[:, 0], np.arange(20.0))
    assert fits(points[:, 1], np.log10(steps)) and not fits(points[:, 1], np.array(steps))  # log: 4 decades
    means = plotted(svg, "epoch-loss")
    assert fits(means[:, 1], np.log10([m for m, _ in epochs])) and fits(means[:, 0], np.arange(1.0, 20, 2))
    assert 'id="accuracy"' not in svg  # no labels, no accuracy


@pytest.mark.slow
def test_the_moons_plot_draws_the_printed_losses_and_accuracies(capsys, tmp_path):
    result = train(capsys, tmp_path, MOONS, "--plot", tmp_path / "loss.svg", "--print-steps")
    steps, epochs = printed(result.stdout)
    assert len(steps) == 4 * 10 and len(epochs) == 4 and all(a is not None for _, a in epochs)
    svg = (tmp_path / "loss.svg").read_text()
    points = plotted(svg, "step-loss")
    assert len(points) == len(steps)
    assert fits(points[:, 1], np.array(steps)) or fits(points[:, 1], np.log10(steps))
    accuracy = plotted(svg, "accuracy")
    assert fits(accuracy[:, 1], np.array([a for _, a in epochs]))
    assert epochs[-1][0] < epochs[0][0] and epochs[-1][1] > 0.8
    assert f"accuracy {epochs[-1][1]:.1%}" in result.stdout  # the last epoch's accuracy is the one reported


@pytest.mark.slow
@pytest.mark.parametrize("game", [SECRET, MOONS], ids=["secret", "moons"])
def test_the_plot_is_written_as_png_and_pdf(capsys, tmp_path, game):
    train(capsys, tmp_path, game, "--plot", tmp_path / "loss.png")
    train(capsys, tmp_path, game, "--plot", tmp_path / "loss.pdf")
    png, pdf = (tmp_path / "loss.png").read_bytes(), (tmp_path / "loss.pdf").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")


def node_shapes(svg):
    """Each node's outline in a Graphviz SVG, by the node's key: equal outlines, equal places."""
    found = re.findall(r'class="node">\s*<title>(.*?)</title>(?:(?!</g>).)*?<(?:polygon|ellipse|path)([^>]*)>', svg,
                       re.S)
    return dict(found)


def snapshot_texts(folder, stem):
    return [html.unescape(path.read_text()) for path in sorted(folder.glob(f"{stem}-*.svg"))]


@pytest.mark.slow
def test_the_secret_numbers_snapshots_show_theta_walking_to_the_secret(capsys, tmp_path):
    train(capsys, tmp_path, SECRET, "--frames", tmp_path / "frames", "--every", "3")
    svgs = snapshot_texts(tmp_path / "frames", "secret_number")
    numbers = [0, 3, 6, 9, 12, 15, 18, 19]  # every third step, and the last
    assert len(svgs) == len(numbers)
    shapes = [node_shapes(svg) for svg in svgs]
    assert len(shapes[0]) == 7 and all(s == shapes[0] for s in shapes)  # nothing moves
    for svg, number in zip(svgs, numbers):
        step, epoch, loss = re.search(r"step (\d+) · epoch (\d+) · loss ([\d.e-]+)", svg).groups()
        assert (int(step), int(epoch)) == (number, number // 2 + 1)
        assert float(loss) == pytest.approx(9 * 0.64**number, rel=1e-3)
        shown = float(re.search(r">θ = ([\d.]+)<", svg).group(1))
        assert shown == pytest.approx(theta(number), rel=1e-3)
        assert float(re.search(r">∂L/∂θ = (-?[\d.e-]+)<", svg).group(1)) == pytest.approx(2 * (theta(number) - 4),
                                                                                          rel=1e-3)


@pytest.mark.slow
def test_the_moons_snapshots_share_one_layout_and_the_loss_falls(capsys, tmp_path):
    train(capsys, tmp_path, MOONS, "--frames", tmp_path / "frames", "--every", "10", "-f", "pdf")
    from pypdf import PdfReader

    assert len(list((tmp_path / "frames").glob("mlp_moons-[0-9].pdf"))) == 5  # steps 0, 10, 20, 30 and 39
    assert len(PdfReader(tmp_path / "frames" / "mlp_moons-frames.pdf").pages) == 5
    train(capsys, tmp_path, MOONS, "--frames", tmp_path / "frames", "--every", "10")
    svgs = snapshot_texts(tmp_path / "frames", "mlp_moons")
    assert len(svgs) == 5  # steps 0, 10, 20, 30 and the last, 39
    shapes = [node_shapes(svg) for svg in svgs]
    assert len(shapes[0]) >= 8 and all(s == shapes[0] for s in shapes)
    losses = [float(re.search(r"loss ([\d.e-]+)", svg.split("epoch", 1)[1]).group(1)) for svg in svgs]
    assert losses[-1] < losses[0] / 2


@pytest.mark.browser
@pytest.mark.slow
def test_the_pages_slider_puts_each_snapshots_theta_on_the_graph(capsys, tmp_path, open_page, graphviz):
    train(capsys, tmp_path, SECRET, "--frames", tmp_path / "page", "--every", "5", "-f", "html")
    opened = open_page(tmp_path / "page" / "secret_number.html")
    page = opened.page
    page.wait_for_function(DRAWN)
    assert page.evaluate("document.getElementById('snapshot').max") == "4"  # steps 0, 5, 10, 15, 19
    assert not page.is_visible("#stepper")

    def theta_label():
        return page.evaluate("""() => {
            const i = window.cgtools.data.tensors.findIndex(s => s.head.split('\\n')[0] === 'θ');
            const node = window.cgtools.nodes.get('T' + i);
            return node ? node.label : window.cgtools.edges.get('E' + i).label;
        }""")

    for k, step in [(0, 0), (2, 10), (4, 19), (1, 5)]:
        page.eval_on_selector("#snapshot", "(s, k) => { s.value = k; s.dispatchEvent(new Event('input')); }", k)
        assert page.inner_text("#caption").startswith(f"step {step} · ")
        shown = float(re.search(r"θ = ([\d.]+)", theta_label()).group(1))
        assert shown == pytest.approx(theta(step), rel=1e-3)
    page.keyboard.press("Home")  # a clicker's keys step through the snapshots
    assert page.inner_text("#caption").startswith("step 0 · epoch 1 · loss 9")
    page.keyboard.press("PageDown")
    assert page.inner_text("#caption").startswith("step 5 · ") and f"θ = {theta(5):.4g}" in theta_label()
    assert opened.errors == [] and opened.external_requests() == []


@pytest.mark.parametrize("options, message", [
    (("--frames", "F", "--every", "0"), "expected --every a number of steps, 1 or more, found 0"),
    (("--every", "2"), "--every needs --frames DIR: where the snapshots go"),
    (("-f", "pdf"), "-f/--format needs --frames DIR: where the snapshots go"),
    (("--plot", "loss.txt"), "expected a plot file ending in .svg, .png, .pdf, found 'loss.txt'"),
    (("--frames", "a_file"), "--frames 'a_file' is a file; expected a folder"),
])
def test_watching_options_are_checked_before_training(capsys, tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    result = run_in_process(capsys, *SECRET, "-o", tmp_path / "trained.json", *options)
    assert result.returncode == 1 and result.stderr.strip().endswith(message), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "trained.json").exists()
