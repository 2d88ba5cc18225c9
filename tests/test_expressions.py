"""The expression compiler: what it computes, what it reports, and what it refuses to run."""

from __future__ import annotations

import ast
import builtins
import math
import time

import numpy as np
import pytest
import torch

from lightning_pinn.problem import ExpressionError, Namespace, compile_expression
from lightning_pinn.problem.expressions import FUNCTIONS

NS = Namespace(coords=("x", "t"), fields=("u", "v"), params=("nu", "k"))
KEY = "equations.pde"

VALUES = {
    "x": 0.3, "t": 0.7, "u": 1.5, "v": -0.4, "nu": 0.01, "k": 2.0,
    ("u", ("x",)): 0.11, ("u", ("t",)): 0.22, ("u", ("x", "x")): 0.33, ("u", ("t", "x")): 0.44,
    ("u", ("t", "x", "x")): 0.55, ("v", ("x",)): 0.66, ("v", ("t", "t")): 0.77,
}


class Recorder:
    """A lookup that records what the expression asked for."""

    def __init__(self, values=VALUES):
        self.values, self.calls = values, []

    def __call__(self, name):
        self.calls.append(name)
        return self.values[name]


@pytest.fixture
def no_code_execution(monkeypatch):
    """eval/exec must never run, and compile() may only build syntax trees (as ast.parse does)."""
    real_compile = builtins.compile

    def guarded_compile(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, f"compile() was asked for code from {source!r}"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"eval/exec called with {args!r}")

    monkeypatch.setattr(builtins, "compile", guarded_compile)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("1 + 2*3", 7.0),
        ("7/2 - 1", 2.5),
        ("2**3**2", 512.0),  # right-associative, as in maths
        ("-x**2", -0.09),  # unary minus binds looser than **
        ("+x - -t", 1.0),
        ("1e-3*k", 0.002),
        ("(u + v) * (u - v)", 1.5**2 - 0.4**2),
        ("pi", math.pi),
        ("e", math.e),
        ("sin(pi*x)", math.sin(math.pi * 0.3)),
        ("exp(-k*t) * cos(x)", math.exp(-1.4) * math.cos(0.3)),
        ("u_t + u*u_x - nu*u_xx", 0.22 + 1.5 * 0.11 - 0.01 * 0.33),
        ("u_xt", 0.44),
        ("u_tx", 0.44),
        ("u_xxt + u_xtx + u_txx", 3 * 0.55),
        ("v_x + v_tt", 0.66 + 0.77),
        ("d(u, x)", 0.11),
        ("d(u, x, 2)", 0.33),
        ("d(u, x, t)", 0.44),
        ("d(u, t, x)", 0.44),
        ("d(u, x, 2, t)", 0.55),
        ("d(u, t, x, 2)", 0.55),
        ("d(u, x, 1, x, 1, t, 1)", 0.55),
        ("d(v, t, 2) - v_tt", 0.0),
        ("  u  ", 1.5),
    ],
)
def test_valid_expressions_evaluate_to_the_arithmetic_value(source, expected, no_code_execution):
    expr = compile_expression(source, NS, key=KEY)
    assert expr(Recorder()) == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert expr.source == source.strip() and expr.key == KEY


MATH = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
    "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
    "abs": abs, "sign": lambda a: math.copysign(1.0, a) if a else 0.0, "erf": math.erf,
    "sigmoid": lambda a: 1 / (1 + math.exp(-a)), "atan2": math.atan2, "min": min, "max": max,
}


def test_the_function_table_is_what_the_tests_know():
    assert set(FUNCTIONS) == set(MATH)


@pytest.mark.parametrize("name", sorted(MATH))
@pytest.mark.parametrize("argument", [0.3, -0.45])
def test_every_function_matches_math_on_floats_tensors_and_arrays(name, argument):
    arity = FUNCTIONS[name][0]
    source = f"{name}(x)" if arity == 1 else f"{name}(x, v)"
    x = abs(argument) if name in ("log", "sqrt") else argument
    expected = MATH[name](x) if arity == 1 else MATH[name](x, -0.4)
    expr = compile_expression(source, NS, key=KEY)
    assert expr({"x": x, "v": -0.4}.__getitem__) == pytest.approx(expected, rel=1e-15, abs=1e-15)
    tensors = {"x": torch.tensor([x, x], dtype=torch.float64), "v": torch.tensor([-0.4, -0.4], dtype=torch.float64)}
    value = expr(tensors.__getitem__)
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
    torch.testing.assert_close(value, torch.full((2,), float(expected), dtype=torch.float64), rtol=1e-15, atol=1e-15)
    arrays = {"x": np.array([x, x]), "v": np.array([-0.4, -0.4])}
    value = expr(arrays.__getitem__)
    assert isinstance(value, np.ndarray) and value.dtype == np.float64
    np.testing.assert_allclose(value, [expected, expected], rtol=1e-15, atol=1e-15)


def test_mixing_tensors_and_numbers_in_two_argument_functions():
    expr = compile_expression("max(u, 0) + min(1, v) + atan2(u, 1)", NS, key=KEY)
    u = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    v = torch.tensor([3.0, -2.0, 0.25], dtype=torch.float64)
    expected = torch.clamp(u, min=0) + torch.clamp(v, max=1) + torch.atan(u)
    torch.testing.assert_close(expr({"u": u, "v": v}.__getitem__), expected, rtol=1e-15, atol=1e-15)


def test_tensor_evaluation_of_a_pde_residual():
    n = 5
    lookup = {
        "u": torch.linspace(-1, 1, n, dtype=torch.float64), "nu": 0.01,
        ("u", ("t",)): torch.full((n,), 2.0, dtype=torch.float64),
        ("u", ("x",)): torch.arange(n, dtype=torch.float64),
        ("u", ("x", "x")): torch.ones(n, dtype=torch.float64),
    }
    expr = compile_expression("u_t + u*u_x - nu*u_xx", NS, key=KEY)
    expected = lookup[("u", ("t",))] + lookup["u"] * lookup[("u", ("x",))] - 0.01
    torch.testing.assert_close(expr(lookup.__getitem__), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "source, derivatives, names",
    [
        ("u_t + u*u_x - nu*u_xx", {("u", ("t",)), ("u", ("x",)), ("u", ("x", "x"))}, {"u", "nu"}),
        ("u_xt + u_tx + d(u, t, x) + d(u, x, 2, t)", {("u", ("t", "x")), ("u", ("t", "x", "x"))}, set()),
        ("v_tt - k*x*t + sin(pi*e)", {("v", ("t", "t"))}, {"k", "x", "t"}),
        ("1 + 2", set(), set()),
    ],
)
def test_needed_partials_are_listed_with_sorted_coordinates(source, derivatives, names):
    expr = compile_expression(source, NS, key=KEY)
    assert expr.derivatives == derivatives
    assert expr.names == names
    if derivatives or names:
        recorder = Recorder()
        expr(recorder)
        assert set(recorder.calls) == derivatives | names


def test_unknown_name_error_names_key_name_column_and_valid_names():
    with pytest.raises(ExpressionError) as info:
        compile_expression("u_t + foo*2", NS, key=KEY)
    message = str(info.value)
    assert message.startswith(f"{KEY}: unknown name 'foo'")
    assert "at column 7" in message
    for fragment in ("coordinates ['x', 't']", "fields ['u', 'v']", "parameters ['nu', 'k']", "constants ['e', 'pi']",
                     "u_x", "d(field, coord, order)", "'sin'", "'atan2'"):
        assert fragment in message


def test_columns_count_in_the_quoted_stripped_source():
    with pytest.raises(ExpressionError, match="at column 1 in 'foo'"):
        compile_expression("  foo", NS, key=KEY)
    with pytest.raises(ExpressionError, match="at column 5 in 'u \\+ foo'"):
        compile_expression("  u + foo", NS, key=KEY)


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("w_x", "unknown name 'w_x'"),  # not a field
        ("u_y", "unknown name 'u_y'"),  # not a coordinate
        ("u_", "unknown name 'u_'"),
        ("d(u, y)", "unknown coordinate 'y' in d(...); coordinates are ['x', 't']"),
        ("d(x, t)", "d(...) differentiates a field, and 'x' is not one of ['u', 'v']"),
        ("d(w, x)", "'w' is not one of ['u', 'v']"),
        ("d(u)", "malformed derivative"),
        ("d(u, 2)", "malformed derivative argument"),
        ("d(u, x, 0)", "malformed derivative argument"),
        ("d(u, x, 2, 3)", "malformed derivative argument"),
        ("d(u, x, 1.5)", "malformed derivative argument"),
        ("d(u, x, -1)", "malformed derivative argument"),
        ("d(u, x, True)", "malformed derivative argument"),
        ("d(u, x, 2*x)", "malformed derivative argument"),
        ("d(d(u, x), x)", "malformed derivative"),
        ("d(u, x, 9)", "derivative order 9 exceeds the maximum 8"),
        ("d(u, x, 1000000000000)", "exceeds the maximum 8"),  # refused before any list is built
        ("u_xxxxxxxxx", "order above the maximum 8"),
        ("u_" + "x" * 5000, "order above the maximum 8"),
        ("foo(x)", "unknown function 'foo'"),
        ("sin(x, t)", "sin takes 1 argument(s) but got 2"),
        ("atan2(x)", "atan2 takes 2 argument(s) but got 1"),
        ("1" + "0" * 400, "too large"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
    ],
)
def test_bad_expressions_are_reported_with_the_key(source, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, NS, key=KEY)
    assert str(info.value).startswith(f"{KEY}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize("source", [None, 3.0, ["u"], b"u"])
def test_non_string_sources_are_rejected(source):
    with pytest.raises(ExpressionError, match=f"^{KEY}: expected an expression string"):
        compile_expression(source, NS, key=KEY)


def test_the_key_defaults_to_a_placeholder():
    with pytest.raises(ExpressionError, match="^<expression>: unknown name 'q'"):
        compile_expression("q", NS)


def test_expression_error_is_a_value_error():
    assert issubclass(ExpressionError, ValueError)


def test_multi_character_coordinates_make_compact_names_ambiguous():
    ns = Namespace(coords=("x", "xx"), fields=("u",))
    with pytest.raises(ExpressionError, match=r"'u_xx' is ambiguous.*write it as d\(u, \.\.\.\)"):
        compile_expression("u_xx", ns, key=KEY)
    assert compile_expression("d(u, xx)", ns).derivatives == {("u", ("xx",))}
    assert compile_expression("d(u, x, 2)", ns).derivatives == {("u", ("x", "x"))}
    assert compile_expression("u_x", ns).derivatives == {("u", ("x",))}
    start = time.perf_counter()
    with pytest.raises(ExpressionError):
        compile_expression("u_" + "x" * 80, ns, key=KEY)  # exponentially many splits if searched naively
    assert time.perf_counter() - start < 1.0


def test_multi_character_names_that_split_one_way_are_fine():
    ns = Namespace(coords=("r", "theta"), fields=("u", "u_r"), params=("u_theta0",))
    assert compile_expression("u_rtheta", ns).derivatives == {("u", ("r", "theta"))}
    assert compile_expression("u_thetatheta", ns).derivatives == {("u", ("theta", "theta"))}
    assert compile_expression("u_r_r", ns).derivatives == {("u_r", ("r",))}  # field u_r, along r
    expr = compile_expression("u_r + u_theta0", ns)  # a field and a parameter, not derivatives
    assert expr.derivatives == frozenset() and expr.names == {"u_r", "u_theta0"}


MARKER = "pwned_by_expression"
MALICIOUS = [
    f"__import__('os').system('touch {MARKER}')",
    f"__import__('pathlib').Path('{MARKER}').touch()",
    "u.grad",
    "u_x.real",
    "sin.__call__(1)",
    "u[0]",
    "x[0:1]",
    "lambda: 1",
    "(lambda q: q)(1)",
    "[i for i in (1, 2)]",
    "{i for i in (1, 2)}",
    "{i: i for i in (1, 2)}",
    "sin(i for i in (1, 2))",
    "f'{u}'",
    "'abc'",
    "b'abc'",
    "u < 1",
    "u == v",
    "0 < x < 1",
    "u and v",
    "u or v",
    "not u",
    "u if x else v",
    "(q := 1)",
    "sin(x=1)",
    "sin(*u)",
    "sin(**u)",
    "open('x')",
    "eval('1')",
    "exec('import os')",
    "globals()",
    "locals()",
    "getattr(u, 'grad')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "d(u, x)(1)",
    "[u, v]",
    "(u, v)",
    "{u: v}",
    "{u}",
    "None",
    "True",
    "...",
    "1j",
    "x @ t",
    "x // t",
    "x % t",
    "~x",
    "x << 1",
    "x ^ t",
    "x & t",
    "x | t",
    "await u",
    "(yield u)",
    "import os",
    "u = 1",
    "u; v",
    "1 +",
    "sin(x",
    "u_x)",
    "u\nimport os",
]


@pytest.mark.parametrize("source", MALICIOUS)
def test_malicious_or_non_whitelisted_input_is_rejected_and_nothing_runs(source, tmp_path, monkeypatch,
                                                                          no_code_execution):
    monkeypatch.chdir(tmp_path)
    lookup = Recorder()
    with pytest.raises(ExpressionError) as info:
        expr = compile_expression(source, NS, key="conditions.evil")
        expr(lookup)  # only reached if compilation wrongly succeeded
    assert str(info.value).startswith("conditions.evil: ")
    assert lookup.calls == []
    assert not (tmp_path / MARKER).exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("u.grad", "attribute access is not allowed"),
        ("u[0]", "subscripting is not allowed"),
        ("lambda: 1", "a lambda is not allowed"),
        ("[i for i in (1, 2)]", "a comprehension is not allowed"),
        ("f'{u}'", "an f-string is not allowed"),
        ("u < 1", "a comparison is not allowed"),
        ("u and v", "a boolean operator is not allowed"),
        ("u if x else v", "a conditional expression is not allowed"),
        ("(q := 1)", "an assignment is not allowed"),
        ("'abc'", "only numbers are allowed as constants, not 'abc'"),
        ("True", "only numbers are allowed as constants, not True"),
        ("sin(x=1)", "keyword arguments are not allowed"),
        ("sin(*u)", "starred arguments are not allowed"),
        ("open('x')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("().__class__", "attribute access is not allowed"),
        ("x // t", "the operator FloorDiv is not allowed"),
        ("~x", "the unary operator Invert is not allowed"),
        ("not u", "the unary operator Not is not allowed"),
        ("d(u, x)(1)", "cannot be called"),
        ("1 +", "cannot parse '1 +'"),
    ],
)
def test_rejections_say_what_is_not_allowed(source, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, NS, key="conditions.evil")
    assert fragment in str(info.value)
    assert str(info.value).startswith("conditions.evil: ")


def test_rejection_happens_at_compile_time_even_inside_valid_parts():
    """A bad node deep inside an otherwise valid expression is found before anything is evaluated."""
    with pytest.raises(ExpressionError, match=r"attribute access is not allowed; .* at column 20 in"):
        compile_expression("u_t + sin(pi*x) * (u.grad)", NS, key="k")
