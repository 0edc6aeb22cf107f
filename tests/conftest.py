import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# log of a negative number: the NaN starts at lx and flows on to ex and L
NAN_GRAPH = {"cgtools": "1.0", "inputs": [{"name": "x", "value": [-1.0, 2.0]}],
             "nodes": [{"op": "Log", "inputs": ["x"], "outputs": ["lx"]},
                       {"op": "Exp", "inputs": ["lx"], "outputs": ["ex"]},
                       {"op": "ReduceSum", "inputs": ["ex"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
             "outputs": ["L"]}


def cgtools_command() -> list[str]:
    """The installed console script, beside this interpreter."""
    script = Path(sys.executable).with_name("cgtools")
    return [str(script)] if script.exists() else [shutil.which("cgtools") or "cgtools"]


def run_cli(*args, cwd=None, input=None, env=None) -> subprocess.CompletedProcess:
    """The real `cgtools` console script, in a subprocess."""
    return subprocess.run([*cgtools_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          input=input, timeout=120, env=env)


@pytest.fixture
def cli():
    """Run the real `cgtools` command; returns the CompletedProcess."""
    return run_cli


def run_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """`cgtools.cli.main`, the console script's entry point, called in this process (no start-up cost);
    an exception escaping it is what the script would print as a traceback."""
    import traceback

    from cgtools.cli import main

    capsys.readouterr()
    code, crash = 0, ""
    try:
        main([str(arg) for arg in args])
    except SystemExit as e:
        code = e.code
    except Exception:
        code, crash = 1, traceback.format_exc()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err + crash)


def error_of(call, *args, **kwargs) -> str:
    """The message of the CgError that `call` raises."""
    from cgtools.errors import CgError

    with pytest.raises(CgError) as info:
        call(*args, **kwargs)
    return str(info.value)


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
