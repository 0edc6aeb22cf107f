"""The wheel ships the JSON Schema and the CLI as cgtools.cli; `cgtools --help` stays light."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_wheel_contains_the_schema_and_the_cli(tmp_path):
    """Built from a clean copy of the source (a build/ folder left in the checkout would add stale modules), the
    wheel holds exactly the package's modules, the CLI as cgtools.cli, and the schema."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__",
                                                                  "tests", "demo", "docs"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("cgtools-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {f"cgtools/{p.relative_to(ROOT / 'cgtools')}" for p in (ROOT / "cgtools").rglob("*.py")}
    modules |= {f"cgtools/cli/{p.relative_to(ROOT / 'cli')}" for p in (ROOT / "cli").rglob("*.py")}
    modules |= {f"cgtools/schemas/{p.name}" for p in (ROOT / "schemas").glob("*.py")}
    assert {name for name in names if name.endswith(".py")} == modules
    assert "cgtools/schemas/cgraph.schema.json" in names
    assert "cgtools/cli/__init__.py" in names
    assert not any(name.startswith("cli/") for name in names)  # no top-level `cli` package
    schema = json.loads(zipfile.ZipFile(wheel).read("cgtools/schemas/cgraph.schema.json"))
    assert schema["$schema"].endswith("2020-12/schema")


def test_schema_command_prints_the_shipped_schema(cli):
    result = cli("schema")
    assert json.loads(result.stdout) == json.loads((ROOT / "schemas" / "cgraph.schema.json").read_text())


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from cgtools.cli import cli; import click.testing as t; "
            "t.CliRunner().invoke(cli, ['--help']); "
            "heavy = ('numpy', 'networkx', 'pyvis', 'onnx', 'torch', 'jsonschema'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ops_command_lists_every_op_with_a_description(cli):
    from cgtools.ops import REGISTRY

    out = cli("ops").stdout
    for op_type, cls in REGISTRY.items():
        if not cls.__module__.startswith("cgtools.ops"):
            continue  # registered by a test in this process
        assert f"\n{op_type} " in "\n" + out
    assert "Pow" in out and "x ** exponent" in out
    assert "(X); no gradient: backward stops here" in out.split("\nNonZero ")[1].split("\n")[1]  # an index op
    assert "backward stops" not in out.split("\nTanh ")[1].split("\n")[1]
    assert "Not supported: string and map types" in out


def test_console_script_exists():
    script = Path(sys.executable).with_name("cgtools")
    assert script.is_file(), f"no console script {script} beside the interpreter: reinstall the package"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("cgtools, version "), result.stderr


def test_format_reference_is_generated_from_the_schema():
    from cgtools.json_format import schema_markdown

    assert (ROOT / "docs" / "format.md").read_text() == schema_markdown(), "run `make docs`"
