"""The ``from_trainer`` axes of a table that is neither local layout: how a trainer computes each coordinate."""

from __future__ import annotations

from ..errors import InputError

DISCRETE_AXES = ("u_max", "h", "tau_remaining", "y")


class _DeclaredAxes:
    """The ``from_trainer`` formulas of a table's axes, compiled per array namespace."""

    def __init__(self, table):
        import sympy as sp

        from ..tables.spec import TRAINER_SYMBOLS, trainer_formula

        self.texts = [a.from_trainer for a in table.axes]
        self.exprs = [trainer_formula(t, where=f"axis {a.name!r} from_trainer") for a, t in zip(table.axes, self.texts)]
        self.symbols = [sp.Symbol(n, real=True) for n in TRAINER_SYMBOLS]
        roles = [a.role for a in table.axes]
        self.time = roles.index("time_to_go") if "time_to_go" in roles else None
        self._compiled = {}

    def functions(self, xp):
        """f(a, s2, grad_norm, eta, steps_left) per axis, for arrays of ``xp`` (numpy, torch or jax.numpy)."""
        key = xp.__name__
        if key not in self._compiled:
            import sympy as sp

            module = "jax" if key.startswith("jax") else "torch" if key == "torch" else "numpy"
            self._compiled[key] = [sp.lambdify(self.symbols, e, modules=module) for e in self.exprs]
        return self._compiled[key]


def _declared_axes(table, tau_axis: str, y_axis: str) -> _DeclaredAxes:
    """The declared-axes reading of a table that is neither local layout, or one clear error."""
    names = list(table.axis_names)
    missing = [a.name for a in table.axes if a.from_trainer is None]
    if missing:
        raise InputError(f"the table's axes {names} do not fit: a trainer reads [{tau_axis!r}, {y_axis!r}] "
                         f"(continuous time, either order), {list(DISCRETE_AXES)} (discrete time), or axes that "
                         f"each declare how a trainer computes them; axis {missing[0]!r} does not (export the "
                         f"table with --axis-from {missing[0]}=FORMULA, a formula in a, s2, grad_norm, eta, "
                         "steps_left)")
    return _DeclaredAxes(table)
