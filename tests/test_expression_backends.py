"""Every expression in the repository, evaluated by every back end of the expression language.

The corpus is collected, not listed:

- YAML: every problem of ``conf/problem/*.yaml`` and ``conf/experiment/*.yaml`` is composed and
  built while every ``compile_expression`` call is recorded (equations, condition residuals and
  periodic lists, output transforms, the reference's ``initial``/``lid`` strings and their defaults),
  and every string of the composed ``problem`` config that compiles against the problem's names is
  added (so a ``Formula`` solution, compiled only when the reference is first called, is in too);
- Python: every string literal in ``tests/``, ``examples/`` and ``benchmarks/`` that compiles
  against a namespace written literally in the same file (``Problem(coords=..., fields=...)``,
  ``Namespace(...)``, a ``{"coords": ..., "fields": ...}`` dict), the namespace of initial conditions
  (``x``), or, for a ``Formula(...)`` solution, the coordinates it names;
- the function table: ``f(x)`` or ``f(x, y)`` for every function of the language.

Each expression is evaluated at the same random float64 points by the torch closures (the
reference), on numpy arrays, on Python floats, through the numpy entry points of the references
(``Formula``, ``initial_function``) and on Taylor jets (``JetValue``), whose value, first and second
derivatives must equal autograd of the torch result. In a residual, derivative names like ``u_xx``
are looked up, not computed: they are independent inputs here. Parameters are floats, as in use.
"""

from __future__ import annotations

import ast
import itertools
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import lightning_pinn  # noqa: F401  (every module loaded, so the recorder sees every importer)
from lightning_pinn.cli import config_dir
from lightning_pinn.config import instantiate
from lightning_pinn.derivatives.jet_algebra import JetValue
from lightning_pinn.derivatives.jets import Jet, JetIndex, JetUnsupportedError
from lightning_pinn.problem import expressions
from lightning_pinn.problem.expressions import CONSTANTS, FUNCTIONS, Expression, ExpressionError, Namespace
from lightning_pinn.references import Formula
from lightning_pinn.references.spectral import initial_function

ROOT = Path(__file__).resolve().parents[1]
PYTHON_FILES = sorted([*ROOT.glob("tests/*.py"), *ROOT.glob("examples/*.py"), *ROOT.glob("benchmarks/*.py")])
CONFIGS = [(group, path.stem) for group in ("problem", "experiment")
           for path in sorted((Path(config_dir()) / group).glob("*.yaml"))]
POINTS = 64
RTOL = 1e-12
"""Back ends agree to this, relative to the larger value or to the expression's largest value on the points."""
X_ONLY = Namespace(coords=("x",), fields=())
"""The namespace of initial conditions and of the cavity's lid."""


@dataclass
class Case:
    """One expression: where it was found, its text, the names it was compiled against, its compiled form."""

    origin: str
    source: str
    namespace: Namespace
    expression: Expression

    @property
    def inputs(self) -> list[Any]:
        """What varies per point: coordinates, fields and derivatives (parameters are floats)."""
        names = sorted(n for n in self.expression.names if n not in self.namespace.params)
        return [*names, *sorted(self.expression.derivatives)]

    @property
    def params(self) -> list[str]:
        return sorted(n for n in self.expression.names if n in self.namespace.params)


# ----- collecting the corpus ----------------------------------------------------------------------

@contextmanager
def recording_compilations() -> Iterator[list[tuple[str, Namespace, str, Expression]]]:
    """Record every ``compile_expression`` call, whichever module of the library makes it."""
    original = expressions.compile_expression
    calls: list[tuple[str, Namespace, str, Expression]] = []

    def recorder(source, namespace, key="<expression>"):
        expression = original(source, namespace, key)
        calls.append((expression.source, namespace, key, expression))
        return expression

    with pytest.MonkeyPatch.context() as patch:
        for name, module in list(sys.modules.items()):
            if name.startswith("lightning_pinn") and module is not None:
                for attribute, value in list(vars(module).items()):
                    if value is original:
                        patch.setattr(module, attribute, recorder)
        yield calls


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from _strings(value, f"{path}[{k}]")


def _try_compile(source: str, namespace: Namespace) -> Expression | None:
    try:
        return expressions.compile_expression(source, namespace)
    except ExpressionError:
        return None


def yaml_cases(cache: Path) -> list[Case]:
    """Every expression the library compiles while building each config's problem, and every string of
    the composed ``problem`` config that compiles against that problem's names."""
    cases = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIGHTNING_PINN_CACHE", str(cache))
        for group, name in CONFIGS:
            with initialize_config_dir(config_dir(), version_base="1.3"):
                cfg = compose("train", overrides=[f"{group}={name}"])
            where = f"conf/{group}/{name}.yaml"
            with recording_compilations() as calls:
                problem = instantiate(cfg.problem)
            cases += [Case(f"{where}: {key}", source, namespace, expression)
                      for source, namespace, key, expression in calls]
            for key, text in _strings(OmegaConf.to_container(cfg.problem, resolve=True), ""):
                expression = _try_compile(text, problem.namespace)
                if expression is not None:
                    cases.append(Case(f"{where}: {key}", expression.source, problem.namespace, expression))
    return cases


def _names(node: ast.AST | None) -> tuple[str, ...] | None:
    """The names a literal list, tuple or dict (its keys; the values may be anything) spells, else None."""
    if isinstance(node, ast.Dict):
        keys = node.keys
    elif isinstance(node, (ast.List, ast.Tuple)):
        keys = node.elts
    else:
        return None
    if all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
        return tuple(k.value for k in keys)
    return None


def _namespace(arguments: dict[str, ast.AST | None]) -> Namespace | None:
    """The namespace of literal ``coords``, ``fields``, ``params`` and ``learnable`` arguments, if literal."""
    coords, fields = _names(arguments.get("coords")), _names(arguments.get("fields"))
    params = [_names(arguments[k]) if arguments.get(k) is not None else () for k in ("params", "learnable")]
    if coords is None or fields is None or None in params:
        return None
    return Namespace(coords, fields, tuple(p for group in params for p in group))


def _file_namespaces(tree: ast.AST) -> list[Namespace]:
    found = []
    for node in ast.walk(tree):
        arguments: dict[str, ast.AST | None] = {}
        if isinstance(node, ast.Call):
            arguments = {k.arg: k.value for k in node.keywords if k.arg}
            if getattr(node.func, "id", getattr(node.func, "attr", None)) == "Namespace":
                arguments.update(zip(("coords", "fields", "params"), node.args))
        elif isinstance(node, ast.Dict):
            arguments = {k.value: v for k, v in zip(node.keys, node.values)
                         if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if "coords" in arguments and "fields" in arguments:
            namespace = _namespace(arguments)
            if namespace is not None and namespace not in found:
                found.append(namespace)
    return found


def _free_names(source: str) -> set[str] | None:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called and n.id not in CONSTANTS}


def _formula_namespaces(tree: ast.AST) -> dict[int, Namespace]:
    """For the solution strings of a literal ``Formula({...}, params={...})``: the coordinates they name."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Formula" and node.args:
            solution = node.args[0]
            params = _names({k.arg: k.value for k in node.keywords}.get("params")) or ()
            if isinstance(solution, ast.Dict):
                for value in solution.values:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        names = _free_names(value.value) or set()
                        found[id(value)] = Namespace(tuple(sorted(names - set(params))), (), tuple(params))
    return found


def python_cases() -> list[Case]:
    """Every string literal of the tests, examples and benchmarks that compiles against a namespace of its file."""
    cases = []
    for path in PYTHON_FILES:
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        namespaces = [*_file_namespaces(tree), X_ONLY]
        formulas = _formula_namespaces(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or len(node.value) > 2000:
                continue
            for namespace in ([formulas[id(node)]] if id(node) in formulas else namespaces):
                expression = _try_compile(node.value, namespace)
                if expression is not None:
                    origin = f"{path.relative_to(ROOT)}:{node.lineno}"
                    cases.append(Case(origin, expression.source, namespace, expression))
                    break
    return cases


def function_cases() -> list[Case]:
    """``f(x)`` or ``f(x, y)`` for every function of the language."""
    namespace = Namespace(coords=("x", "y"), fields=())
    cases = []
    for name, entry in sorted(FUNCTIONS.items()):
        source = f"{name}(x)" if entry[0] == 1 else f"{name}(x, y)"
        cases.append(Case(f"FUNCTIONS[{name!r}]", source, namespace, expressions.compile_expression(source, namespace)))
    return cases


def _deduplicated(cases: list[Case]) -> list[Case]:
    seen: dict[tuple, Case] = {}
    for case in cases:
        seen.setdefault((case.source, case.namespace), case)
    return list(seen.values())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, list[Case]]:
    """The collected expressions by where they come from: ``yaml``, ``python``, ``functions``."""
    return {"yaml": _deduplicated(yaml_cases(tmp_path_factory.mktemp("cache"))),
            "python": _deduplicated(python_cases()), "functions": function_cases()}


@pytest.fixture(scope="module")
def cases(corpus) -> list[Case]:
    return _deduplicated([case for group in corpus.values() for case in group])


# ----- points and back ends -----------------------------------------------------------------------

@dataclass
class Points:
    """Per-point inputs ``x`` ``(N, len(case.inputs))`` where the torch value is finite, float parameters."""

    x: np.ndarray
    params: dict[str, float]
    reference: np.ndarray  # the torch back end's values there


def torch_values(case: Case, x: np.ndarray | torch.Tensor, params: dict[str, float]) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    columns = {key: x[:, k] for k, key in enumerate(case.inputs)}
    value = case.expression(lambda key: columns[key] if key in columns else params[key])
    return torch.as_tensor(value, dtype=torch.float64).expand(x.shape[0])


def draw(case: Case) -> Points | str:
    """Random points in ``[-1, 1]``, else in ``[0.1, 1]`` (inside the domain of log, sqrt, non-integer
    powers), else in ``[-10, 10]``, keeping those where the torch value is finite; a reason when too few are."""
    rng = np.random.default_rng(zlib.crc32(case.source.encode()))
    for low, high in ((-1.0, 1.0), (0.1, 1.0), (-10.0, 10.0)):
        params = {name: float(rng.uniform(low, high)) for name in case.params}
        x = rng.uniform(low, high, size=(POINTS, len(case.inputs)))
        with np.errstate(all="ignore"):
            values = torch_values(case, x, params).numpy()
        finite = np.isfinite(values)
        if finite.sum() >= POINTS // 4:
            return Points(x[finite], params, values[finite])
    return f"fewer than {POINTS // 4} of {POINTS} points in [-1, 1], [0.1, 1] or [-10, 10] give a finite value"


def mismatch(actual: Any, expected: np.ndarray, rtol: float = RTOL) -> str | None:
    """None when ``actual`` equals ``expected`` to ``rtol`` (relative to each value or to the largest one)."""
    actual = np.broadcast_to(np.asarray(actual, dtype=np.float64), expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    error = np.abs(actual - expected)
    bad = ~(error <= rtol * np.maximum(np.abs(expected), scale))
    if bad.any():
        k = int(np.argmax(bad))
        return f"{int(bad.sum())} of {bad.size} differ, e.g. {actual.flat[k]!r} against {expected.flat[k]!r}"
    return None


def numpy_values(case: Case, points: Points) -> Any:
    columns = {key: points.x[:, k] for k, key in enumerate(case.inputs)}
    with np.errstate(all="ignore"):
        return case.expression(lambda key: columns[key] if key in columns else points.params[key])


def spellings(case: Case) -> dict[str, Any] | None:
    """The names as written in the source, each with its input (``u_tx`` -> ``("u", ("t", "x"))``);
    None when a derivative is written ``d(...)``, which only a namespace with fields can read."""
    tree = ast.parse(case.source, mode="eval")
    if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "d" for n in ast.walk(tree)):
        return None
    written = {}
    for name in _free_names(case.source) or ():
        if name in case.expression.names:
            written[name] = name
        else:
            written[name] = case.namespace.parse_derivative_name(name)
    return written


def jet_check(case: Case, points: Points) -> str | None:
    """Value, first and second derivatives of the jet of ``case`` against autograd of its torch value."""
    x = torch.as_tensor(points.x)
    m = len(case.inputs)
    index = JetIndex(m, [a for a in itertools.product(range(3), repeat=m) if sum(a) == 2])
    seed = index.seed(x)
    columns = {key: JetValue(Jet(seed.value[k:k + 1], seed.coeffs[k:k + 1]), index)
               for k, key in enumerate(case.inputs)}
    out = case.expression(lambda key: columns[key] if key in columns else points.params[key])
    if not isinstance(out, JetValue):
        return f"the jet back end returned {type(out).__name__}, not a JetValue"
    xg = x.clone().requires_grad_(True)
    f = torch_values(case, xg, points.params)
    (grad,) = torch.autograd.grad(f.sum(), xg, create_graph=True)
    hessian = torch.zeros(x.shape[0], m, m, dtype=torch.float64)
    for i in range(m):
        if grad[:, i].requires_grad:
            (row,) = torch.autograd.grad(grad[:, i].sum(), xg, retain_graph=True, allow_unused=True)
            hessian[:, i] = 0.0 if row is None else row.detach()
    problems = []
    value_error = mismatch(out.jet.value[0].detach().numpy(), f.detach().numpy())
    if value_error:
        problems.append(f"value: {value_error}")
    for row, a in enumerate(index.multi):
        jet = (index.factorials[row] * out.jet.coeffs[0, row]).detach().numpy()
        i, j = [k for k, count in enumerate(a) for _ in range(count)] + [None] * (2 - sum(a))
        expected = grad[:, i] if j is None else hessian[:, i, j]
        error = mismatch(jet, expected.detach().numpy())
        if error:
            problems.append(f"d{a}: {error}")
    return "; ".join(problems) or None


# ----- the corpus -----------------------------------------------------------------------------------

def _yaml_expressions(group: str, name: str) -> Iterator[tuple[str, str]]:
    """The expressions at the config keys known to hold them, read from the composed config."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=[f"{group}={name}"]).problem, resolve=True)
    for key, spec in (cfg.get("equations") or {}).items():
        yield f"equations.{key}", spec["residual"] if isinstance(spec, dict) else spec
    for key, condition in (cfg.get("conditions") or {}).items():
        residual = condition.get("residual")
        for k, text in enumerate([residual] if isinstance(residual, str) else residual or []):
            yield f"conditions.{key}.residual[{k}]", text
    for key, text in (cfg.get("output_transform") or {}).items():
        yield f"output_transform.{key}", text
    reference = cfg.get("reference") or {}
    for key, text in (reference.get("solution") or {}).items():
        yield f"reference.solution.{key}", text
    for key in ("initial", "initial_u", "initial_v", "lid"):
        if key in reference:
            yield f"reference.{key}", reference[key]


def test_the_corpus_holds_every_yaml_expression_and_the_literals_of_tests_and_examples(corpus, cases):
    sources = {case.source for case in corpus["yaml"]}
    missing = [f"conf/{group}/{name}.yaml: {key} = {text!r}" for group, name in CONFIGS
               for key, text in _yaml_expressions(group, name) if str(text).strip() not in sources]
    assert not missing, missing
    assert len(corpus["yaml"]) >= 60, len(corpus["yaml"])
    for folder in ("tests", "examples"):
        assert sum(case.origin.startswith(folder) for case in corpus["python"]) >= 10, folder
    # the literals a test file writes down for a namespace literal, a Formula and a periodic list are in
    python_sources = {case.source for case in corpus["python"]}
    assert {"u_t + u*u_x - nu*u_xx", "exp(-t)*sin(k*x)", "u_xxt + u_xtx + u_txx", "d(u, x, 2, t)"} <= python_sources
    assert len(cases) >= 200, len(cases)
    assert {c.source for c in corpus["functions"]} >= {f"{name}(x)" for name, f in FUNCTIONS.items() if f[0] == 1}


def test_the_yaml_defaults_of_the_references_are_recorded(corpus):
    """The spectral references' default initial conditions are not in any YAML; the recorder still sees them."""
    sources = {case.source for case in corpus["yaml"]}
    assert {"2/cosh(x)", "x**2*cos(pi*x)"} <= sources


def _report(failures: list[str], checked: int) -> None:
    assert checked > 0
    assert not failures, f"{len(failures)} of {checked} expressions disagree:\n" + "\n".join(failures[:30])


def test_python_floats_agree_with_torch(cases):
    failures, checked = [], 0
    for case in cases:
        points = draw(case)
        if isinstance(points, str):
            continue
        checked += 1
        for k in range(3):
            row = points.x[k * len(points.x) // 3]
            columns = dict(zip(case.inputs, (float(v) for v in row)))
            try:
                value = case.expression(lambda key, columns=columns, params=points.params:
                                        columns[key] if key in columns else params[key])
            except (ValueError, ArithmeticError) as err:
                failures.append(f"{case.origin}: {case.source!r}: math raised {err!r}")
                break
            if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)):
                failures.append(f"{case.origin}: {case.source!r}: floats gave a {type(value).__name__}")
                break
            error = mismatch(value, np.asarray(points.reference[k * len(points.x) // 3]))
            if error:
                failures.append(f"{case.origin}: {case.source!r}: {error}")
                break
    _report(failures, checked)


def test_numpy_arrays_agree_with_torch(cases):
    """The compiled expression evaluates float64 arrays itself: the result is an array, never a tensor."""
    failures, checked = [], 0
    for case in cases:
        points = draw(case)
        if isinstance(points, str):
            continue
        checked += 1
        value = numpy_values(case, points)
        expected_type = np.ndarray if case.inputs else float
        if not isinstance(value, expected_type) or np.asarray(value).dtype != np.float64:
            failures.append(f"{case.origin}: {case.source!r}: arrays gave {type(value).__name__}")
            continue
        error = mismatch(value, points.reference)
        if error:
            failures.append(f"{case.origin}: {case.source!r}: {error}")
    _report(failures, checked)


def test_the_numpy_entry_points_of_the_references_agree_with_torch(cases):
    """``Formula`` (any expression without ``d(...)``: every name written becomes a coordinate) and
    ``initial_function`` (expressions in ``x`` alone) evaluate numpy arrays to the torch values."""
    failures, formulas, initials = [], 0, 0
    for case in cases:
        points = draw(case)
        written = spellings(case)
        if isinstance(points, str) or written is None:
            continue
        columns = {key: points.x[:, k] for k, key in enumerate(case.inputs)}
        arrays = {name: columns[key] for name, key in written.items() if key in columns}
        params = {name: points.params[key] for name, key in written.items() if key in points.params}
        with np.errstate(all="ignore"):
            value = Formula({"f": case.source}, params=params)(**arrays) if arrays else None
        formulas += value is not None
        error = value is not None and mismatch(value, points.reference)
        if error:
            failures.append(f"{case.origin}: Formula({case.source!r}): {error}")
        if case.inputs == ["x"] and not case.params:
            initials += 1
            error = mismatch(initial_function(case.source)(points.x[:, 0]), points.reference)
            if error:
                failures.append(f"{case.origin}: initial_function({case.source!r}): {error}")
    assert formulas >= 150 and initials >= 20, (formulas, initials)
    _report(failures, formulas)


def test_jets_match_autograd_of_the_torch_back_end(corpus, cases):
    failures, skipped, checked = [], [], 0
    for case in cases:
        points = draw(case)
        if isinstance(points, str) or not case.inputs:
            continue
        try:
            error = jet_check(case, points)
        except JetUnsupportedError as err:
            skipped.append((case, str(err)))
            continue
        checked += 1
        if error:
            failures.append(f"{case.origin}: {case.source!r}: {error}")
    # a skip only for a function without a Taylor rule, and never for an expression of the configs
    for case, reason in skipped:
        assert "has no jet rule" in reason, (case.origin, reason)
    yaml = {(c.source, c.namespace) for c in corpus["yaml"]}
    assert not [case.origin for case, _ in skipped if (case.source, case.namespace) in yaml]
    _report(failures, checked)


def test_every_expression_with_inputs_gets_points(cases):
    """No expression of the corpus is left out for want of points inside its domain."""
    left_out = [f"{case.origin}: {case.source!r}: {points}" for case in cases
                if isinstance(points := draw(case), str)]
    assert not left_out, left_out


def test_the_comparisons_can_fail(monkeypatch):
    """A value off by 1e-10 relative is reported, rounding is not; a jet rule that applies the wrong
    function is reported by the jet check."""
    namespace = Namespace(coords=("x", "t"), fields=("u",), params=("k",))
    case = Case("here", "u*sin(k*x) + t", namespace, expressions.compile_expression("u*sin(k*x) + t", namespace))
    points = draw(case)
    assert mismatch(points.reference * (1 + 1e-10), points.reference) is not None
    assert mismatch(points.reference * (1 + 1e-15), points.reference) is None
    assert jet_check(case, points) is None
    function = JetValue.function
    monkeypatch.setattr(JetValue, "function", lambda self, name: function(self, {"sin": "cos"}.get(name, name)))
    assert "value" in jet_check(case, points)
