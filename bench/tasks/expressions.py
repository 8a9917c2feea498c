"""``prepare.derive`` expressions: an allow-list parsed with ``ast`` and evaluated here, never by ``eval``.

A task file must not be able to run code. An expression may use only

- column names (``arr_delay``; a name that is not a Python identifier in backticks: ```arr delay```),
- numbers, strings and ``true``/``false`` (``True``/``False``),
- ``+ - * / // % **``, unary ``- +``, comparisons (chains too: ``0 < x <= 5``), ``and or not`` and ``& | ~``,
- the functions in ``FUNCTIONS``, called by bare name with positional arguments: ``log10(price)``,
  ``where(x > 0, x, 0)``.

Anything else (attributes, method calls, subscripts, keyword arguments, lambdas, comprehensions, other names
such as ``open`` or dunders) is refused by ``parse`` before anything is evaluated. ``parse`` turns the checked
``ast`` into a small tuple IR, and ``evaluate`` walks that IR over pandas Series with operators and numpy ufuncs
it picks itself, so no attribute of a data value is ever looked up by name from the expression. Integer
literals become ``numpy.int64`` so ``9 ** 9 ** 9`` wraps instead of computing a huge Python integer, and
arithmetic other than ``+`` is refused on text so ``'x' * 10 ** 9`` cannot allocate gigabytes.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import TaskError

MAX_LENGTH = 1000
MAX_DEPTH = 50


def _isnull(x: Any) -> Any:
    return pd.isna(x)


def _notnull(x: Any) -> Any:
    return pd.notna(x)


def _clip(x: Any, lo: Any, hi: Any) -> Any:
    return np.minimum(np.maximum(x, lo), hi)


# name -> (number of arguments, function, whether the arguments must be numeric)
FUNCTIONS: dict[str, tuple[int, Any, bool]] = {
    "log": (1, np.log, True), "log10": (1, np.log10, True), "log2": (1, np.log2, True),
    "log1p": (1, np.log1p, True), "exp": (1, np.exp, True), "expm1": (1, np.expm1, True),
    "sqrt": (1, np.sqrt, True), "abs": (1, np.abs, True),
    "clip": (3, _clip, True), "where": (3, None, False),  # where: _Evaluator.where
    "isnull": (1, _isnull, False), "isna": (1, _isnull, False),
    "notnull": (1, _notnull, False), "notna": (1, _notnull, False),
}
HELP = ("only column names (`name with spaces` in backticks), numbers, strings, true/false, the operators "
        "+ - * / // % ** < <= > >= == != & | ~ and or not, and the functions log, log10, log2, log1p, exp, expm1, "
        "sqrt, abs, clip(x, lo, hi), where(cond, a, b), isnull/isna and notnull/notna are allowed")

_BINOPS: dict[type, tuple[str, Any]] = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv), ast.FloorDiv: ("//", operator.floordiv), ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow), ast.BitAnd: ("&", operator.and_), ast.BitOr: ("|", operator.or_),
}
_ARITHMETIC = {"+", "-", "*", "/", "//", "%", "**"}
_CMPOPS: dict[type, tuple[str, Any]] = {
    ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne), ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
}
_UNARY = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not", ast.Invert: "~"}
_INT64 = np.iinfo(np.int64)

# What a refused node is called in the error (the rest use the ast class name).
_CONSTRUCTS = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
    ast.ListComp: "list comprehension", ast.SetComp: "set comprehension", ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression", ast.IfExp: "conditional expression (use where(cond, a, b))",
    ast.List: "list", ast.Tuple: "tuple", ast.Set: "set", ast.Dict: "dict", ast.Starred: "starred argument",
    ast.JoinedStr: "f-string", ast.FormattedValue: "f-string", ast.NamedExpr: "assignment expression (:=)",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "slice",
}


def _refuse(construct: str, expr: str, file: Any, field: str | None) -> TaskError:
    shown = expr if len(expr) <= 80 else expr[:77] + "..."
    return TaskError(f"{construct} is not allowed in {shown!r}; {HELP}", file=file, field=field)


def _replace_backticks(expr: str, file: Any, field: str | None) -> tuple[str, dict[str, str]]:
    """```col name``` -> a placeholder identifier, outside string literals; returns the text and the map."""
    out, names, i, quote = [], {}, 0, None
    while i < len(expr):
        ch = expr[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(expr):
                out.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "`":
            end = expr.find("`", i + 1)
            name = expr[i + 1:end] if end > 0 else ""
            if end < 0 or not name or "\n" in name:
                raise TaskError(f"unclosed or empty backtick name in {expr!r}; write `column name` with a "
                                "closing backtick", file=file, field=field)
            placeholder = f"BACKTICK{len(names)}_"
            while placeholder in expr:
                placeholder += "_"
            names[placeholder] = name
            out.append(f" {placeholder} ")
            i = end
        else:
            out.append(ch)
        i += 1
    return "".join(out), names


def parse(expr: Any, *, file: Any = None, field: str | None = None) -> tuple:
    """Check ``expr`` against the allow-list and return its IR; raises ``TaskError`` naming the construct."""
    if not isinstance(expr, str) or not expr.strip():
        raise TaskError(f"expected an expression over columns as a string, got {expr!r}; {HELP}",
                        file=file, field=field)
    if len(expr) > MAX_LENGTH:
        raise TaskError(f"expression of {len(expr):,} characters; keep it under {MAX_LENGTH:,} (split it into "
                        "several derived columns)", file=file, field=field)
    text, backticks = _replace_backticks(expr, file, field)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise TaskError(f"invalid expression {expr!r} ({exc.msg}); {HELP}", file=file, field=field) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise TaskError(f"invalid expression {expr!r} ({type(exc).__name__}); {HELP}", file=file,
                        field=field) from None
    return _Checker(expr, backticks, file, field).node(tree.body, 1)


class _Checker:
    """ast -> IR tuples, refusing everything outside the allow-list. Recursion is bounded by MAX_DEPTH."""

    def __init__(self, expr: str, backticks: dict[str, str], file: Any, field: str | None) -> None:
        self.expr, self.backticks, self.file, self.field = expr, backticks, file, field

    def fail(self, construct: str) -> TaskError:
        return _refuse(construct, self.expr, self.file, self.field)

    def node(self, n: ast.AST, depth: int) -> tuple:
        if depth > MAX_DEPTH:
            raise TaskError(f"expression nested deeper than {MAX_DEPTH} levels; split it into several derived "
                            "columns", file=self.file, field=self.field)
        method = getattr(self, f"node_{type(n).__name__}", None)
        if type(n) in _NODES and method is not None:
            return method(n, depth + 1)
        construct = _CONSTRUCTS.get(type(n), type(n).__name__)
        if isinstance(n, ast.Attribute):
            construct = f"attribute access '.{n.attr}'"
        raise self.fail(construct)

    def node_Name(self, n: ast.Name, d: int) -> tuple:
        if n.id in self.backticks:
            return ("col", self.backticks[n.id])
        if n.id.startswith("__") or n.id in FUNCTIONS:
            raise self.fail(f"name {n.id!r}" + (f" (call it: {n.id}(...))" if n.id in FUNCTIONS else ""))
        return ("col", n.id)

    def node_Constant(self, n: ast.Constant, d: int) -> tuple:
        return ("const", self.constant(n.value))

    def node_BinOp(self, n: ast.BinOp, d: int) -> tuple:
        if type(n.op) not in _BINOPS:
            raise self.fail(f"operator {type(n.op).__name__}")
        symbol, _ = _BINOPS[type(n.op)]
        return ("bin", symbol, self.node(n.left, d), self.node(n.right, d))

    def node_UnaryOp(self, n: ast.UnaryOp, d: int) -> tuple:
        # A literal -5 is folded so that -9223372036854775808 and similar stay in range.
        if isinstance(n.op, ast.USub) and isinstance(n.operand, ast.Constant) \
                and type(n.operand.value) in (int, float):
            return ("const", self.constant(-n.operand.value))
        return ("unary", _UNARY[type(n.op)], self.node(n.operand, d))

    def node_Compare(self, n: ast.Compare, d: int) -> tuple:
        ops = []
        for op in n.ops:
            if type(op) not in _CMPOPS:
                raise self.fail(f"comparison {type(op).__name__}")
            ops.append(_CMPOPS[type(op)][0])
        return ("cmp", tuple(ops), tuple(self.node(x, d) for x in (n.left, *n.comparators)))

    def node_BoolOp(self, n: ast.BoolOp, d: int) -> tuple:
        return ("bool", "and" if isinstance(n.op, ast.And) else "or", tuple(self.node(v, d) for v in n.values))

    def node_Call(self, n: ast.Call, d: int) -> tuple:
        if not isinstance(n.func, ast.Name):
            raise self.fail("a method call or a call of an expression (such as x.f())")
        name = n.func.id
        if name not in FUNCTIONS:
            raise self.fail(f"function {name!r}")
        if n.keywords:
            raise self.fail(f"keyword argument in {name}(...)")
        if any(isinstance(a, ast.Starred) for a in n.args):
            raise self.fail(f"starred argument in {name}(...)")
        arity = FUNCTIONS[name][0]
        if len(n.args) != arity:
            raise self.fail(f"{name}(...) with {len(n.args)} arguments (it takes {arity})")
        return ("call", name, tuple(self.node(a, d) for a in n.args))

    def constant(self, value: Any) -> Any:
        if isinstance(value, bool):
            return np.bool_(value)
        if isinstance(value, int):
            if not _INT64.min <= value <= _INT64.max:
                raise self.fail(f"integer {value} outside the 64-bit range")
            return np.int64(value)
        if isinstance(value, float):
            return np.float64(value)
        if isinstance(value, str):
            return value
        raise self.fail(f"constant {value!r} of type {type(value).__name__}")


def evaluate(ir: tuple, frame: pd.DataFrame, *, expr: str = "", file: Any = None,
             field: str | None = None) -> pd.Series:
    """The value of a parsed expression over ``frame``, as a Series on its index."""
    ev = _Evaluator(frame, expr, file, field)
    with np.errstate(all="ignore"):
        try:
            value = ev.value(ir)
        except TaskError:
            raise
        except Exception as exc:  # a type mismatch in the data, e.g. text < number
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TaskError(f"cannot evaluate {expr!r} ({type(exc).__name__}: {message}); check the column "
                            "types", file=file, field=field) from None
    if isinstance(value, pd.Series):
        return value
    return pd.Series([value] * len(frame), index=frame.index)


def evaluate_text(expr: str, frame: pd.DataFrame, *, file: Any = None, field: str | None = None) -> pd.Series:
    return evaluate(parse(expr, file=file, field=field), frame, expr=expr, file=file, field=field)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, pd.Series):
        return pd.api.types.is_numeric_dtype(value.dtype) or pd.api.types.is_bool_dtype(value.dtype)
    return isinstance(value, (np.number, np.bool_, int, float, bool))


def _is_bool(value: Any) -> bool:
    if isinstance(value, pd.Series):
        return pd.api.types.is_bool_dtype(value.dtype)
    return isinstance(value, (np.bool_, bool))


def _is_text(value: Any) -> bool:
    if isinstance(value, pd.Series):
        return pd.api.types.is_string_dtype(value.dtype) or value.dtype == object
    return isinstance(value, str)


class _Evaluator:
    def __init__(self, frame: pd.DataFrame, expr: str, file: Any, field: str | None) -> None:
        self.frame, self.expr, self.file, self.field = frame, expr, file, field

    def fail(self, message: str) -> TaskError:
        return TaskError(f"cannot evaluate {self.expr!r}: {message}", file=self.file, field=self.field)

    def value(self, ir: tuple) -> Any:
        kind = ir[0]
        if kind not in _IR_KINDS:  # pragma: no cover: parse builds only these kinds
            raise AssertionError(f"unknown IR node {kind!r}")
        return getattr(self, f"value_{kind}")(*ir[1:])

    def value_const(self, constant: Any) -> Any:
        return constant

    def value_col(self, name: str) -> Any:
        if name not in self.frame.columns:
            known = ", ".join(map(str, self.frame.columns))
            raise self.fail(f"no column {name!r} at this point (columns: {known}); derived columns are "
                            "computed in the order listed")
        return self.frame[name]

    def value_bin(self, symbol: str, left: tuple, right: tuple) -> Any:
        a, b = self.value(left), self.value(right)
        numbers = _is_numeric(a) and _is_numeric(b)
        if symbol in _ARITHMETIC and not numbers and not (symbol == "+" and _is_text(a) and _is_text(b)):
            raise self.fail(f"'{symbol}' needs numbers on both sides (only + joins text)")
        return _OPS[symbol](a, b)

    def value_unary(self, symbol: str, operand: tuple) -> Any:
        x = self.value(operand)
        if symbol in ("-", "+"):
            if not _is_numeric(x) or _is_bool(x):
                raise self.fail(f"unary '{symbol}' needs a number")
            return -x if symbol == "-" else +x
        if symbol == "not":
            return ~self.boolean(x, "not")
        if _is_bool(x) or _is_numeric(x):
            return ~(np.bool_(x) if isinstance(x, bool) else x)
        raise self.fail("'~' needs true/false values or integers")

    def value_cmp(self, ops: tuple, operands: tuple) -> Any:
        values = [self.value(operands[0])]
        result = None
        for symbol, operand in zip(ops, operands[1:], strict=True):
            values.append(self.value(operand))
            step = _OPS[symbol](values[-2], values[-1])
            result = step if result is None else result & step
        return result

    def value_bool(self, symbol: str, parts: tuple) -> Any:
        result = self.boolean(self.value(parts[0]), symbol)
        for part in parts[1:]:
            other = self.boolean(self.value(part), symbol)
            result = (result & other) if symbol == "and" else (result | other)
        return result

    def value_call(self, name: str, args: tuple) -> Any:
        values = [self.value(a) for a in args]
        _, fn, numeric = FUNCTIONS[name]
        if numeric and not all(_is_numeric(v) for v in values):
            raise self.fail(f"{name}(...) needs numbers")
        if name == "where":
            return self.where(*values)
        result = fn(*values)
        # pd.isna(scalar) is a Python bool, and ~True == -2: keep numpy scalars so ~ and not agree.
        return np.bool_(result) if isinstance(result, bool) else result

    def boolean(self, x: Any, symbol: str) -> Any:
        if not _is_bool(x):
            raise self.fail(f"'{symbol}' needs true/false values (a comparison such as x > 0)")
        return np.bool_(x) if isinstance(x, bool) else x

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        cond = self.boolean(cond, "where")
        if not isinstance(cond, pd.Series):
            return a if cond else b
        index = self.frame.index
        a = a if isinstance(a, pd.Series) else pd.Series([a] * len(index), index=index)
        b = b if isinstance(b, pd.Series) else pd.Series([b] * len(index), index=index)
        return a.where(cond.fillna(False).astype(bool), b)


_OPS: dict[str, Any] = {**{s: f for s, f in _BINOPS.values()}, **{s: f for s, f in _CMPOPS.values()}}
# The ast node types _Checker turns into IR (one ``node_<Type>`` method each), and the IR kinds it builds
# (one ``value_<kind>`` method each of _Evaluator): nothing else is ever dispatched to.
_NODES = (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Call)
_IR_KINDS = ("const", "col", "bin", "unary", "cmp", "bool", "call")
