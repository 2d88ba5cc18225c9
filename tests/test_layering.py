"""The spec package stands alone: ``lightning_pinn.problem`` imports no derivative engine, network or Lightning code.

Importing ``lightning_pinn.problem`` runs ``lightning_pinn/__init__.py``, which imports everything,
so two checks: the import graph of the package itself, with the top-level package registered bare
(its ``__init__`` not run) in a fresh interpreter; and the import statements of its source files.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_pinn"
FORBIDDEN = ("lightning_pinn.derivatives", "lightning_pinn.nets", "lightning_pinn.lightning")
PROBE = """
import json, sys, types
package = types.ModuleType("lightning_pinn")
package.__path__ = [sys.argv[1]]
sys.modules["lightning_pinn"] = package  # the parent without its __init__, which imports everything
import lightning_pinn.problem
from lightning_pinn.problem import Problem
import torch
problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"pde": "u_xx - sin(u)"},
                  output_transform={"u": "x*(1 - x)*u + exp(x)"})
x = torch.rand(5, 1, dtype=torch.float64)
assert problem.output_transform(x, x).shape == (5, 1)
before = sorted(m for m in sys.modules if m.startswith("lightning_pinn"))
import lightning_pinn.nets  # the control: network code does bring the derivative engine
after = sorted(m for m in sys.modules if m.startswith("lightning_pinn"))
print(json.dumps([before, after]))
"""


def test_importing_and_using_the_problem_package_loads_no_engine_network_or_lightning_code():
    result = subprocess.run([sys.executable, "-c", PROBE, str(PACKAGE)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert "lightning_pinn.problem.spec" in before and "lightning_pinn.problem.output_transform" in before
    assert [m for m in before if m.startswith(FORBIDDEN)] == []
    assert "lightning_pinn.derivatives.jets" in after  # the check sees such an import when there is one


def _imports(source: str, module: str) -> list[str]:
    """Every module an import statement of ``source`` (the text of ``module``) may load, relative
    imports resolved; ``from a import b`` counts as ``a`` and ``a.b`` (``b`` may be a module)."""
    package = module.split(".")[:-1]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            imported = ".".join(p for p in (base, node.module) if p)
            names += [imported] + [f"{imported}.{alias.name}" for alias in node.names]
    return names


def test_no_source_file_of_the_problem_package_imports_engine_network_or_lightning_code():
    files = sorted((PACKAGE / "problem").glob("*.py"))
    assert {"spec.py", "expressions.py", "output_transform.py"} <= {f.name for f in files}
    found = [(f.name, name) for f in files for name in _imports(f.read_text(), f"lightning_pinn.problem.{f.stem}")
             if name.startswith(FORBIDDEN)]
    assert found == []


def test_the_static_check_sees_relative_and_function_level_imports():
    source = "import torch\ndef f():\n    from ..derivatives import jets\n    from . import spec\n    import lightning_pinn.nets\n"
    names = _imports(source, "lightning_pinn.problem.probe")
    assert {"lightning_pinn.derivatives.jets", "lightning_pinn.problem.spec", "lightning_pinn.nets"} <= set(names)
    assert [n for n in names if n.startswith(FORBIDDEN)] == ["lightning_pinn.derivatives", "lightning_pinn.derivatives.jets",
                                                             "lightning_pinn.nets"]


def test_every_subpackage_ships_in_a_non_editable_install():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "lightning_pinn").rglob("__init__.py")}
    assert found - listed == set()
