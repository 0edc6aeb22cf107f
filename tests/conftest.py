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

    def run(*args, cwd=None, input=None):
        return subprocess.run([*cgtools_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                              input=input, timeout=120)

    return run
