"""Graphs from expressions: `c = a*x; d = c + b; e = d**2`, or just `(a*x + b)**2`.

The text is parsed with Python's `ast` and never run: only numbers, names, + − * / ** @, unary minus and
calls of the functions in FUNCTIONS are accepted; anything else (attribute access, lambdas, subscripts,
strings, imports…) is refused with the place it stands. Assignments name intermediate tensors, so the
diagram shows the lecture's c, d, e; other names are leaves: inputs, or params when listed as such.
"""

from __future__ import annotations

import ast
import math

from cgtools.errors import CgError, did_you_mean

# name in an expression -> (op type, attributes it takes by default)
FUNCTIONS: dict[str, tuple[str, dict]] = {
    "relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "exp": ("Exp", {}),
    "log": ("Log", {}), "sqrt": ("Sqrt", {}), "abs": ("Abs", {}), "leaky_relu": ("LeakyRelu", {}),
    "softmax": ("Softmax", {}), "log_softmax": ("LogSoftmax", {}), "matmul": ("MatMul", {}),
    "sum": ("ReduceSum", {"keepdims": 0}), "mean": ("ReduceMean", {"keepdims": 0}),
    "maximum": ("Max", {}), "minimum": ("Min", {}), "transpose": ("Transpose", {}),
    "mse": ("MSELoss", {}), "cross_entropy": ("SoftmaxCrossEntropyLoss", {}), "identity": ("Identity", {}),
}
OPERATORS = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow",
             ast.MatMult: "MatMul"}
MAX_LENGTH = 20_000  # characters; a graph, not a program
MAX_EXPONENT = 1_000  # |p| of a literal exponent
MAX_WHOLE = 2**63 - 1  # whole numbers become int64 attributes (axis=…); 1e30 still writes a large constant


class Builder:
    """Walks the parsed statements and writes the graph's nodes, leaves and constants."""

    def __init__(self, source: str, taken: set[str]):
        self.source, self.taken = source, taken  # taken: every name the text uses, kept clear of t1, t2…
        self.nodes: list[dict] = []
        self.made: set[str] = set()  # tensors computed by nodes
        self.leaves: list[str] = []  # names read before any assignment, in order of first use
        self.constants: dict[str, float] = {}
        self.counter = 0

    def fail(self, node: ast.AST, message: str):
        col = getattr(node, "col_offset", 0) + 1
        raise CgError(f"{message} (line {getattr(node, 'lineno', 1)}, column {col})", where="expression")

    def fresh(self, taken: set[str]) -> str:
        while True:
            self.counter += 1
            name = f"t{self.counter}"
            if name not in taken:
                return name

    def emit(self, op: str, inputs: list[str], attrs: dict, target: str | None) -> str:
        """A node computing `target` (or a fresh name, given after its inputs', so t1 comes first)."""
        out = target or self.fresh(self.taken)
        node = {"op": op, "inputs": inputs, "outputs": [out]}
        if attrs:
            node["attrs"] = attrs
        self.nodes.append(node)
        self.made.add(out)
        return out

    def constant(self, node: ast.AST, value) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, f"expected a number, found {value!r}")
        name = repr(float(value)).removesuffix(".0")  # "2", "0.5": constants are named by their value
        self.constants[name] = float(value)
        return name

    def tensor(self, node: ast.AST, target: str | None = None) -> str:
        """The tensor `node` computes, named `target` when it is the whole right-hand side."""
        if isinstance(node, ast.Constant):
            name = self.constant(node, node.value)
            return self.emit("Identity", [name], {}, target) if target else name
        if isinstance(node, ast.Name):
            if node.id not in self.made and node.id not in self.leaves:
                self.leaves.append(node.id)
            return self.emit("Identity", [node.id], {}, target) if target else node.id
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.tensor(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.emit("Identity", [operand], {}, target) if target else operand
            return self.emit("Neg", [operand], {}, target)
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            if isinstance(node.op, ast.Pow):
                self.check_exponent(node.right)
            left, right = self.tensor(node.left), self.tensor(node.right)
            return self.emit(OPERATORS[type(node.op)], [left, right], {}, target)
        if isinstance(node, ast.Call):
            return self.call(node, target)
        self.fail(node, f"{describe(node)} is not allowed in an expression; expected numbers, names, "
                        f"+ - * / ** @ and calls of: {', '.join(sorted(FUNCTIONS))}")

    def literal(self, node: ast.AST, name: str):
        """An attribute's value: a number, a string, or a list of numbers."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)) and all(_number(item) is not None for item in node.elts):
            return [_number(item) for item in node.elts]
        if _number(node) is None:
            self.fail(node, f"attribute {name!r} must be a number, a string or a list of numbers")
        return _number(node)

    def check_numbers(self, tree: ast.AST):
        """Every number a float64 (or, if whole, an int64) holds: 1e999 would be read as infinity."""
        for node in ast.walk(tree):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, float) and not math.isfinite(value) or \
                    isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WHOLE:
                text = ast.get_source_segment(self.source.strip(), node) or repr(value)
                text = text if len(text) <= 40 else text[:39] + "…"
                self.fail(node, f"the number {text} is out of range: numbers are float64 (at most about 1.8e308) "
                                f"and whole numbers int64 (at most {MAX_WHOLE:,})")

    def check_exponent(self, node: ast.AST):
        literal = node.operand if isinstance(node, ast.UnaryOp) else node
        if isinstance(literal, ast.Constant) and isinstance(literal.value, (int, float)):
            if abs(literal.value) > MAX_EXPONENT:
                self.fail(node, f"exponent {literal.value!r} is too large (at most {MAX_EXPONENT})")
        elif not any(isinstance(n, ast.Name) for n in ast.walk(node)):
            self.fail(node, "an exponent made of numbers only must be written as one number")

    def call(self, node: ast.Call, target: str | None) -> str:
        if not isinstance(node.func, ast.Name):
            self.fail(node, f"{describe(node.func)} cannot be called; expected one of: {', '.join(sorted(FUNCTIONS))}")
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(node, f"unknown function {name!r}{did_you_mean(name, FUNCTIONS)}; the functions are: "
                            f"{', '.join(sorted(FUNCTIONS))}")
        op, attrs = FUNCTIONS[name]
        attrs = dict(attrs)
        for keyword in node.keywords:
            if keyword.arg is None:
                self.fail(node, "** arguments are not allowed")
            value = self.literal(keyword.value, keyword.arg)
            if keyword.arg == "axis" and op.startswith("Reduce"):  # sum(x, axis=0): ONNX's reductions take axes
                attrs["axes"] = value if isinstance(value, list) else [value]
            else:
                attrs[keyword.arg] = value
        if name in ("maximum", "minimum") and len(node.args) < 2:
            self.fail(node, f"{name} takes two or more arguments")
        args = [self.tensor(arg) for arg in node.args]
        return self.emit(op, args, attrs, target)


def _number(node: ast.AST):
    """The value of a number literal, minus sign included; None for anything else."""
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    literal = node.operand if negative else node
    if isinstance(literal, ast.Constant) and isinstance(literal.value, (int, float)) \
            and not isinstance(literal.value, bool):
        return -literal.value if negative else literal.value
    return None


def describe(node: ast.AST) -> str:
    return {ast.Attribute: "attribute access", ast.Lambda: "a lambda", ast.Subscript: "indexing",
            ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else",
            ast.JoinedStr: "an f-string", ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict",
            ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator", ast.Starred: "a starred argument",
            ast.NamedExpr: "an assignment expression", ast.Await: "await"}.get(type(node), type(node).__name__)


def parse(source: str, *, values: dict | None = None, params=(), name: str = "expression") -> dict:
    """The graph (as a document of the format) of `source`. `values` give leaves their values; leaves named in
    `params` are params (trainable), the others inputs. The last statement's value is the output."""
    values, params = values or {}, set(params)
    if len(source) > MAX_LENGTH:
        raise CgError(f"expected at most {MAX_LENGTH:,} characters, found {len(source):,}", where="expression")
    try:
        return _parse(source, values, params, name)
    except (RecursionError, MemoryError):  # Python's own parser and our walk both recurse on nesting
        raise CgError("expected an expression nested at most a few hundred levels deep; split it into named "
                      "steps (c = …; d = …)", where="expression") from None


def _parse(source: str, values: dict, params: set, name: str) -> dict:
    try:
        tree = ast.parse(source.strip(), mode="exec")
    except SyntaxError as e:
        if "integer string conversion" in e.msg:  # Python refuses whole numbers past 4,300 digits
            raise CgError("a whole number of more than 4,300 digits; numbers are float64 (at most about 1.8e308)",
                          where="expression") from None
        raise CgError(f"invalid syntax (line {e.lineno}, column {e.offset}): {e.msg}", where="expression") from None
    if not tree.body:
        raise CgError("expected an expression, found nothing", where="expression")
    builder = Builder(source, {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    builder.check_numbers(tree)
    output = None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0],
                                                                                              ast.Name):
            target = statement.targets[0].id
            if target in builder.made or target in builder.leaves:
                builder.fail(statement, f"{target!r} is already defined; give each tensor its own name")
            output = builder.tensor(statement.value, target)
        elif isinstance(statement, ast.Expr) and statement is tree.body[-1]:  # the lecture's f(x; a, b)
            output = builder.tensor(statement.value, None if "f" in builder.taken | builder.made else "f")
        else:
            builder.fail(statement, f"{describe(statement)} is not allowed; expected `name = expression` "
                                    "statements, the last of which may be a bare expression")
    if output in builder.leaves or output in builder.constants:
        output = builder.emit("Identity", [output], {}, None)
    unknown = [n for n in list(values) + list(params) if n not in builder.leaves]
    if unknown:
        raise CgError(f"{unknown[0]!r} is not a leaf of the expression{did_you_mean(unknown[0], builder.leaves)}; "
                      f"its leaves are: {', '.join(builder.leaves) or 'none'}", where="--set/--param")

    def leaf(name):
        return {"name": name, **({"value": values[name]} if name in values else {})}

    doc = {"cgtools": "1.0", "name": name, "doc": source.strip()}
    doc["inputs"] = [leaf(n) for n in builder.leaves if n not in params]
    doc["params"] = [leaf(n) for n in builder.leaves if n in params]
    doc["constants"] = [{"name": n, "value": v} for n, v in builder.constants.items()]
    doc["nodes"] = builder.nodes
    doc["outputs"] = [output]
    return {k: v for k, v in doc.items() if v != []}
