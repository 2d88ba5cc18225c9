"""The safe expression language: strings like ``u_t + u*u_x - nu*u_xx`` become functions of named values.

A string is parsed with :mod:`ast` and checked node by node against a whitelist
(numbers, names, ``+ - * / **``, unary minus and plus, calls to a fixed table of
math functions, and ``d(field, coord, ...)``). The checked tree is turned into a
tree of small Python closures; nothing is ever passed to ``eval`` or ``exec``.

One compiled expression serves every back end: the closures compute with whatever the
lookup returns, torch tensors (residuals), float64 numpy arrays (references), Python
floats, or jet values (Taylor arithmetic, for output transforms). The operators work on
all of them; each function of :data:`FUNCTIONS` is defined once with an implementation
per back end and applies the one of its arguments' type.
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch

from lightning_pinn.errors import ConfigError

Derivative = tuple[str, tuple[str, ...]]
"""A partial derivative: field name and the sorted coordinate names it is taken along."""


class ExpressionError(ConfigError):
    """A config expression that cannot be compiled; the message names the config key."""


class Function(NamedTuple):
    """One function of the language: its arity and its implementation per back end.

    Calling it applies the back end of the arguments' type: a jet among them takes its Taylor
    rule (``value.function(jet)``); else a tensor makes it torch (the other arguments become
    tensors of its dtype and device); else an array makes it numpy; else Python floats take ``math``.

    Attributes:
        arity: number of arguments.
        torch: on tensors (residuals).
        numpy: on float64 arrays (references).
        math: on Python floats (constant folding, scalar lookups).
        jet: the name of its Taylor rule, which jet values look up in their own catalogue.
    """

    arity: int
    torch: Callable
    numpy: Callable
    math: Callable
    jet: str

    def __call__(self, *args: Any) -> Any:
        if len(args) == 1:
            (value,) = args
            if isinstance(value, torch.Tensor):
                return self.torch(value)
            if isinstance(value, np.ndarray):
                return self.numpy(value)
            return value.function(self.jet) if _is_jet(value) else self.math(value)
        for value in args:
            if _is_jet(value):
                return value.function(self.jet)
        tensor = next((value for value in args if isinstance(value, torch.Tensor)), None)
        if tensor is not None:
            return self.torch(*(torch.as_tensor(a, dtype=tensor.dtype, device=tensor.device) for a in args))
        if any(isinstance(value, np.ndarray) for value in args):
            return self.numpy(*args)
        return self.math(*args)


def _is_jet(value: Any) -> bool:
    """A jet value (``derivatives.jet_algebra.JetValue``): functions are applied by its Taylor rules."""
    return hasattr(value, "function") and not isinstance(value, (torch.Tensor, np.ndarray))


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def _sign(value: float) -> float:
    return float((value > 0) - (value < 0))


def _erf(values: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # scipy is loaded when a reference first needs it

    return erf(values)


def _expit(values: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(values)


def _unary(torch_fn: Callable, numpy_fn: Callable, math_fn: Callable, jet: str) -> Function:
    return Function(1, torch_fn, numpy_fn, math_fn, jet)


FUNCTIONS: dict[str, Function] = {
    "sin": _unary(torch.sin, np.sin, math.sin, "sin"),
    "cos": _unary(torch.cos, np.cos, math.cos, "cos"),
    "tan": _unary(torch.tan, np.tan, math.tan, "tan"),
    "asin": _unary(torch.asin, np.arcsin, math.asin, "asin"),
    "acos": _unary(torch.acos, np.arccos, math.acos, "acos"),
    "atan": _unary(torch.atan, np.arctan, math.atan, "atan"),
    "sinh": _unary(torch.sinh, np.sinh, math.sinh, "sinh"),
    "cosh": _unary(torch.cosh, np.cosh, math.cosh, "cosh"),
    "tanh": _unary(torch.tanh, np.tanh, math.tanh, "tanh"),
    "exp": _unary(torch.exp, np.exp, math.exp, "exp"),
    "log": _unary(torch.log, np.log, math.log, "log"),
    "sqrt": _unary(torch.sqrt, np.sqrt, math.sqrt, "sqrt"),
    "abs": _unary(torch.abs, np.abs, abs, "abs"),
    "sign": _unary(torch.sign, np.sign, _sign, "sign"),
    "erf": _unary(torch.erf, _erf, math.erf, "erf"),
    "sigmoid": _unary(torch.sigmoid, _expit, _sigmoid, "sigmoid"),
    "atan2": Function(2, torch.atan2, np.arctan2, math.atan2, "atan2"),
    "min": Function(2, torch.minimum, np.minimum, min, "min"),
    "max": Function(2, torch.maximum, np.maximum, max, "max"),
}
"""The functions an expression may call: name -> :class:`Function`, defined once for every back end."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
"""Named constants every expression knows."""

_BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_UNARY_OPS: dict[type, Callable[[Any], Any]] = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}
_CHAINS: dict[type, frozenset[type]] = {
    ast.Add: frozenset({ast.Add, ast.Sub}), ast.Sub: frozenset({ast.Add, ast.Sub}),
    ast.Mult: frozenset({ast.Mult, ast.Div}), ast.Div: frozenset({ast.Mult, ast.Div}),
}
"""Operators of one precedence that associate to the left, compiled as one loop."""


def _constant(value: float) -> Callable[[Any], float]:
    return lambda lookup: value
_MAX_ORDER = 8

NORMAL = "<normal>"
"""The pseudo-coordinate of normal derivatives: ``u_n`` is ``(u, (NORMAL,))``, the derivative along the
outward unit normal, wherever no coordinate is named ``n``."""


@dataclass(frozen=True)
class Namespace:
    """The names an expression may use: coordinates, fields and parameters."""

    coords: tuple[str, ...]
    fields: tuple[str, ...]
    params: tuple[str, ...] = ()

    def describe(self) -> str:
        """A one-line list of the valid names, for error messages."""
        example = f"{self.fields[0]}_{self.coords[0]}" if self.fields and self.coords else "u_x"
        return (
            f"coordinates {list(self.coords)}, fields {list(self.fields)}, parameters {list(self.params)}, "
            f"constants {sorted(CONSTANTS)}, derivatives like {example} or d(field, coord, order), "
            f"functions {sorted(FUNCTIONS)}"
        )

    def parse_derivative_name(self, name: str) -> Derivative | None:
        """Split a compact derivative name (``u_xt``) into ``("u", ("t", "x"))``, or None.

        ``u_n`` is the outward normal derivative ``("u", (NORMAL,))`` unless a coordinate is named ``n``.
        """
        for cut in [i for i, ch in enumerate(name) if ch == "_"]:
            field, suffix = name[:cut], name[cut + 1 :]
            if field in self.fields and suffix == "n" and "n" not in self.coords:
                return field, (NORMAL,)
            if field in self.fields and suffix:
                if len(suffix) > _MAX_ORDER * max((len(c) for c in self.coords), default=1):
                    # too long for any allowed order; splitting it could take exponential time
                    if set(suffix) <= set("".join(self.coords)):
                        raise ExpressionError(f"derivative {name!r} has an order above the maximum {_MAX_ORDER}")
                    continue
                splits = _split_coords(suffix, self.coords)
                if len(splits) > 1:
                    raise ExpressionError(
                        f"derivative name {name!r} is ambiguous ({splits}); write it as d({field}, ...)"
                    )
                if splits:
                    return field, tuple(sorted(splits[0]))
        return None


def _split_coords(suffix: str, coords: Sequence[str]) -> list[tuple[str, ...]]:
    """All ways to write ``suffix`` as a concatenation of coordinate names."""
    if not suffix:
        return [()]
    found = []
    for coord in coords:
        if suffix.startswith(coord):
            found += [(coord, *rest) for rest in _split_coords(suffix[len(coord) :], coords)]
    return found


class Expression:
    """A compiled expression: call it with a name lookup to get its value.

    The value has the type of what the lookup returns: tensors give a tensor, float64 arrays an
    array, floats a float, jet values a jet value (a constant expression gives a float).

    Attributes:
        source: the text it was compiled from.
        key: the config key it came from, used in error messages.
        derivatives: the partial derivatives it needs, as ``(field, coords)`` pairs.
        names: the coordinate, field and parameter names it reads.
    """

    def __init__(self, source: str, key: str, fn: Callable, derivatives: set[Derivative], names: set[str]):
        self.source = source
        self.key = key
        self._fn = fn
        self.derivatives = frozenset(derivatives)
        self.names = frozenset(names)

    def __call__(self, lookup: Callable[[Any], Any]) -> Any:
        """Evaluate; ``lookup(name_or_derivative)`` returns the value of a name or a derivative."""
        return self._fn(lookup)

    def __repr__(self) -> str:
        return f"Expression({self.source!r}, key={self.key!r})"


def compile_expression(source: str, namespace: Namespace, key: str = "<expression>") -> Expression:
    """Compile ``source`` against ``namespace`` into an :class:`Expression`.

    Args:
        source: the expression text, e.g. ``"u_t + u*u_x - nu*u_xx"``.
        namespace: the coordinates, fields and parameters it may use.
        key: the config key of the expression, quoted in every error.

    Raises:
        ExpressionError: on a syntax error, anything outside the whitelist, or an
            unknown name; raised before anything is evaluated.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"{key}: expected an expression string but got {type(source).__name__} {source!r}")
    if not source.strip():
        raise ExpressionError(f"{key}: the expression is empty")
    source = source.strip()  # columns in messages count in the quoted, stripped source
    limit = sys.getrecursionlimit()
    try:
        # Python builds the tree of a sum of n terms n levels deep; a machine-written sum of thousands
        # of terms needs a recursion limit above the default 1000 while it is parsed and compiled
        sys.setrecursionlimit(max(limit, len(source) + 1000))
        tree = ast.parse(source, mode="eval")
        compiler = _Compiler(source, key, namespace)
        fn = compiler.build(tree.body)
    except SyntaxError as err:
        raise ExpressionError(f"{key}: cannot parse {source!r}: {err.msg} at column {err.offset}") from None
    except RecursionError:
        raise ExpressionError(f"{key}: the expression is nested too deeply to compile") from None
    finally:
        sys.setrecursionlimit(limit)
    return Expression(source, key, fn, compiler.derivatives, compiler.names)


class _Compiler:
    """Turns a whitelisted AST into closures, collecting the names and derivatives it needs."""

    def __init__(self, source: str, key: str, namespace: Namespace):
        self.source, self.key, self.ns = source, key, namespace
        self.derivatives: set[Derivative] = set()
        self.names: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        return ExpressionError(f"{self.key}: {message}{where} in {self.source!r}")

    def build(self, node: ast.AST) -> Callable:
        """The closure of ``node``; constant parts are evaluated once, here (see :meth:`compile`)."""
        return self.compile(node)[0]

    def compile(self, node: ast.AST) -> tuple[Callable, float | None]:
        """``(closure, value)``: ``value`` is the number a constant subtree folds to, else None.

        Chains of ``+ -`` and of ``* /`` are built as one loop each rather than a nested closure per
        operator, so a machine-written sum of thousands of terms neither recurses that deep when
        compiled nor when evaluated. A constant part that cannot be evaluated (``1/0``, ``2.0**10000``,
        ``log(-1)``) is an error now, naming the key, rather than at the first training step.
        """
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(node, f"only numbers are allowed as constants, not {node.value!r}")
            try:
                value = float(node.value)
            except OverflowError:
                raise self.fail(node, f"the number {node.value} is too large") from None
            return _constant(value), value
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return _constant(CONSTANTS[node.id]), CONSTANTS[node.id]
            return self.build_name(node), None
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return self.compile_chain(node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
            op = _UNARY_OPS[type(node.op)]
            operand, value = self.compile(node.operand)
            if value is not None:
                return self.fold(node, lambda: op(value))
            return (lambda lookup: op(operand(lookup))), None
        if isinstance(node, ast.Call):
            return self.build_call(node)
        raise self.fail(node, f"{_describe(node)} is not allowed; use numbers, names, + - * / **, and functions")

    def compile_chain(self, node: ast.BinOp) -> tuple[Callable, float | None]:
        """A left-nested run of operators of one precedence (``a - b + c``, ``a * b / c``), or a single ``**``."""
        group = _CHAINS.get(type(node.op))
        links: list[tuple[ast.BinOp, Callable]] = []
        head: ast.AST = node
        while group is not None and isinstance(head, ast.BinOp) and type(head.op) in group:
            links.append((head, _BINARY_OPS[type(head.op)]))
            head = head.left
        if group is None:  # **: right-associative and rarely chained long
            links, head = [(node, _BINARY_OPS[type(node.op)])], node.left
        links.reverse()
        first, value = self.compile(head)
        steps = []
        for link, op in links:
            fn, operand = self.compile(link.right)
            if value is not None and operand is not None:
                folded = value
                value = self.fold(link, lambda a=folded, b=operand, op=op: op(a, b))[1]
                first = _constant(value)
                continue
            if value is not None and steps == []:
                first = _constant(value)
            value = None
            steps.append((op, fn))
        if value is not None:
            return _constant(value), value
        if not steps:
            return first, None
        if len(steps) == 1:
            (op, fn), start = steps[0], first
            return (lambda lookup: op(start(lookup), fn(lookup))), None

        def chain(lookup: Callable[[Any], Any]) -> Any:
            result = first(lookup)
            for op, fn in steps:
                result = op(result, fn(lookup))
            return result

        return chain, None

    def fold(self, node: ast.AST, evaluate: Callable[[], Any]) -> tuple[Callable, float]:
        """Evaluate a constant part now; an ``ExpressionError`` naming it when that fails or gives no real number."""
        text = ast.get_source_segment(self.source, node) or self.source
        try:
            value = evaluate()
        except (ArithmeticError, ValueError) as err:
            reason = {ZeroDivisionError: "division by zero", OverflowError: "too large"}.get(type(err)) or str(err)
            raise self.fail(node, f"the constant {text!r} cannot be evaluated ({reason})") from None
        if isinstance(value, complex) or not math.isfinite(value):
            raise self.fail(node, f"the constant {text!r} is not a finite real number ({value})")
        return _constant(float(value)), float(value)

    def build_name(self, node: ast.Name) -> Callable:
        name = node.id
        if name in self.ns.coords or name in self.ns.fields or name in self.ns.params:
            self.names.add(name)
            return lambda lookup: lookup(name)
        try:
            derivative = self.ns.parse_derivative_name(name)
        except ExpressionError as err:
            raise self.fail(node, str(err)) from None
        if derivative is None:
            raise self.fail(node, f"unknown name {name!r}; valid names are {self.ns.describe()}")
        return self.use_derivative(node, derivative)

    def use_derivative(self, node: ast.AST, derivative: Derivative) -> Callable:
        if len(derivative[1]) > _MAX_ORDER:
            raise self.fail(node, f"derivative order {len(derivative[1])} exceeds the maximum {_MAX_ORDER}")
        self.derivatives.add(derivative)
        return lambda lookup: lookup(derivative)

    def build_call(self, node: ast.Call) -> tuple[Callable, float | None]:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, f"{_describe(node.func)} cannot be called; only {sorted(FUNCTIONS)} and d(...)")
        if node.keywords:
            raise self.fail(node, f"keyword arguments are not allowed in a call to {node.func.id}")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.fail(node, "starred arguments are not allowed")
        name = node.func.id
        if name == "d":
            return self.use_derivative(node, self.derivative_call(node)), None
        if name not in FUNCTIONS:
            raise self.fail(node, f"unknown function {name!r}; valid functions are {sorted(FUNCTIONS)} and d(...)")
        function = FUNCTIONS[name]
        arity = function.arity
        if len(node.args) != arity:
            raise self.fail(node, f"{name} takes {arity} argument(s) but got {len(node.args)}")
        compiled = [self.compile(arg) for arg in node.args]
        if all(value is not None for _, value in compiled):
            return self.fold(node, lambda: function.math(*(value for _, value in compiled)))
        args = [closure for closure, _ in compiled]
        if arity == 1:
            (arg,) = args
            return (lambda lookup: function(arg(lookup))), None
        return (lambda lookup: function(*(a(lookup) for a in args))), None

    def derivative_call(self, node: ast.Call) -> Derivative:
        """``d(u, x)``, ``d(u, x, 2)``, ``d(u, x, t)``, ``d(u, x, 2, t)``: field, then coords with counts."""
        usage = "write d(field, coord[, order], ...), e.g. d(u, x, 2) or d(u, x, t)"
        if len(node.args) < 2 or not isinstance(node.args[0], ast.Name):
            raise self.fail(node, f"malformed derivative; {usage}")
        field = node.args[0].id
        if field not in self.ns.fields:
            raise self.fail(node, f"d(...) differentiates a field, and {field!r} is not one of {list(self.ns.fields)}")
        coords: list[str] = []
        previous: ast.AST | None = None  # an order must follow a coordinate
        for arg in node.args[1:]:
            if isinstance(arg, ast.Name):
                if arg.id not in self.ns.coords:
                    raise self.fail(arg, f"unknown coordinate {arg.id!r} in d(...); coordinates are {list(self.ns.coords)}")
                coords.append(arg.id)
            elif (isinstance(arg, ast.Constant) and type(arg.value) is int and arg.value >= 1
                  and isinstance(previous, ast.Name)):
                if len(coords) + arg.value - 1 > _MAX_ORDER:
                    raise self.fail(node, f"derivative order {len(coords) + arg.value - 1} exceeds the maximum {_MAX_ORDER}")
                coords += [coords[-1]] * (arg.value - 1)
            else:
                raise self.fail(arg, f"malformed derivative argument; {usage}")
            previous = arg
        return field, tuple(sorted(coords))


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access", ast.Subscript: "subscripting", ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension", ast.JoinedStr: "an f-string", ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator", ast.IfExp: "a conditional expression", ast.NamedExpr: "an assignment",
        ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.Starred: "unpacking",
        ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    }
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the unary operator {type(node.op).__name__}"
    return kinds.get(type(node), type(node).__name__)
