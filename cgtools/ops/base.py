"""The op API: one class per op, `forward(ctx, *inputs, **attrs)` beside `backward(ctx, *grads)`.

An op's signature is its contract: positional parameters after `ctx` are its inputs (a default of None
makes one optional, `*inputs` makes them variadic); keyword-only parameters are its attributes, typed by
their annotations, defaulted by their defaults; an attribute with a fixed set of values is annotated
`Literal["a", "b"]`. The registry reads that once, so graphs are checked against it at load and the
interpreter never changes when an op is added.

Older ONNX opsets gave some inputs as attributes (ReduceSum's axes before opset 13, …). An op declares those
in `attribute_forms` and keeps one signature: `bound_forward` feeds such an attribute to its input.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, get_args, get_origin

import numpy as np

from cgtools.errors import CgError, did_you_mean
from cgtools.values import decode, in_float32, is_float


class Context(list):
    """What forward keeps for backward: a list, as in the lecture (`ctx.append(y)`, `ctx[-1]`).

    `needs_grad[i]` tells backward whether input i wants a gradient, so costly unused ones can be skipped.
    """

    __slots__ = ("needs_grad",)

    def save(self, *arrays):
        self.extend(arrays)

    @property
    def saved(self) -> tuple:
        return tuple(self)


class Lazy:
    """An optional output computed only when a node declares it: the interpreter converts each declared
    output with np.asarray and never touches the others."""

    def __init__(self, make):
        self.make = make

    def __array__(self, dtype=None, copy=None):
        return self.make() if dtype is None else self.make().astype(dtype)


class Operation:
    """Base class of every op. Subclasses define static `forward` and `backward`."""

    op_type: str = ""
    spec: OpSpec
    symbol: str = ""  # how diagrams draw it ("×", "σ"); the op type when not set
    infix: bool = False  # drawn between its two operands: "3 × ·"
    # attribute an older opset gave in place of an input -> (that input, the attribute's kind)
    attribute_forms: dict[str, tuple[str, str]] = {}
    # the outputs forward makes, in order: the first always, the others (optional, as ONNX's are) when a node
    # lists them; one name ending in "…" stands for any number, at least one (Split's parts)
    outputs: tuple[str, ...] = ("Y",)
    # False where backward passes nothing (or zeros) back although an output may be a float: a random draw, a
    # bit pattern, a count; `cgtools ops` says "no gradient" for these and for ops without a backward
    gradient: bool = True
    # the local derivative ∂Y/∂input per input, as diagrams write the chain rule: a formula over the node's
    # tensors, "{b}" the name of the tensor given as input b, "{Y}" the output's, "{alpha}" an attribute's
    # value; the last one serves the rest of variadic inputs. A formula holding "{up}" is the whole ∂L/∂input
    # with "{up}" standing for ∂L/∂Y (MatMul's transposes). None for an input without a gradient; no formulas
    # at all (local_gradients None) and the op must be listed in WITHOUT_FORMULA
    local_gradients: tuple[str | None, ...] | None = None

    @staticmethod
    def forward(ctx, *inputs, **attrs):
        raise NotImplementedError

    @classmethod
    def local_gradient(cls, slot: int, terms: dict[str, str], constants: dict[str, float]) -> str | None:
        """The formula of input `slot` filled in with `terms` (names and attribute values as written); an op
        whose formula is simpler for a constant input (`constants`, by input name) overrides this."""
        if not cls.local_gradients:
            return None
        template = cls.local_gradients[min(slot, len(cls.local_gradients) - 1)]
        return None if template is None else template.format_map(terms)

    @staticmethod
    def backward(ctx, *grads):
        raise CgError("this op has no gradient")


class NoGradient(Operation):
    """An op whose outputs, floats or not, carry no gradient back (a random draw, an optimizer's step): backward
    passes nothing, as PyTorch stops at a non-differentiable path."""

    gradient = False

    @staticmethod
    def backward(ctx, *grads):
        return (None,) * len(ctx.needs_grad)


class Subgraph:
    """The annotation of a graph attribute (If's branches, Loop's body): a Graph once loaded, a graph document
    in JSON. The body's `outer` inputs are tensors of the enclosing graph, which the node lists as extra inputs."""


ATTR_KINDS = {Subgraph: "graph", int: "int", float: "float", str: "str", list[int]: "ints", list[float]: "floats",
              list[str]: "strings", np.ndarray: "tensor"}


@dataclass(frozen=True)
class OpSpec:
    """What an op's forward signature says: its inputs, its attributes and their defaults."""

    inputs: tuple[str, ...]
    required: int
    variadic: bool
    attrs: dict[str, tuple[str, object]] = field(default_factory=dict)  # name -> (kind, default)
    choices: dict[str, tuple] = field(default_factory=dict)  # name -> allowed values, for the "enum" kind
    forms: dict[str, str] = field(default_factory=dict)  # attribute form -> the input it feeds
    outputs: tuple[str, ...] = ("Y",)  # Operation.outputs

    @property
    def arity(self) -> str:
        if self.variadic:
            return f"at least {max(self.required, 1)}"
        if self.required == len(self.inputs):
            return str(self.required)
        return f"{self.required} to {len(self.inputs)}"

    @property
    def most_outputs(self) -> float:
        """How many outputs a node may list: the op's, or any number for variadic outputs."""
        return math.inf if self.outputs[-1].endswith("…") else len(self.outputs)

    @property
    def signature(self) -> str:
        """As `cgtools ops` shows it: "x, [axes]; keepdims=1, mode='constant' (or 'reflect', 'edge')"."""
        inputs = [name if k < self.required else f"[{name}]" for k, name in enumerate(self.inputs)]
        if self.variadic:
            inputs[-1] = self.inputs[-1] + "…"
        attrs = []
        for name, (_, default) in self.attrs.items():
            text = name if default is REQUIRED else f"{name}={default!r}"
            if name in self.forms:  # "axes as an attribute", "value for constant_value", as older opsets gave them
                fed = self.forms[name]
                text = f"{name} {'as an attribute' if fed == name else 'for ' + fed} (older opsets)"
            others = ", ".join(repr(v) for v in self.choices.get(name, ()) if v != default)
            if others:
                text += f" ({'one of' if default is REQUIRED else 'or'} {others})"
            attrs.append(text)
        return ", ".join(inputs) + ("; " + ", ".join(attrs) if attrs else "")


REQUIRED = object()  # default of an attribute the graph must give
REGISTRY: dict[str, type[Operation]] = {}


def _spec_of(forward, attribute_forms: dict, outputs: tuple[str, ...]) -> OpSpec:
    params = list(inspect.signature(forward, eval_str=True).parameters.values())[1:]  # drop ctx
    inputs, required, variadic, attrs, choices = [], 0, False, {}, {}
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            variadic = True
            inputs.append(p.name)
        elif p.kind is p.KEYWORD_ONLY:
            default = REQUIRED if p.default is p.empty else p.default
            if get_origin(p.annotation) is Literal:
                choices[p.name] = get_args(p.annotation)
                if not all(isinstance(v, str) for v in choices[p.name]) or default not in (REQUIRED, *choices[p.name]):
                    raise TypeError(f"attribute {p.name!r}: a Literal of strings, the default among them")
            kind = "enum" if p.name in choices else ATTR_KINDS.get(p.annotation)
            if kind is None:
                raise TypeError(f"attribute {p.name!r} needs an annotation among int, float, str, list[...], Literal")
            attrs[p.name] = (kind, default)
        elif p.kind is not p.VAR_KEYWORD:
            inputs.append(p.name)
            required += p.default is p.empty
    for name, (fed, kind) in attribute_forms.items():
        if fed not in inputs[required:] or kind not in FORM_DTYPES:
            raise TypeError(f"attribute form {name!r}: an optional input's name, and 'int', 'ints' or 'float'")
        attrs[name] = (kind, None)
    forms = {name: fed for name, (fed, _) in attribute_forms.items()}
    return OpSpec(tuple(inputs), required, variadic, attrs, choices, forms, tuple(outputs))


def register_op(op_type: str):
    """Class decorator: make `cls` the op run for nodes whose "op" is `op_type`."""

    def register(cls):
        cls.op_type = op_type
        cls.spec = _spec_of(cls.forward, cls.attribute_forms, cls.outputs)
        if "symbol" not in vars(cls):
            cls.symbol = op_type
        REGISTRY[op_type] = cls
        return cls

    return register


# Built-in ops with a gradient but no formula for their local derivative: a diagram's chain rule says
# "local gradient" for them. Every other built-in op with a gradient states `local_gradients` (a test enforces it).
WITHOUT_FORMULA = frozenset({
    "AffineGrid", "Attention", "AveragePool", "BatchNormalization", "CausalConvWithState", "CenterCropPad",
    "Col2Im", "Compress", "ConcatFromSequence", "ConvTranspose", "CumProd", "CumSum", "DFT", "DeformConv",
    "DepthToSpace", "DequantizeLinear", "Det", "Dropout", "Einsum", "GRU", "GatherElements", "GatherND", "Gelu",
    "GlobalMaxPool", "GridSample", "GroupNormalization", "Hardmax", "If", "InstanceNormalization", "LRN",
    "LSTM", "LayerNormalization", "LinearAttention", "Loop", "LpNormalization", "LpPool", "MaxPool",
    "MaxUnpool", "MeanVarianceNormalization", "Mish", "Mod", "OneHot", "Optional", "OptionalGetElement", "Pad",
    "RMSNormalization", "RNN", "Range", "Resize", "ReverseSequence", "RoiAlign", "RotaryEmbedding", "STFT",
    "Scan", "Scatter", "ScatterElements", "ScatterND", "SequenceAt", "SequenceConstruct", "SequenceErase",
    "SequenceInsert", "SequenceMap", "SpaceToDepth", "Split", "SplitToSequence", "SwiGLU", "Swish",
    "TensorScatter", "Tile", "TopK", "Trilu", "Upsample",
})


def get_op(op_type: str) -> type[Operation]:
    try:
        return REGISTRY[op_type]
    except KeyError:
        raise CgError(f"unknown op {op_type!r}{did_you_mean(op_type, REGISTRY)}; "
                      "`cgtools ops` lists the ops") from None


def has_gradient(cls: type[Operation]) -> bool:
    """Whether the op passes a gradient back to some input: it has a backward and does not say it passes none."""
    return cls.gradient and cls.backward is not Operation.backward


def summary(cls: type[Operation]) -> str:
    """The first line of the op's docstring."""
    return (inspect.getdoc(cls) or "").partition("\n")[0]


def _attr_ok(kind: str, value) -> bool:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return number(value)
    if kind in ("str", "enum"):
        return isinstance(value, str)
    if kind == "graph":
        return isinstance(value, dict) or hasattr(value, "nodes") and hasattr(value, "outer")
    if kind == "tensor":
        return isinstance(value, (dict, np.ndarray)) or number(value) or isinstance(value, list)
    if not isinstance(value, list):
        return False
    item = {"ints": lambda v: _attr_ok("int", v), "floats": number, "strings": lambda v: isinstance(v, str)}
    return all(item[kind](v) for v in value)


KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "ints": "a list of integers",
              "floats": "a list of numbers", "strings": "a list of strings",
              "tensor": "an array {dtype, shape, data} or a number",
              "graph": "a graph document {cgtools, nodes, outputs, …}"}


def kind_words(spec: OpSpec, name: str) -> str:
    """What attribute `name` must be, in words: "a string", or for an enum "one of 'a', 'b'"."""
    if name in spec.choices:
        return "one of " + ", ".join(map(repr, spec.choices[name]))
    return KIND_WORDS[spec.attrs[name][0]]


def check_attrs(cls: type[Operation], attrs: dict) -> dict:
    """The attributes a node gives, checked against the op's spec (numbers made float where floats are due).

    Raises CgError naming the attribute (as `attrs.NAME`) when one is unknown, missing, mistyped or (for an
    enum) none of the allowed values.
    """
    spec = cls.spec
    for name, value in attrs.items():
        if name not in spec.attrs:
            known = ", ".join(spec.attrs) or "none"
            raise CgError(f"{cls.op_type} has no attribute {name!r}{did_you_mean(name, spec.attrs)} "
                          f"(its attributes: {known})", where=f"attrs.{name}")
        if not _attr_ok(spec.attrs[name][0], value) or (name in spec.choices and value not in spec.choices[name]):
            raise CgError(f"expected {kind_words(spec, name)}, found {value!r}", where=f"attrs.{name}")
    for name, (_, default) in spec.attrs.items():
        if default is REQUIRED and name not in attrs:
            raise CgError(f"{cls.op_type} needs attribute {name!r} ({kind_words(spec, name)})", where="attrs")
    return {name: _normalised(spec.attrs[name][0], value) for name, value in attrs.items()}


def _normalised(kind: str, value):
    if kind == "float":
        return float(value)
    if kind == "tensor" and not isinstance(value, np.ndarray):
        return decode(value)
    return value


def ints_of(tensor) -> list[int]:
    """The integers an integer tensor holds (axes, pads, sizes); none for an absent optional input."""
    return [] if tensor is None else [int(v) for v in np.asarray(tensor).reshape(-1).tolist()]  # tolist: fast


def one_float_type(**arrays) -> None:
    """Inputs that share ONNX's float type T (a layer's data, weights and states): the first given must be a
    float, the others of its dtype; absent optional inputs (None) are skipped."""
    given = [(name, a) for name, a in arrays.items() if a is not None]
    first, dtype = given[0][0], given[0][1].dtype
    if not is_float(dtype):
        raise CgError(f"expected {first} of a float type, found {dtype}")
    for name, a in given[1:]:
        if a.dtype != dtype:
            raise CgError(f"expected {name} of {first}'s type {dtype}, found {a.dtype}")


FORM_DTYPES = {"int": np.int64, "ints": np.int64, "float": np.float64}


def bound_forward(cls: type[Operation], attrs: dict):
    """The op's forward with a node's (checked) attributes bound; an attribute form of an input is bound to
    that input, as the array the input would have been."""
    forms = cls.attribute_forms
    if forms and not forms.keys().isdisjoint(attrs):
        attrs = {**{k: v for k, v in attrs.items() if k not in forms},
                 **{forms[k][0]: np.asarray(v, FORM_DTYPES[forms[k][1]]) for k, v in attrs.items() if k in forms}}
    forward = partial(cls.forward, **attrs) if attrs else cls.forward
    return forward if getattr(cls, "keeps_dtypes", False) else in_float32(forward)
