"""The ONNX backend node test suite, run through cgtools: `python -m cgtools.onnx.conformance`
(`make conformance`).

The suite is regenerated offline from the installed onnx wheel — its case scripts
(`onnx.backend.test.case.node.collect_testcases()`) written out by its own writer
(`onnx.backend.test.cmd_tools.generate_data`) — into `.cache/onnx-node-tests/<onnx version>/node/<case>/`
(model.onnx, test_data_set_0/input_*.pb, output_*.pb), once per onnx version.

A case is runnable when every op of its graph is one cgtools runs (registered, or a Constant, which the loader
turns into a constant) and every dtype of its inputs, outputs and initializers is one the format has. A
runnable case using an op in EXCLUDED is reported as excluded; every other runnable case must pass: loaded
with `load_onnx(model.onnx)` (what `cgtools.load` does with a .onnx file), run forward, each output equal to
the stored one (same shape and dtype; floats within rtol 1e-3 (two ulps for bfloat16 and float8), atol 1e-5,
NaN equal to NaN; integers and booleans exactly). The `*_expanded` cases (an op's function body, expanded
into plain ops) count for the ops they use.

The claimed op types are the registered ops that appear in the suite, minus EXCLUDED.

    python -m cgtools.onnx.conformance                 # every case; exit 1 on any failure
    python -m cgtools.onnx.conformance --op Add -v     # the cases using Add, each named
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import LOADER_OPS, onnx_dtype_name
from cgtools.onnx.read import container_of, graphs_within, load_onnx, op_label, type_problem
from cgtools.values import NARROW_FLOATS, as_plain

# Op type -> why it cannot pass all its cases. Keep it empty unless an op truly cannot; the lead decides.
UNSEEDED = ("the suite's expected values were drawn from numpy's unseeded global generator (test_bernoulli_seed's "
            "too), so only shape and dtype can agree; tests/test_random_ops.py checks seeded draws against onnx's "
            "ReferenceEvaluator")
EXCLUDED: dict[str, str] = {"Bernoulli": UNSEEDED, "RandomUniformLike": UNSEEDED}

RTOL, ATOL = 1e-3, 1e-5
ROOT = Path(__file__).resolve().parents[2]
COMPLETE = ".complete"  # written last: a suite folder without it is a generation that did not finish


def default_cache() -> Path:
    """`.cache/onnx-node-tests/<onnx version>/` under the project root (the current folder when cgtools is
    installed elsewhere); $CGTOOLS_ONNX_TESTS overrides it."""
    import onnx

    if os.environ.get("CGTOOLS_ONNX_TESTS"):
        return Path(os.environ["CGTOOLS_ONNX_TESTS"])
    base = ROOT if (ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / ".cache" / "onnx-node-tests" / onnx.__version__


def ensure_suite(folder: Path | None = None) -> Path:
    """The suite's folder, generated first unless it is already there (about 20 s, offline)."""
    folder = Path(folder) if folder else default_cache()
    if (folder / COMPLETE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _generate(tmp)
        (tmp / COMPLETE).write_text("")
        if folder.exists():  # an unfinished earlier generation
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / COMPLETE).is_file():  # not another process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _generate(output: Path) -> None:
    """Write every node test case with onnx's own writer (cmd_tools.generate_data writes the cases its
    `model_test` module collects; here it is handed the node cases instead)."""
    import onnx.backend.test.case.node as node_test
    from onnx.backend.test import cmd_tools

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node_test.collect_testcases()

    class NodeCases:
        @staticmethod
        def collect_testcases():
            return cases

    saved = cmd_tools.model_test
    cmd_tools.model_test = NodeCases
    try:
        cmd_tools.generate_data(argparse.Namespace(output=str(output)))
    finally:
        cmd_tools.model_test = saved


@dataclass
class Case:
    name: str
    folder: Path
    ops: tuple[str, ...]  # op types of its graph (subgraphs included), sorted
    inputs: list[str] = field(default_factory=list)  # graph inputs fed from input_*.pb, in order
    outputs: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # input or output name -> "sequence", "optional"
    status: str = "runnable"  # runnable | excluded | unsupported op | unsupported dtype
    why: str = ""  # for the statuses other than runnable: which op, dtype or exclusion

    def __repr__(self):
        return self.name


def supported_ops() -> set[str]:
    from cgtools.ops import REGISTRY

    return set(REGISTRY) | set(LOADER_OPS)


def discover(folder: Path) -> list[Case]:
    """Every case of the suite, with whether it is runnable and, if not, why."""
    import onnx

    from cgtools.values import DTYPES

    supported = supported_ops()
    cases = []
    for case_dir in sorted((Path(folder) / "node").iterdir()):
        model = onnx.load_model(str(case_dir / "model.onnx"), load_external_data=False)
        ops = {op_label(node) for g in graphs_within(model.graph) for node in g.node}
        g = model.graph
        inits = {t.name for t in g.initializer}
        case = Case(case_dir.name, case_dir, tuple(sorted(ops)), [i.name for i in g.input if i.name not in inits],
                    [o.name for o in g.output])
        case.kinds = {v.name: container_of(v.type) for v in (*g.input, *g.output) if container_of(v.type)}
        missing = sorted(ops - supported)
        types = [(f"{what} {v.name!r}", type_problem(v.type)) for what, vs in (("input", g.input),
                                                                                  ("output", g.output)) for v in vs]
        types += [(f"initializer {t.name!r}", None if onnx_dtype_name(t.data_type) in DTYPES
                   else f"has dtype {onnx_dtype_name(t.data_type)}") for t in g.initializer]
        bad_types = [f"{where} {problem.split(';')[0]}" for where, problem in types if problem]
        excluded = sorted(set(ops) & set(EXCLUDED))
        if missing:
            case.status, case.why = "unsupported op", ", ".join(missing)
        elif bad_types:
            case.status, case.why = "unsupported dtype", bad_types[0]
        elif excluded:
            case.status, case.why = "excluded", ", ".join(excluded)
        cases.append(case)
    return cases


def claimed_ops(cases: list[Case]) -> list[str]:
    """Registered (or loader-handled) op types that appear in the suite, minus EXCLUDED."""
    supported = supported_ops()
    seen = {op for case in cases for op in case.ops}
    return sorted((seen & supported) - set(EXCLUDED))


def read_tensor(path: Path, kind: str | None = None):
    """The array a TensorProto file holds; for `kind` "sequence" the list of arrays of a SequenceProto, for
    "optional" an OptionalProto's value or None."""
    import onnx

    proto = {None: onnx.TensorProto, "sequence": onnx.SequenceProto, "optional": onnx.OptionalProto}[kind]()
    proto.ParseFromString(path.read_bytes())
    read = {None: onnx.numpy_helper.to_array, "sequence": onnx.numpy_helper.to_list,
            "optional": onnx.numpy_helper.to_optional}[kind]
    return read(proto)


def mismatch(name: str, got, expected: np.ndarray) -> str | None:
    """Why `got` is not `expected` (one line), or None when it is; sequences element by element."""
    if type(expected) is list or expected is None:
        if type(got) is not type(expected) or expected is not None and len(got) != len(expected):
            return f"output {name!r}: {words(got)}, expected {words(expected)}"
        pairs = enumerate(zip(got or (), expected or ()))
        return next(filter(None, (mismatch(f"{name}[{k}]", g, e) for k, (g, e) in pairs)), None)
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"output {name!r}: shape {list(got.shape)}, expected {list(expected.shape)}"
    if got.dtype != expected.dtype:
        return f"output {name!r}: dtype {got.dtype}, expected {expected.dtype}"
    # within two ulps of a narrow float (bfloat16 keeps 8 bits): a chain of ops rounds at every op
    rtol = max(RTOL, 2 * float(ml_dtypes.finfo(got.dtype).eps)) if got.dtype.name in NARROW_FLOATS else RTOL
    got, expected = as_plain(got), as_plain(expected)  # bfloat16, float8, int4 … compared as float64, int64
    if expected.dtype.kind in "fc":
        with np.errstate(all="ignore"):
            close = np.isclose(got, expected, rtol=rtol, atol=ATOL, equal_nan=True)
    else:
        close = got == expected
    if np.all(close):
        return None
    bad = np.argwhere(~np.asarray(close))
    at = tuple(int(i) for i in bad[0])
    detail = ""
    if expected.dtype.kind in "fc":
        with np.errstate(all="ignore"):
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        detail = f", max |diff| {np.nanmax(np.where(close, 0, diff)):.3g}"
    return (f"output {name!r}: {len(bad)} of {expected.size} elements differ{detail}; first at {list(at)}: "
            f"{got[at]!r}, expected {expected[at]!r}")


def words(value) -> str:
    return "none" if value is None else f"a sequence of {len(value)}" if type(value) is list else "a tensor"


def run_case(case: Case) -> str | None:
    """Load the case's model with cgtools, run it on each data set; the first problem (one line) or None."""
    try:
        graph = load_onnx(case.folder / "model.onnx")
        for data in sorted(case.folder.glob("test_data_set_*")):
            feeds = {name: read_tensor(data / f"input_{j}.pb", case.kinds.get(name))
                     for j, name in enumerate(case.inputs)}
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = graph.run(feeds, backward=False)
            for j, name in enumerate(case.outputs):
                problem = mismatch(name, run.values[name], read_tensor(data / f"output_{j}.pb", case.kinds.get(name)))
                if problem:
                    return problem
    except CgError as e:
        return f"error: {e.detail if e.where is None else f'{e.where}: {e.detail}'}".splitlines()[0]
    except Exception as e:  # noqa: BLE001 - an op's own bug must be reported, not crash the report
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def primary_op(case: Case) -> str:
    """The op a case is about: its only op, or (for expanded and multi-node cases) its ops joined."""
    ops = [op for op in case.ops if op != "Constant"] or list(case.ops)
    return ops[0] if len(ops) == 1 else "+".join(ops)


def report(cases: list[Case], results: dict[str, str | None], out=sys.stdout) -> int:
    """Print the per-op table, the totals and the failures; the number of failures."""
    supported = supported_ops()
    per_op: dict[str, Counter] = defaultdict(Counter)
    for case in cases:
        for op in case.ops:
            if op not in supported:
                continue
            if case.status == "runnable" and case.name in results:
                per_op[op]["failed" if results[case.name] else "passed"] += 1
            elif case.status in ("excluded", "unsupported dtype"):
                per_op[op][case.status] += 1
    claimed = claimed_ops(cases)
    width = max([len(op) for op in per_op] + [7])
    print(f"{'op type':<{width}}  passed  failed  excluded  unsupported dtype", file=out)
    for op in sorted(per_op):
        c = per_op[op]
        print(f"{op:<{width}}  {c['passed']:>6}  {c['failed']:>6}  {c['excluded']:>8}  {c['unsupported dtype']:>17}",
              file=out)
    status = Counter(case.status for case in cases)
    ran = [case for case in cases if case.status == "runnable" and case.name in results]
    failed = [case for case in ran if results[case.name]]
    print(file=out)
    print(f"cases in the suite: {len(cases)}", file=out)
    print(f"runnable: {len(ran)}  passed: {len(ran) - len(failed)}  failed: {len(failed)}", file=out)
    print(f"excluded: {status['excluded']}  unsupported dtype: {status['unsupported dtype']}  "
          f"need ops cgtools lacks: {status['unsupported op']}", file=out)
    print(f"claimed op types: {len(claimed)}", file=out)
    print(single_node_summary(cases, results), file=out)
    if EXCLUDED:
        print("excluded op types: " + "; ".join(f"{op} ({why})" for op, why in sorted(EXCLUDED.items())), file=out)
    if failed:
        print("\nfailures, by op:", file=out)
        groups: dict[str, list[Case]] = defaultdict(list)
        for case in failed:
            groups[primary_op(case)].append(case)
        for op in sorted(groups):
            print(f"  {op} ({len(groups[op])})", file=out)
            for case in groups[op]:
                print(f"    {case.name}: {results[case.name]}", file=out)
    return len(failed)


def single_node_summary(cases: list[Case], results: dict[str, str | None]) -> str:
    """The suite's own measure: its single-node cases (not the `_expanded` ones) that pass, and the op types all
    of whose single-node cases pass; a case not run (an op or a dtype cgtools lacks) counts as not passing."""
    by_op: dict[str, list[bool]] = defaultdict(list)
    for case in cases:
        op = primary_op(case)
        if "_expanded" not in case.name and "+" not in op:
            by_op[op].append(case.status == "runnable" and case.name in results and not results[case.name])
    passed = sum(sum(oks) for oks in by_op.values())
    complete = sum(all(oks) for oks in by_op.values())
    return (f"single-node cases: {passed} of {sum(map(len, by_op.values()))} pass; op types with every "
            f"single-node case passing: {complete} of {len(by_op)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cgtools.onnx.conformance",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="the suite's folder (default: %(default)s)", default=None)
    parser.add_argument("--op", action="append", default=[], help="only cases using this op type (repeatable)")
    parser.add_argument("-k", dest="substring", default="", help="only cases whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="name every case run, with its result")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("error: the conformance suite needs the onnx package: pip install 'cgtools[onnx]'", file=sys.stderr)
        return 1
    folder = args.cache or default_cache()
    if not (folder / COMPLETE).is_file():
        print(f"generating the ONNX node test suite into {folder} …", file=sys.stderr)
    cases = discover(ensure_suite(folder))
    if args.op:
        cases = [c for c in cases if set(args.op) & set(c.ops)]
    if args.substring:
        cases = [c for c in cases if args.substring in c.name]
    results = {}
    for case in cases:
        if case.status == "runnable":
            results[case.name] = run_case(case)
            if args.verbose:
                print(f"{case.name}: {results[case.name] or 'ok'}")
    return 1 if report(cases, results) else 0


if __name__ == "__main__":
    sys.exit(main())
