"""Parameter sweeps: value grids, tables identical on every executor (serial, process
pool, Dask), each table equal to a direct solve at its parameters, index files, CLI."""

import concurrent.futures as cf
import csv
import json
import sys

import numpy as np
import pytest

from stochctl.cli import main as cli_main
from stochctl.errors import InputError, MissingExtraError
from stochctl.models import get_model, load_model
from stochctl.policy import PolicyTable
from stochctl.tables.sweep import (
    dask_client,
    grid_points,
    parse_param_grid,
    read_index,
    run_task,
    sweep,
)
from stochctl.solvers import solve
from stochctl.solvers.api import default_grid, problem_from_config
from stochctl.symbolic.problem import ControlProblem

CONFIG = """
[model]
name = "noisy-quadratic"
loss = "(a + s*xi)*x**2/2 - sigma*zeta*x"
noises = ["xi", "zeta"]
eta = 0.1
horizon = 1.0

[[players]]
name = "x"
sense = "min"
symbols = ["x"]

[parameters]
a = { default = 1.0, constraint = "positive" }
s = { default = 0.5, constraint = "nonnegative" }
sigma = { default = 1.0, constraint = "nonnegative" }

[domain]
x = [-2.0, 2.0]

[solver]
grid = 41
scheme = "implicit"
dt = 0.05
"""
GRID = {"a": "0.5:2:3", "s": [0.0, 1.0], "sigma": 0.5}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "noisy.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def serial(config):
    return sweep(config, GRID, workers=1)


def test_parameter_grids():
    g = parse_param_grid(["a=0.5:4:8", "b=2,c=-1:1:3"])
    assert list(g) == ["a", "b", "c"]
    np.testing.assert_array_equal(g["a"], np.linspace(0.5, 4, 8))
    np.testing.assert_array_equal(g["b"], [2.0])
    np.testing.assert_array_equal(g["c"], [-1.0, 0.0, 1.0])
    pts = grid_points(parse_param_grid({"a": [1, 2], "b": "0:1:3"}))
    assert len(pts) == 6 and pts[1] == {"a": 1.0, "b": 0.5} and pts[3] == {"a": 2.0, "b": 0.0}
    for bad, match in (("a=1:2", "LO:HI:N"), ("a=1:2:1", "integer >= 2"), ("a=x", "LO:HI:N"),
                       ("a", "NAME=VALUE"), ("a=1:2:2.5", "integer >= 2"), ("a=nan", "finite")):
        with pytest.raises(InputError, match=match):
            parse_param_grid([bad])
    with pytest.raises(InputError, match="given twice"):
        parse_param_grid(["a=1", "a=2"])


def test_tables_equal_direct_solves(config, serial):
    assert [p["a"] for p in serial.points] == [0.5, 0.5, 1.25, 1.25, 2.0, 2.0] and serial.failed == 0
    for params, table in zip(serial.points, serial.tables):
        cfg = load_model(str(config), params)
        problem = problem_from_config(cfg)
        sol = solve(problem, default_grid(problem, points=41), scheme="implicit", dt=0.05, progress=False)
        np.testing.assert_array_equal(table["u"], PolicyTable.from_solution(sol)["u"])
        assert table.metadata["parameters"] == params and table.metadata["sweep"]["parameters"] == params
    # the parameters matter: a steeper loss lets the policy cut the rate earlier
    flat, steep = serial.table(a=0.5, s=1.0)["u"], serial.table(a=2.0, s=1.0)["u"]
    assert np.abs(flat - steep).max() > 0.1
    with pytest.raises(InputError, match="2 sweep points match"):
        serial.table(a=0.5)


def assert_same_tables(a, b):
    assert a.points == b.points and a.errors == b.errors
    for ta, tb in zip(a.tables, b.tables):
        for name in ta.value_names:
            assert ta[name].tobytes() == tb[name].tobytes()
        assert [x.breakpoints.tobytes() for x in ta.axes] == [x.breakpoints.tobytes() for x in tb.axes]


def test_process_pool_gives_the_serial_tables(config, serial, tmp_path):
    pooled = sweep(config, GRID, workers=2, out=tmp_path / "pool")  # the default: a new process pool
    assert_same_tables(serial, pooled)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:  # any concurrent.futures executor
        assert_same_tables(serial, sweep(config, GRID, pool))
    entries = read_index(tmp_path / "pool")
    with open(tmp_path / "pool" / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(entries) == len(rows) == 6
    for entry, row, params, table in zip(entries, rows, serial.points, serial.tables):
        assert entry["parameters"] == params and entry["error"] is None
        assert row["file"] == entry["file"] and float(row["a"]) == params["a"] and float(row["s"]) == params["s"]
        loaded = PolicyTable.load(tmp_path / "pool" / entry["file"])
        assert loaded.checksum == entry["checksum"] == row["checksum"]
        assert loaded["u"].tobytes() == table["u"].tobytes()
    index = json.loads((tmp_path / "pool" / "index.json").read_text())
    assert index["swept"] == {"a": [0.5, 1.25, 2.0], "s": [0.0, 1.0]} and index["fixed"] == {"sigma": 0.5}


def test_dask_local_cluster_gives_the_serial_tables(config, serial, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        via_executor = sweep(config, GRID, client.get_executor())
        via_client = sweep(config, {"a": 1.25, "s": [0.0, 1.0], "sigma": 0.5}, client)
        assert cli_main(["sweep", str(config), "--param", "a=0.5:2:3,s=0:1:2,sigma=0.5", "--out", str(tmp_path),
                         "--dask-scheduler", cluster.scheduler_address, "--quiet"]) == 0
    assert_same_tables(serial, via_executor)
    for i, table in zip((2, 3), via_client.tables):
        assert table["u"].tobytes() == serial.tables[i]["u"].tobytes()
    for entry, table in zip(read_index(tmp_path), serial.tables):
        assert PolicyTable.load(tmp_path / entry["file"])["u"].tobytes() == table["u"].tobytes()


def quadratic_factory(a, u_max=1.0):
    """A picklable factory: the canonical quadratic model with curvature a."""
    return ControlProblem.from_model(get_model("quadratic", a=a), u_max=u_max, horizon=0.5)


def test_factory_control_parameters_and_failures(config, tmp_path):
    res = sweep(quadratic_factory, {"a": [1.0, 2.0], "u_max": 0.5}, workers=1,
                solve_options={"grid": 31, "scheme": "implicit", "dt": 0.05})
    assert all(t["u"].max() <= 0.5 for t in res.tables) and res.tables[0].value("u").valid_range == (0.0, 0.5)
    direct = solve(quadratic_factory(2.0, 0.5), default_grid(quadratic_factory(2.0), points=31),
                   scheme="implicit", dt=0.05, progress=False)
    assert res.tables[1]["u"].tobytes() == PolicyTable.from_solution(direct)["u"].tobytes()
    # u_max from the config path; an invalid parameter value fails only its own task
    res = sweep(config, {"a": [-1.0, 1.0], "u_max": 0.25}, workers=1, out=tmp_path / "f")
    assert res.failed == 1 and "parameter a: expected a positive number" in res.errors[0] and res.tables[0] is None
    assert res.tables[1]["u"].max() <= 0.25
    entries = read_index(tmp_path / "f")
    assert entries[0]["file"] is None and entries[0]["error"] and entries[1]["file"] == "table_0001.npz"


def test_bad_inputs_fail_before_any_task(config):
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['b'\].*valid: \['a', 's', 'sigma'"):
        sweep(config, {"b": 1.0}, workers=1)
    with pytest.raises(InputError, match="unknown solve option"):
        sweep(config, {"a": 1.0}, workers=1, solve_options={"gird": 3})
    with pytest.raises(InputError, match="neither a model"):
        sweep("nope.toml", {"a": 1.0})
    with pytest.raises(InputError, match="workers"):
        sweep(config, {"a": 1.0}, workers=0)


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(MissingExtraError, match=r"stochctl\[dask\]"):
        dask_client("tcp://127.0.0.1:1")
    assert cli_main(["sweep", "local-quadratic", "--param", "u_max=1", "--dask-scheduler", "tcp://x:1"]) == 2


def test_cli(config, serial, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["sweep", str(config), "--param", "a=0.5:2:3,s=0:1:2", "--param", "sigma=0.5",
                     "--out", str(out), "--workers", "1", "--json", "--quiet"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["parameters"] for e in entries] == list(serial.points)
    for e, table in zip(entries, serial.tables):
        assert PolicyTable.load(out / e["file"])["u"].tobytes() == table["u"].tobytes()
    assert cli_main(["sweep", str(config), "--param", "a=1", "--grid", "21", "--value", "--out", str(out / "v"),
                     "--workers", "1", "--quiet"]) == 0
    table = PolicyTable.load(out / "v" / "table_0000.npz")
    assert table.value_names == ("u", "V") and table.shape[1] == 21
    assert cli_main(["sweep", str(config), "--param", "zz=1", "--out", str(out / "x")]) == 2
    assert "unknown parameter(s) ['zz']" in capsys.readouterr().err
    assert cli_main(["sweep", str(config), "--out", str(out / "x")]) == 2


def test_run_task_is_the_worker_function(serial, config):
    """The function the executors run reproduces a table on its own."""
    from stochctl.tables.sweep import _source, _Task

    task = _Task(index=0, params=serial.points[0], **_source(config))
    assert run_task(task)["u"].tobytes() == serial.tables[0]["u"].tobytes()
