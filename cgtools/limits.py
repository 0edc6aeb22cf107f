"""The limits on what cgtools reads, each a named constant with the reason for its number, and the checks that
apply them before numpy, Python's JSON reader or the schema's validator see the input: shapes in Python
integers, names and text free of what no file can hold, and a document's depth and literals, walked
iteratively. Documents (json_format), .npz files (files.read_npz), ONNX models (onnx.mapping) and dry runs
(checks) all check here."""

from __future__ import annotations

import json
import math
import re

from cgtools.errors import CgError, json_path

MAX_RANK = 32  # dimensions of one array: numpy 1.x's limit, more than any model uses
MAX_ELEMENTS = 2**28  # elements of one array: 1 GiB of float32, well past the largest embedding table of a model
# an interpreter in numpy can train; a larger tensor is a mistake or an attack, not a graph to look at
MAX_TOTAL_ELEMENTS = 2**29  # elements of all the arrays one graph or one archive gives: 2 GiB of float32, the
# weights of a 500M-parameter model (its run then needs several times that for values and gradients)
MAX_NAME_LENGTH = 1024  # characters of a tensor or node name: exporters' longest paths of module names are a few
# hundred; a name is drawn in every label that shows it and is an .npz member's name (at most 65,535 bytes)
MAX_TEXT_LENGTH = 100_000  # characters of any other text (docs, attributes): a tooltip, not a book
# What no text may hold: lone surrogates (a JSON "\ud800" escape with no pair: no encoding can write them, so
# saving or drawing would fail) and NUL (files, zip members, Graphviz and ONNX names end at it)
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")

MAX_NESTING = 40  # levels of lists and objects: a tensor of numpy's 32 dimensions inside a graph's entry
MAX_NUMBER_DIGITS = 1000  # characters of a number: past the 767 significant digits of the longest exact decimal
# of a float64, below the 4,300 digits at which Python refuses to convert an integer
MAX_DOCUMENT_BYTES = 2**28  # a graph file: Python holds each inline number in ~30 bytes, so 256 MiB of JSON
# already parses into gigabytes; arrays over 1,000 elements are saved into an .npz beside the graph anyway
NAME_FIELDS = ("name", "loss", "key", "file")  # fields holding a name (a file's too), as do the items of "inputs",
# "outputs" and "scope"


def checked_size(shape) -> int:
    """The element count of a declared shape (a list of Python ints, from a document or a header), checked
    before numpy sees it: numpy wraps or refuses [2**62, 4] and [0, 10**20] with its own errors."""
    dims = list(shape)
    if len(dims) > MAX_RANK or any(type(d) is not int or d < 0 for d in dims):
        raise CgError(f"expected a shape of at most {MAX_RANK} dimensions, each a whole number 0 or more, "
                      f"found {_short(dims)}")
    count = math.prod(d for d in dims if d)  # [0, 10**20] holds nothing, yet numpy cannot make it
    if count > MAX_ELEMENTS:
        raise CgError(f"expected a shape whose non-zero dimensions multiply to at most {MAX_ELEMENTS:,} (the "
                      f"elements of one tensor), found {_short(dims)}: {count:,}")
    return math.prod(dims)


def _short(dims) -> str:
    text = str(dims)
    return text if len(text) <= 80 else text[:77] + "…]"


def text_problem(text: str, limit: int = MAX_TEXT_LENGTH, what: str = "text") -> str | None:
    """Why `text` cannot be kept (and written back out), or None: too long, a lone surrogate or a NUL."""
    if len(text) > limit:
        return f"expected {what} of at most {limit:,} characters, found {len(text):,}"
    bad = _UNWRITABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\0":
        return f"found a NUL character in {what}; names and text may not hold NUL (files cannot store it)"
    return (f"found a lone surrogate \\u{ord(bad.group()):04x} in {what}; names and text must be valid Unicode "
            "(a JSON \\ud800-\\udfff escape needs its pair)")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a tensor or a node, or None."""
    return text_problem(name, MAX_NAME_LENGTH, "a name")


# ---- JSON documents --------------------------------------------------------------------------------------

class UnreadableNumber(str):
    """A number literal over MAX_NUMBER_DIGITS characters or beyond float64's range (1e999), kept as its text
    for check_document to place."""


def number_parser(convert):
    """json.loads' parse_int or parse_float: `convert`, or an UnreadableNumber."""
    def parse(text: str):
        if len(text) <= MAX_NUMBER_DIGITS:
            value = convert(text)
            if convert is not float or math.isfinite(value):  # "Infinity" is no literal: parse_constant reads it
                return value
        return UnreadableNumber(text)
    return parse


def parse_json(text: str):
    """JSON text read within the limits: each object's keys unique, number literals kept for check_document to
    refuse, nesting past Python's reader a CgError. The document still needs check_document."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=number_parser(int),
                          parse_float=number_parser(float))
    except json.JSONDecodeError as e:
        raise CgError(f"line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:  # Python's JSON reader recurses once per level
        raise CgError(f"lists or objects nested deeper than the JSON reader can follow; at most {MAX_NESTING} "
                      "levels are needed") from None


def checked_json(text: str):
    """parse_json(text), then check_document. First tried at the speed of Python's own reader, without a call
    per number and per object: kept when no run of digits is long enough for a literal past MAX_NUMBER_DIGITS or
    float64's range, every float is finite, no key is given twice (as many keys as `":` in the text) and
    _surely_fine finds nothing; else read again, number by number (a 100,000-node graph: 0.3 s against 0.8)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # the careful reading says what is wrong
        doc = None
    if doc is not None and LONG_DIGITS not in text.encode("utf-8", "replace").translate(_DIGITS_ONLY):
        keys = _surely_fine(doc)
        if keys is not None and keys == text.count('":') and not re.search(r'"\s+:', text):
            return doc
    doc = parse_json(text)
    check_document(doc)
    return doc


LONG_DIGITS = b"0" * 300  # a run of digits past which a literal may be too long, or beyond float64's range
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # bytes.translate: digits as 0, all else " "


def _unique_keys(pairs):
    """An object's fields as a dict, refusing a field given twice (JSON would silently keep the last)."""
    fields = dict(pairs)
    if len(fields) < len(pairs):  # only then look for the first repeat, to name it
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise CgError(f"the field {key!r} appears twice in one object; JSON would silently keep the last")
            seen.add(key)
    return fields


def check_document(doc) -> None:
    """Refuse a document nested deeper than MAX_NESTING levels, holding a number literal over MAX_NUMBER_DIGITS
    or a string no file can hold (text_problem) before anything recursive (the schema's validator,
    numpy) walks it; iterative, so any depth is safe here, and in the document's order, so the first problem
    in the file is the one reported."""
    if _surely_fine(doc) is not None:
        return
    stack = [(doc, ())]
    while stack:
        item, place = stack.pop()
        if isinstance(item, str):
            _check_string(item, place)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if len(place) > MAX_NESTING:
            raise CgError(f"expected at most {MAX_NESTING} levels of nested lists or objects, found more",
                          where=json_path(place[:3]) + " …")
        items = list(item.items() if isinstance(item, dict) else enumerate(item))
        for key, _ in items:
            if isinstance(key, str):
                _check_string(key, place, named=True)
        stack.extend((value, (*place, key)) for key, value in reversed(items) if isinstance(value, (dict, list, str)))


def _surely_fine(doc) -> int | None:
    """Whether check_document would find nothing, found quickly: level by level, places not kept, every string
    searched at once, a list of numbers summed at once. The document's count of keys when so; None when it may
    hold a problem, or a float that is not finite (checked_json reads such a document again). A 100,000-node
    graph takes 0.3 s here and 4 s in the walk that places a problem."""
    level, strings, depth, keys = [doc], [], 0, 0
    while level:
        deeper = []
        for item in level:
            if type(item) is dict:
                strings.extend(item)  # its keys
                keys += len(item)
                item = item.values()
            elif type(item) is not list:
                return None  # a document that is one number or string: the walk is as quick
            elif len(item) > 2 and set(map(type, item)) <= _NUMBERS:  # a tensor's numbers: no step per number
                if not _finite_sum(item):
                    return None
                continue
            for value in item:
                kind = type(value)
                if kind is str:
                    strings.append(value)
                elif kind is dict or kind is list:
                    deeper.append(value)
                elif kind is UnreadableNumber or kind is float and value - value != 0:  # inf - inf is NaN
                    return None
        level, depth = deeper, depth + 1
        if level and depth > MAX_NESTING:
            return None
    try:
        fine = max(map(len, strings), default=0) <= MAX_NAME_LENGTH and not _UNWRITABLE.search("".join(strings))
    except TypeError:  # a key that is no string (a dict given to load): the walk says where
        return None
    return keys if fine else None


_NUMBERS = frozenset({float, int})


def _finite_sum(numbers: list) -> bool:
    """Whether the numbers are all finite (False too when their sum passes float64's range: look closer)."""
    try:
        return math.isfinite(sum(numbers))
    except OverflowError:  # an integer past float64's range
        return False


def _check_string(text: str, place: tuple, named: bool = False) -> None:
    if isinstance(text, UnreadableNumber):
        found = f"one of {len(text):,}" if len(text) > MAX_NUMBER_DIGITS else f"{text}, beyond float64's ±1.8e308"
        raise CgError(f"expected a number of at most {MAX_NUMBER_DIGITS:,} characters within float64's range, "
                      f"found {found}", where=json_path(place) if place else None)
    field, parent = (place[-1] if place else None), (place[-2] if len(place) > 1 else None)
    named = named or field in NAME_FIELDS or parent in ("inputs", "outputs", "scope")
    problem = name_problem(text) if named else text_problem(text)
    if problem:
        raise CgError(problem, where=json_path(place) if place else None)
