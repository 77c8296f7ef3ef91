"""Property tests of the input parsers: any text gives a value or an InputError, never another exception.

Parsers covered: the model TOML reader, ``--param NAME=VALUE`` and the
``--at AXIS=VALUE,...`` points of ``query`` and ``table lookup``.
"""

import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stochctl.cli.query import parse_point as query_point
from stochctl.cli.table import parse_point as table_point
from stochctl.errors import InputError
from stochctl.models import parse_params
from stochctl.models.toml_model import load_model_toml, model_from_dict

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(finite, st.integers(-10**6, 10**6), st.booleans(), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(names, inner, max_size=3)), max_leaves=8)

VALID = {
    "model": {"name": "q", "loss": "a*x**2/2 - s*z*x", "noises": ["z"]},
    "players": [{"name": "x", "sense": "min", "symbols": ["x"]}],
    "parameters": {"a": 1.0, "s": {"default": 0.5, "constraint": "nonnegative"}},
    "domain": {"x": [-1.0, 1.0]},
}


def _outcome(fn, *args):
    try:
        return fn(*args)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return exc


@SETTINGS
@given(section=st.sampled_from(["model", "players", "parameters", "domain", "control", "solver", "extra"]),
       key=names, value=values)
def test_toml_tables_with_one_field_changed_give_a_model_or_an_input_error(section, key, value):
    data = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in VALID.items()}
    target = data.setdefault(section, {})
    if isinstance(target, list):
        target = target[0] = dict(target[0])
    target[key] = value
    _outcome(model_from_dict, data, "m.toml")


@SETTINGS
@given(data=st.dictionaries(names, values, max_size=5))
def test_arbitrary_toml_tables_give_a_model_or_an_input_error(data):
    _outcome(model_from_dict, data, "m.toml")


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_arbitrary_file_contents_give_a_model_or_an_input_error(tmp_path, raw):
    path = tmp_path / "m.toml"
    path.write_bytes(raw)
    _outcome(load_model_toml, path)


@SETTINGS
@given(formula=st.text(alphabet="ax*+-/()0123456789. e", max_size=30))
def test_arbitrary_loss_formulas_give_a_model_or_an_input_error(formula):
    data = {**VALID, "model": {**VALID["model"], "loss": formula}}
    _outcome(model_from_dict, data, "m.toml")


def test_valid_tables_round_trip_through_toml_text():
    text = """
[model]
name = "q"
loss = "a*x**2/2 - s*z*x"
noises = ["z"]
[[players]]
name = "x"
sense = "min"
symbols = ["x"]
[parameters]
a = 1.0
s = { default = 0.5, constraint = "nonnegative" }
[domain]
x = [-1.0, 1.0]
"""
    assert tomllib.loads(text) == VALID
    assert model_from_dict(tomllib.loads(text)).model.values == {"a": 1.0, "s": 0.5}


@SETTINGS
@given(items=st.lists(st.text(max_size=20), max_size=4))
def test_param_parser_gives_numbers_or_an_input_error(items):
    out = _outcome(parse_params, items)
    if isinstance(out, dict):
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


@SETTINGS
@given(params=st.dictionaries(names, finite, max_size=5))
def test_param_parser_round_trips(params):
    items = [f"{k}={v!r}" for k, v in params.items()]
    assert parse_params(items) == params
    assert parse_params([",".join(items)]) == params


@SETTINGS
@given(name=names, a=finite, b=finite)
def test_param_given_twice_is_refused(name, a, b):
    with pytest.raises(InputError, match="given twice"):
        parse_params([f"{name}={a!r}", f"{name}={b!r}"])


@SETTINGS
@given(text=st.text(max_size=30))
def test_at_parsers_give_points_or_an_input_error(text):
    point = _outcome(query_point, text, "tau", ("y",))
    if isinstance(point, dict):
        assert set(point) == {"tau", "y"} and all(math.isfinite(v) for v in point.values())
    point = _outcome(table_point, text, ("tau_remaining", "y"))
    if isinstance(point, dict):
        assert set(point) == {"tau_remaining", "y"}


@SETTINGS
@given(tau=finite, y=finite, order=st.booleans())
def test_at_parsers_round_trip(tau, y, order):
    parts = [f"tau={tau!r}", f"y={y!r}"]
    text = ",".join(reversed(parts) if order else parts)
    assert query_point(text, "tau", ("y",)) == {"tau": tau, "y": y}
    assert table_point(text.replace("tau=", "tau_remaining="), ("tau_remaining", "y")) == \
        {"tau_remaining": tau, "y": y}
