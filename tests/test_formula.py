"""The whitelist formula parser accepts the grammar and refuses everything else."""

import pytest
import sympy as sp

from stochctl.errors import FormulaError
from stochctl.formula import parse_formula

X, W = sp.symbols("x w", real=True)
SYMS = {"x": X, "w": W}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x**2/2 - 3*w", X**2 / 2 - 3 * W),
        ("-(x + 1.5)", -(X + sp.Float(1.5))),
        ("exp(x) + log(w) + sqrt(x) + tanh(w) + sin(x) + cos(w) + abs(x)",
         sp.exp(X) + sp.log(W) + sp.sqrt(X) + sp.tanh(W) + sp.sin(X) + sp.cos(W) + sp.Abs(X)),
        ("sigmoid(x)", 1 / (1 + sp.exp(-X))),
        ("log_sigmoid(w*x)", -sp.log(1 + sp.exp(-W * X))),
        ("softplus(x)", sp.log(1 + sp.exp(X))),
    ],
)
def test_accepts_whitelisted_grammar(text, expected):
    assert sp.simplify(parse_formula(text, SYMS) - expected) == 0


@pytest.mark.parametrize(
    "text, token",
    [
        ("__import__('os')", "__import__"),
        ("x.real", "attribute"),
        ("(lambda: 1)()", "lambda"),
        ("x.conjugate()", "attribute"),
        ("lambda: x", "lambda"),
        ("y + 1", "'y'"),
        ("x ^ 2", "'^'"),
        ("open('f')", "'open'"),
        ("x[0]", "subscript"),
        ("'a'", "literal"),
        ("exp(x=1)", "keyword"),
        ("[t for t in x]", "comprehension"),
        ("x if w else 1", "if"),
        ("2**2**100", "exponent"),
        ("exp", "without a call"),
        ("x +", "cannot parse"),
        ("", "empty"),
    ],
)
def test_refuses_everything_else_naming_the_token(text, token):
    with pytest.raises(FormulaError) as info:
        parse_formula(text, SYMS)
    assert token in str(info.value)
    assert "\n" not in str(info.value)


def test_refuses_symbol_named_like_a_function():
    with pytest.raises(FormulaError, match="reserved"):
        parse_formula("exp + 1", {"exp": sp.Symbol("exp")})


def test_never_evaluates_text(monkeypatch):
    import builtins

    def boom(*args, **kwargs):  # pragma: no cover - would mean the parser evaluated text
        raise AssertionError("eval called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(sp, "sympify", boom)
    assert parse_formula("x*w + 1", SYMS) == X * W + 1
