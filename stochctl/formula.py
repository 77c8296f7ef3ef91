"""Whitelist parser for user formulas (TOML models, CLI terminal costs).

A formula is parsed with :func:`ast.parse` into a syntax tree that is walked
node by node; only these are accepted:

* numbers (int or float literals),
* declared names (state symbols, parameters, noises),
* the operators ``+ - * / **`` and parentheses (unary ``+``/``-`` too),
* calls of the named functions in :data:`FUNCTIONS` with positional arguments.

Everything else (attribute access, subscripts, lambdas, comprehensions,
keywords, strings, undeclared names, ``^``) is refused with a
:class:`~stochctl.errors.FormulaError` naming the offending token. Nothing is
ever passed to ``eval`` or to ``sympy.sympify``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import sympy as sp

from .errors import FormulaError

MAX_LENGTH = 20_000
MAX_DEPTH = 200
MAX_CONSTANT_EXPONENT = 64


def sigmoid(z):
    """sigmoid(z) = 1 / (1 + exp(-z))."""
    return 1 / (1 + sp.exp(-z))


def log_sigmoid(z):
    """log sigmoid(z) = -log(1 + exp(-z))."""
    return -sp.log(1 + sp.exp(-z))


def softplus(z):
    """softplus(z) = log(1 + exp(z))."""
    return sp.log(1 + sp.exp(z))


FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sin": sp.sin,
    "cos": sp.cos,
    "abs": sp.Abs,
    "sigmoid": sigmoid,
    "log_sigmoid": log_sigmoid,
    "softplus": softplus,
}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}

_TOKEN_NAMES = {
    ast.Attribute: "attribute access '.'",
    ast.Subscript: "subscript '[...]'",
    ast.Lambda: "'lambda'",
    ast.BitXor: "'^' (use '**' for powers)",
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.MatMult: "'@'",
    ast.Compare: "comparison",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "'if ... else'",
    ast.ListComp: "list comprehension",
    ast.GeneratorExp: "generator expression",
    ast.List: "list literal",
    ast.Tuple: "tuple literal",
    ast.Dict: "dict literal",
    ast.Set: "set literal",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "':='",
    ast.Starred: "'*' unpacking",
    ast.Await: "'await'",
}


def parse_formula(text: str, symbols: Mapping[str, sp.Symbol], *, where: str = "formula") -> sp.Expr:
    """Parse ``text`` into a sympy expression over the declared ``symbols``.

    Args:
        text: the formula, e.g. ``"log_sigmoid(omega*c) + log_sigmoid(-omega*theta)"``.
        symbols: the declared names and the sympy symbols they stand for.
        where: a label for error messages (e.g. ``"model.loss"``).

    Raises:
        FormulaError: naming the first token outside the whitelist.
    """
    if not isinstance(text, str):
        raise FormulaError(f"{where}: expected a formula string; got {type(text).__name__} {text!r}")
    if not text.strip():
        raise FormulaError(f"{where}: the formula is empty")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"{where}: formula has {len(text)} characters; at most {MAX_LENGTH} allowed")
    for name in symbols:
        if name in FUNCTIONS:
            raise FormulaError(f"{where}: the name {name!r} is reserved for a function; rename the symbol")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"{where}: cannot parse {text!r}: {exc.msg} at column {exc.offset}") from None
    return _Walker(symbols, where, text).visit(tree.body, 0)


class _Walker:
    def __init__(self, symbols, where, text):
        self.symbols = dict(symbols)
        self.where = where
        self.text = text

    def refuse(self, node, what: str):
        col = getattr(node, "col_offset", None)
        at = f" at column {col + 1}" if col is not None else ""
        raise FormulaError(f"{self.where}: {what}{at} is not allowed in {self.text!r}")

    def visit(self, node, depth):
        if depth > MAX_DEPTH:
            self.refuse(node, f"nesting deeper than {MAX_DEPTH}")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.refuse(node, f"the literal {value!r}")
            if isinstance(value, int):
                if abs(value) > 10**15:
                    self.refuse(node, f"the integer literal {value} (too large)")
                return sp.Integer(value)
            if value != value or value in (float("inf"), float("-inf")):
                self.refuse(node, f"the non-finite literal {value!r}")
            return sp.Float(value)
        if isinstance(node, ast.Name):
            if node.id in self.symbols:
                return self.symbols[node.id]
            if node.id in FUNCTIONS:
                self.refuse(node, f"the function name {node.id!r} used without a call")
            declared = ", ".join(sorted(self.symbols)) or "(none)"
            self.refuse(node, f"the undeclared name {node.id!r} (declared: {declared})")
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            self.refuse(node, f"the unary operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            if op not in _BINARY:
                self.refuse(node, _TOKEN_NAMES.get(op, f"the operator {op.__name__}"))
            left = self.visit(node.left, depth + 1)
            right = self.visit(node.right, depth + 1)
            if op is ast.Pow and right.is_number and abs(float(right)) > MAX_CONSTANT_EXPONENT:
                self.refuse(node, f"the exponent {right} (at most {MAX_CONSTANT_EXPONENT} in absolute value)")
            return _BINARY[op](left, right)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.refuse(node.func, _TOKEN_NAMES.get(type(node.func), "a call of a non-name"))
            name = node.func.id
            if name not in FUNCTIONS:
                allowed = ", ".join(sorted(FUNCTIONS))
                self.refuse(node.func, f"the function {name!r} (allowed: {allowed})")
            if node.keywords:
                self.refuse(node, f"keyword arguments in {name}()")
            if len(node.args) != 1:
                self.refuse(node, f"{name}() with {len(node.args)} arguments (expected 1)")
            return FUNCTIONS[name](self.visit(node.args[0], depth + 1))
        self.refuse(node, _TOKEN_NAMES.get(type(node), f"the construct {type(node).__name__}"))


def check_exponents(expr: sp.Expr, values: Mapping[sp.Symbol, float], *, where: str = "formula") -> None:
    """Refuse a power whose exponent, once the parameter ``values`` are put in, exceeds the literal limit.

    :func:`parse_formula` bounds literal exponents by :data:`MAX_CONSTANT_EXPONENT`;
    an exponent written with parameters (``x**n``) is held to the same bound for
    the values it actually takes.

    Raises:
        FormulaError: naming the power and the value of its exponent.
    """
    for power in sp.sympify(expr).atoms(sp.Pow):
        exponent = power.exp
        if exponent.is_number or not (exponent.free_symbols & set(values)):
            continue
        value = exponent.subs(values)
        if value.is_number and value.is_finite is not False:
            try:
                number = abs(complex(value))
            except TypeError:
                continue
            if number > MAX_CONSTANT_EXPONENT:
                raise FormulaError(f"{where}: the exponent {sp.sstr(exponent)} of {sp.sstr(power)} is {number:g} "
                                   f"with these parameters; at most {MAX_CONSTANT_EXPONENT} in absolute value")


def combine_symbolic_powers(expr: sp.Expr) -> sp.Expr:
    """Combine powers of one base whose exponents are not all numbers: ``n*x**n/x -> n*x**(n - 1)``.

    Differentiating ``x**n`` with a parameter ``n`` gives ``n*x**n/x``, a 0/0 at
    x = 0 that is removable for n >= 1; after combining, the derivative is
    finite wherever the function is smooth. Powers with numeric exponents and
    exponentials are left as they are.
    """
    def combine(mul):
        groups: dict = {}
        for factor in mul.args:
            base, exp = factor.as_base_exp()
            groups.setdefault(base, []).append(exp)
        if not any(len(exps) > 1 and base != sp.E and not all(e.is_number for e in exps)
                   for base, exps in groups.items()):
            return mul
        factors = []
        for base, exps in groups.items():
            if len(exps) > 1 and base != sp.E and not all(e.is_number for e in exps):
                factors.append(sp.Pow(base, sp.Add(*exps)))
            else:
                factors.extend(sp.Pow(base, e) for e in exps)
        return sp.Mul(*factors)

    return sp.sympify(expr).replace(lambda e: e.is_Mul, combine)
