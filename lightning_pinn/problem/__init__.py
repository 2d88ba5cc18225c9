"""The PDE spec and the safe expression language its residuals are written in."""

from lightning_pinn.problem.expressions import Expression, ExpressionError, Namespace, compile_expression
from lightning_pinn.problem.spec import Condition, Problem, Term

__all__ = ["Condition", "Expression", "ExpressionError", "Namespace", "Problem", "Term", "compile_expression"]
