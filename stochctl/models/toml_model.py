"""User models from TOML files, parsed by the whitelist formula parser.

Format (every formula goes through :func:`stochctl.formula.parse_formula`)::

    [model]
    name = "tilted-quadratic"
    description = "Quadratic loss with a tilt"      # optional
    loss = "a*(x - x0)**2/2 - sigma*zeta*x"         # per-sample loss
    noises = ["zeta"]                               # independent N(0, 1) noises
    eta = 0.1                                       # optional, default 0.1
    batch_size = 1                                  # optional, default 1
    quadrature_order = 32                           # optional, 1 to 200
    terminal = "x**2"                               # optional, default: the mean objective
    horizon = 1.0                                   # optional

    [[players]]
    name = "x"
    sense = "min"                                   # "min" or "max"
    symbols = ["x"]

    [parameters]
    a = { default = 1.0, constraint = "positive", description = "curvature" }
    x0 = 0.5                                        # shorthand: default only
    sigma = { default = 1.0, constraint = "nonnegative" }

    [domain]                                        # optional; a state not listed has [-1, 1]
    x = [-3.0, 3.0]

    [control]                                       # optional, read by solve/sweep
    u_min = 0.0
    u_max = 1.0

    [solver]                                        # optional: the model's solve defaults
    grid = 401                                      # nodes per axis (or one per axis)
    scheme = "explicit"                             # also dt, store_every, boundary, horizon;
    steps = 20                                      # steps: solved in discrete time
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

from ..errors import InputError
from ..formula import parse_formula
from ._model import CONSTRAINTS, Model, Parameter, Player
from .solve_defaults import from_solver_table

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_FILE_BYTES = 1_000_000
MAX_QUADRATURE_ORDER = 200
MAX_BATCH_SIZE = 10**9
MAX_DOMAIN = 1e12


@dataclass(frozen=True)
class ModelConfig:
    """A model read from TOML with the optional sections for later stages.

    Attributes:
        model: the validated model.
        control: the ``[control]`` table (u bounds, batch control), possibly empty.
        solver: the ``[solver]`` table (grid, horizon, scheme), possibly empty.
        source: the file it came from.
    """

    model: Model
    control: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    source: str = ""


def _need(table: dict, key: str, kind, where: str):
    if key not in table:
        raise InputError(f"{where}: missing required field {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{where}.{key}: expected {names}; got {value!r}")
    return value


def _symbol_name(name, where):
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}: {name!r} is not a valid symbol name (letters, digits, '_', starting with a letter)")
    return name


def load_model_toml(path: str | Path) -> ModelConfig:
    """Read a model from a TOML file (format in the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"model file {str(path)!r} is a folder; expected a .toml file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"model file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InputError(f"model file {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"model file {str(path)!r} has {len(raw):,} bytes; a model file has at most "
                         f"{MAX_FILE_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"model file {str(path)!r} is binary data, not a UTF-8 TOML text file") from None
    if "\x00" in text:
        raise InputError(f"model file {str(path)!r} is binary data, not a TOML text file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    return model_from_dict(data, source=str(path))


def model_from_dict(data: dict, source: str = "<dict>") -> ModelConfig:
    """Build a model from the parsed TOML tables (see :func:`load_model_toml`)."""
    allowed = {"model", "players", "parameters", "domain", "control", "solver"}
    extra = set(data) - allowed
    if extra:
        raise InputError(f"{source}: unknown section(s) {sorted(extra)}; expected {sorted(allowed)}")
    m = _need(data, "model", dict, source)
    where = f"{source} [model]"
    name = _need(m, "name", str, where)
    players_raw = _need(data, "players", list, source)
    if not players_raw:
        raise InputError(f"{source}: [[players]] must list at least one player")

    symbols: dict[str, sp.Symbol] = {}

    def declare(n, what):
        _symbol_name(n, f"{source} {what}")
        if n in symbols:
            raise InputError(f"{source}: the name {n!r} is declared twice")
        symbols[n] = sp.Symbol(n, real=True)
        return symbols[n]

    players = []
    for i, p in enumerate(players_raw):
        pw = f"{source} [[players]][{i}]"
        if not isinstance(p, dict):
            raise InputError(f"{pw}: expected a table; got {p!r}")
        unknown = set(p) - {"name", "sense", "symbols"}
        if unknown:
            raise InputError(f"{pw}: unknown field(s) {sorted(unknown)}; expected name, sense, symbols")
        syms = _need(p, "symbols", list, pw)
        sense = _need(p, "sense", str, pw)
        players.append(Player(_need(p, "name", str, pw), sense, tuple(declare(s, pw) for s in syms)))

    noises_raw = m.get("noises", [])
    if not isinstance(noises_raw, list):
        raise InputError(f"{where}.noises: expected a list of names; got {noises_raw!r}")
    noises = tuple(declare(n, f"{where}.noises") for n in noises_raw)

    params = []
    for pname, spec in data.get("parameters", {}).items():
        sym = declare(pname, "[parameters]")
        pw = f"{source} [parameters].{pname}"
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"default": spec}
        if not isinstance(spec, dict):
            raise InputError(f"{pw}: expected a number or a table with 'default'; got {spec!r}")
        default = _need(spec, "default", (int, float), pw)
        constraint = spec.get("constraint", "real")
        if constraint not in CONSTRAINTS:
            raise InputError(f"{pw}.constraint: expected one of {CONSTRAINTS}; got {constraint!r}")
        params.append(Parameter(sym, float(default), constraint, str(spec.get("description", ""))))

    loss = parse_formula(_need(m, "loss", str, where), symbols, where=f"{where}.loss")
    terminal = None
    if "terminal" in m:
        no_noise = {k: v for k, v in symbols.items() if v not in noises}
        terminal = parse_formula(_need(m, "terminal", str, where), no_noise, where=f"{where}.terminal")

    domain = {}
    for sname, box in data.get("domain", {}).items():
        if sname not in {s.name for p in players for s in p.symbols}:
            raise InputError(f"{source} [domain]: {sname!r} is not a state symbol")
        if not (isinstance(box, list) and len(box) == 2 and all(isinstance(v, (int, float)) for v in box)):
            raise InputError(f"{source} [domain].{sname}: expected [lo, hi]; got {box!r}")
        if not all(abs(v) <= MAX_DOMAIN for v in box):
            raise InputError(f"{source} [domain].{sname}: bounds must lie within +-{MAX_DOMAIN:g}; got {box!r}")
        domain[sname] = (float(box[0]), float(box[1]))

    options = {}
    for key, kind in (("eta", (int, float)), ("batch_size", int), ("quadrature_order", int),
                      ("horizon", (int, float)), ("description", str)):
        if key in m:
            options[key] = _need(m, key, kind, where)
    for key, lo, hi in (("quadrature_order", 1, MAX_QUADRATURE_ORDER), ("batch_size", 1, MAX_BATCH_SIZE)):
        if key in options and not lo <= options[key] <= hi:
            raise InputError(f"{where}.{key}: expected an integer in [{lo}, {hi:,}]; got {options[key]!r}")
    unknown = set(m) - {"name", "loss", "noises", "terminal", "eta", "batch_size", "quadrature_order",
                        "horizon", "description"}
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}")
    control = data.get("control", {})
    solver = data.get("solver", {})
    for label, t in (("control", control), ("solver", solver)):
        if not isinstance(t, dict):
            raise InputError(f"{source} [{label}]: expected a table; got {t!r}")
    model = Model(
        name=name,
        description=options.pop("description", f"User model {name} from {source}"),
        loss=loss,
        players=tuple(players),
        noises=noises,
        parameters=tuple(params),
        domain=domain,
        terminal=terminal,
        solve_defaults=from_solver_table(solver, f"{source} [solver]"),
        **{k: (float(v) if k in ("eta", "horizon") else v) for k, v in options.items()},
    )
    return ModelConfig(model=model, control=dict(control), solver=dict(solver), source=source)
