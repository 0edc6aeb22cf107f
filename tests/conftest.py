"""Fixtures: the CLI, Graphviz, a real browser, golden files, and ops a test registers."""

import shutil
from pathlib import Path

import pytest

from helpers import run_cli


def pytest_collection_modifyitems(items):
    """A test that opens a browser page is a `browser` test, whichever file it is in."""
    for item in items:
        if {"browser", "open_page"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def registered_ops_are_forgotten():
    """An op a test registers lasts for that test only."""
    from cgtools.ops import REGISTRY

    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


@pytest.fixture
def cli():
    """Run the real `cgtools` command; returns the CompletedProcess."""
    return run_cli


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden DOT files from the current output (review the diff!)")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="session")
def graphviz():
    """Graphviz's `dot`. Missing is a failure, not a skip: `make test` installs it."""
    assert shutil.which("dot"), "Graphviz's `dot` is missing: run `make test` (installs it) or apt-get install graphviz"


@pytest.fixture(scope="session")
def pdflatex():
    """TeX's pdflatex, which compiles `-f tex` output. Missing is a failure, not a skip: `make test` installs it."""
    found = shutil.which("pdflatex")
    assert found, ("pdflatex is missing: run `make test` (installs it) or apt-get install texlive-latex-base "
                   "texlive-pictures texlive-latex-recommended")
    return found


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright. Missing is a failure, not a skip: `make test` installs it."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make test` (installs it) or apt-get install chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class OpenedPage:
    """A page opened from a file, with every request and console message it made recorded."""

    def __init__(self, browser, path):
        self.requests, self.console, self.errors = [], [], []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = Path(path).resolve().as_uri()
        self.page.goto(self.url)

    def external_requests(self):
        return [url for url in self.requests if url != self.url]

    def console_errors(self):
        return [text for kind, text in self.console if kind in ("error", "warning")] + self.errors


@pytest.fixture
def open_page(browser):
    pages = []

    def open_(path):
        pages.append(OpenedPage(browser, path))
        return pages[-1]

    yield open_
    for opened in pages:
        opened.page.close()


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Real models (tests/models.py) exported at most once a session: exported("resnet18") -> Exported;
    exported("resnet18", trainable=True) as models.export takes it."""
    from models import export

    folder, made = tmp_path_factory.mktemp("models"), {}

    def get(name: str, trainable: bool = False):
        if (name, trainable) not in made:
            made[name, trainable] = export(name, folder, trainable=trainable)
        return made[name, trainable]

    return get
