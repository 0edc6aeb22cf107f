"""`make bench`: every benchmark in bench/, one after the other, then one table of all their figures.

    python bench/summary.py [--only NAME,...] [--quiet]

Each script prints its own lines as it goes (hidden with --quiet) and a BENCH line per figure
(timing.record); this collects those into one table: what was measured, cgtools' figure, the peer's, their
ratio (each pair measured side by side in one process), the target and whether it is met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_interpreter", "bench_peers", "bench_onnx", "bench_busy", "bench_render", "bench_html",
           "bench_scale", "bench_weights", "bench_first_run", "bench_models")


def rows_of(script: str, quiet: bool) -> list[dict]:
    """Run one script; its BENCH rows (and a row saying it failed, if it did)."""
    process = subprocess.Popen([sys.executable, str(HERE / f"{script}.py")], stdout=subprocess.PIPE, text=True)
    rows = []
    for line in process.stdout:
        if line.startswith("BENCH "):
            rows.append({"script": script, **json.loads(line[6:])})
        elif not quiet:
            print(f"  {line}", end="", flush=True)
    if process.wait() != 0:
        rows.append({"script": script, "benchmark": f"{script} failed (exit code {process.returncode})",
                     "ours": None, "unit": "", "peer": "", "theirs": None, "ratio": None, "target": "",
                     "met": False})
    return rows


def figure(value, unit: str) -> str:
    if value is None:
        return ""
    return f"{value * 1e3:.3g} ms" if unit == "s" and value < 1 else f"{value:.3g} {unit}".strip()


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | cgtools | peer | peer's | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] else ""
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| {r['benchmark']} | {figure(r['ours'], r['unit'])} | {r['peer']} | "
                     f"{figure(r['theirs'], r['unit'])} | {ratio} | {r['target']} | {met} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated script names")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args()
    rows = []
    for script in [s.strip() for s in args.only.split(",")]:
        if not (HERE / f"{script}.py").exists():
            continue
        print(f"{script}:", flush=True)
        rows += rows_of(script, args.quiet)
    print()
    print(table(rows))
    missed = [r for r in rows if r["met"] is False]
    print(f"\n{len(rows)} figures, {len(missed)} short of their target")


if __name__ == "__main__":
    main()
