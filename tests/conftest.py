import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cgtools_command() -> list[str]:
    """The installed console script, beside this interpreter."""
    script = Path(sys.executable).with_name("cgtools")
    return [str(script)] if script.exists() else [shutil.which("cgtools") or "cgtools"]


@pytest.fixture
def cli():
    """Run the real `cgtools` command; returns the CompletedProcess."""

    def run(*args, cwd=None, input=None, env=None):
        return subprocess.run([*cgtools_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                              input=input, timeout=120, env=env)

    return run


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
