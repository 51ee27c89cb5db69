"""Guards written into the generated source as expressions, instead of called.

A guard ``def`` whose body is one ``return <expression>`` (after its docstring) is inlined: its
parameters become the running code's ``state``, ``control`` and ``args``, and each other name it reads
becomes a name of the generated module bound to the same object. Only names that stand for
functions, classes, modules or builtins are taken along (a snapshot of anything else could go stale),
and an expression that opens a scope of its own (a lambda, a comprehension) or assigns (``:=``) is
left alone: such a guard, a lambda or a callable object is called as it is.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any

__all__ = ["inline_guard"]

_LOCALS = ("state", "control", "args")
_SCOPED = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr, ast.Await)


def inline_guard(guard: Callable[..., Any], bind: Callable[[str, Any], str]) -> str | None:
    """``guard``'s expression over ``state``, ``control`` and ``args``, or None when it cannot be
    inlined; ``bind(name, value)`` gives the generated module's name for a free name's object."""
    if not isinstance(guard, types.FunctionType):
        return None
    code = guard.__code__
    if code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS) or code.co_kwonlyargcount:
        return None
    if guard.__defaults__ or code.co_argcount not in (2, 3):
        return None
    expression = _returned_expression(guard)
    if expression is None or any(isinstance(node, _SCOPED) for node in ast.walk(expression)):
        return None
    params = dict(zip(code.co_varnames[: code.co_argcount], _LOCALS, strict=False))
    free = _free_values(guard)
    renamed: dict[str, str] = {}
    for node in ast.walk(expression):
        if not isinstance(node, ast.Name):
            continue
        if node.id in params:
            continue
        if node.id in free:
            value = free[node.id]
            if not _stable(value):
                return None
            renamed[node.id] = renamed.get(node.id) or bind(node.id, value)
        elif not hasattr(builtins, node.id):
            return None  # a name the guard resolves elsewhere (or not at all): call it instead
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            node.id = params.get(node.id) or renamed.get(node.id) or node.id
    return ast.unparse(expression)


def _returned_expression(guard: types.FunctionType) -> ast.expr | None:
    try:
        source = textwrap.dedent(inspect.getsource(guard))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    return body[0].value


def _free_values(guard: types.FunctionType) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, cell in zip(guard.__code__.co_freevars, guard.__closure__ or (), strict=True):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name in guard.__code__.co_names:
        if name not in values and name in guard.__globals__:
            values[name] = guard.__globals__[name]
    return values


def _stable(value: Any) -> bool:
    """Objects a snapshot of which cannot go stale."""
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType))
