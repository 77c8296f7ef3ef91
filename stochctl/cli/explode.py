"""``stochctl explode``: critical learning rates of SGD / GDA at a point of a model."""

from __future__ import annotations

import math

from ..errors import InputError
from ._common import add_model_arguments, dump_json, load_model_from_args, parse_assignments, parse_number


MAX_MULTIPLIER = 1e6
"""Largest learning-rate multiplier accepted by --u (beyond it the iteration matrices overflow)."""

MAX_ETA = 1e6
"""Largest --eta-max."""

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explode",
        help="critical learning rates (explosion thresholds) at a point",
        description="Critical base learning rate eta at a point: deterministic, mean-square and almost-sure "
                    "thresholds of SGD for one player; simultaneous and alternating gradient descent-ascent "
                    "(and their mean-square versions) for a game. Each is the smallest eta that explodes the "
                    "iteration linearised at the point (0: every eta > 0 explodes; none/null: no eta does, up "
                    "to --eta-max for the numerical game thresholds).",
    )
    add_model_arguments(parser)
    parser.add_argument("--at", action="append", required=True, metavar="NAME=V[,...]",
                        help="the point, every state coordinate, e.g. theta=0,omega=0 (repeatable)")
    parser.add_argument("--u", action="append", default=[], metavar="U|PLAYER=U[,...]",
                        help="learning-rate multiplier per player (step = eta u); a number for all players "
                             "or PLAYER=U (default 1)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="minibatch size of every player (default: the model's)")
    parser.add_argument("--eta-max", type=float, default=None, metavar="ETA",
                        help="upper end of the numerical threshold scans of games (default 1000 / rho(U J))")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def parse_point(items, model) -> dict[str, float]:
    """The ``--at`` point: every state coordinate of ``model`` exactly once, each a finite number."""
    raw = parse_assignments(items, "--at")
    names = model.state_names
    for name in raw:
        if name not in names:
            raise InputError(f"--at: unknown coordinate {name!r}; coordinates of model {model.name!r}: "
                             f"{', '.join(names)}")
    for name in names:
        if name not in raw:
            raise InputError(f"--at: missing coordinate {name!r}; expected {', '.join(f'{n}=...' for n in names)}")
    return {name: parse_number("--at", name, raw[name]) for name in names}


def parse_multipliers(items, model):
    """``--u``: None (default), one number for every player, or ``{player: u}``."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        try:
            u = float(items[0])
        except ValueError:
            raise InputError(f"--u: expected a number or PLAYER=U; got {items[0]!r}") from None
        return _multiplier("--u", u)
    raw = parse_assignments(items, "--u")
    out = {}
    players = [p.name for p in model.players]
    for name, text in raw.items():
        if name not in players:
            raise InputError(f"--u: unknown player {name!r}; players: {', '.join(players)}")
        out[name] = _multiplier(f"--u {name}", parse_number("--u", name, text))
    return out


def _multiplier(option: str, u: float) -> float:
    if not (math.isfinite(u) and 0 <= u <= MAX_MULTIPLIER):
        raise InputError(f"{option}: expected a multiplier in [0, {MAX_MULTIPLIER:g}]; got {u!r}")
    return u


def run(args) -> int:
    from ..analysis.explosion import explosion_thresholds

    model = load_model_from_args(args).model
    point = parse_point(args.at, model)
    multipliers = parse_multipliers(args.u, model)
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be an integer >= 1; got {args.batch_size}")
    if args.eta_max is not None and not (math.isfinite(args.eta_max) and 0 < args.eta_max <= MAX_ETA):
        raise InputError(f"--eta-max must be a positive number of at most {MAX_ETA:g}; got {args.eta_max}")
    result = explosion_thresholds(model, point, multipliers=multipliers, batch_size=args.batch_size,
                                  eta_max=args.eta_max)
    print(dump_json(result.as_dict()) if args.json else result.summary())
    return 0
