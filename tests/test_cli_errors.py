"""Bad input to every command: exit code 2, one line on stderr naming the bad value, nothing written.

Every refused case is refused before any work starts, so each test here takes
milliseconds. The folder-that-cannot-be-written case uses /proc, where no user
(root included) can create files.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from stochctl.cli import main

QUARTIC = """
[model]
name = "quartic"
loss = "a*x**n/4 - s*z*x"
noises = ["z"]
horizon = 0.25

[[players]]
name = "x"
sense = "min"
symbols = ["x"]

[parameters]
a = 1.0
n = 4
s = 0.5

[domain]
x = [-1.0, 1.0]
"""

UNWRITABLE = Path("/proc")
needs_proc = pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs /proc (a folder nobody can write)")


@pytest.fixture(scope="module")
def solution_file(tmp_path_factory):
    """A tiny solution of the local model (21 nodes, 4 implicit steps)."""
    path = tmp_path_factory.mktemp("sol") / "sol.npz"
    assert main(["solve", "local-quadratic", "--grid", "21", "--horizon", "0.2", "--dt", "0.05",
                 "--out", str(path), "--quiet"]) == 0
    return path


@pytest.fixture
def work(tmp_path, monkeypatch, solution_file):
    """A folder with the files the cases refer to, as the current folder."""
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir.npz").mkdir()
    (tmp_path / "adir.toml").mkdir()
    (tmp_path / "text.npz").write_text("hello world\n")
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)))
    (tmp_path / "array.npz").write_bytes(b"\x93NUMPY\x01\x00" + b"\x00" * 64)
    (tmp_path / "m.toml").write_text(QUARTIC)
    (tmp_path / "biggrid.toml").write_text(QUARTIC + "\n[solver]\ngrid = 100000000\n")
    (tmp_path / "wide.toml").write_text(QUARTIC.replace("x = [-1.0, 1.0]", "x = [-1e308, 1e308]"))
    (tmp_path / "big.toml").write_text(QUARTIC.replace("horizon = 0.25", "horizon = 0.25\nquadrature_order = 10000"))
    shutil.copy(solution_file, tmp_path / "sol.npz")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


CASES = [
    # (1) output paths, checked before any work
    ("solve local-quadratic --grid 21 --out nodir/x.npz", "'nodir' does not exist"),
    ("solve local-quadratic --grid 21 --out afile/x.npz", "'afile' is a file"),
    ("solve local-quadratic --grid 21 --out adir.npz", "'adir.npz' is a folder"),
    ("solve local-quadratic --grid 21 --out /proc/x.npz", "not writable"),
    ("export sol.npz --out afile/t.npz", "'afile' is a file"),
    ("export sol.npz --out adir.npz", "'adir.npz' is a folder"),
    ("export sol.npz --out t.npz --csv afile/t.csv", "'afile' is a file"),
    ("export sol.npz --out /proc/t.npz", "not writable"),
    ("table build-local --quick --out afile/t.npz", "'afile' is a file"),
    ("table build-local --quick --out adir.npz", "'adir.npz' is a folder"),
    ("table build-local --quick --out nodir/t.npz", "'nodir' does not exist"),
    ("table build-local --quick --out /proc/t.npz", "not writable"),
    ("figures --quick --only explosion --out afile", "'afile' is a file"),
    ("figures --quick --only explosion --out afile/f", "'afile' is a file"),
    ("figures --quick --only explosion --out /proc/figs", "not writable"),
    ("demo --no-figures --out afile", "'afile' is a file"),
    ("demo --no-figures --out afile/d", "'afile' is a file"),
    ("demo --no-figures --out /proc/demo", "not writable"),
    ("derive --all --out afile", "'afile' is a file"),
    ("derive --all --out /proc/derivations", "not writable"),
    ("derive local-quadratic --out somewhere", "--out 'somewhere' is used only with --all"),
    ("sweep local-quadratic --param u_max=0.5:1:2 --grid 21 --out afile", "'afile' is a file"),
    ("sweep local-quadratic --param u_max=0.5:1:2 --grid 21 --out afile/s", "'afile' is a file"),
    ("study --quick --out afile", "'afile' is a file"),
    ("study --quick --out /proc/study", "not writable"),
    # (2) nothing overwritten by surprise: output == input, suffix mismatch
    ("export sol.npz --out sol.npz", "also an input"),
    ("export sol.npz --out ./sol.npz", "also an input"),
    ("solve local-quadratic --grid 21 --out x.csv", "give a file name ending in .npz"),
    ("export sol.npz --out t.csv", "give a file name ending in .npz"),
    ("export sol.npz --out t.npz --csv t.txt", "give a file name ending in .csv"),
    ("table build-local --quick --out t.csv", "give a file name ending in .npz"),
    # (3) sizes, from the arguments alone
    ("solve local-quadratic --grid 100000000", "GiB"),
    ("solve dirac-gan --grid 10000 10000", "nodes per axis fit"),
    ("solve local-quadratic --grid 21 --dt 1e-12", "at most 50,000,000 steps"),
    ("solve dirac-gan --grid 21 --horizon 1e9", "a horizon of at most"),
    ("sweep local-quadratic --param u_max=0.5:1:100000000 --grid 21", "at most 10,000"),
    ("sweep local-quadratic --param u_max=0.5:1:1000,u_min=0:0.1:1000", "1,000,000 sweep points"),
    ("sweep local-quadratic --param u_max=1 --workers 0", "--workers"),
    ("sweep local-quadratic --param u_max=1 --grid 100000000 --workers 1", "nodes per axis fit"),
    ("sweep local-quadratic --param u_max=1 --grid 2 --workers 1", "--grid: need an integer of at least 3 nodes"),
    ("sweep dirac-gan --param c=1 --grid 21 21 21", "--grid: expected 1 or 2 numbers"),
    ("sweep local-quadratic --param u_max=1 --store-every 0", "--store-every must be an integer >= 1"),
    ("sweep local-quadratic --param u_max=1 --dt -1", "--dt must be a positive finite number"),
    ("sweep biggrid.toml --param a=1", "nodes per axis fit"),
    ("sweep local-quadratic --param u_max=1 --dt 1e-12", "at most 50,000,000 steps"),
    ("study --quick --steps 1000000000000", "at most 1,000,000 training steps"),
    ("analyze dirac-gan --box theta=-1e308:1e308", "bounds must lie within +-1e+12"),
    ("explode dirac-gan --at theta=1,omega=0 --u 1e308", "expected a multiplier in [0, 1e+06]"),
    ("explode dirac-gan --at theta=1,omega=0 --u theta=nan", "--u theta must be a finite number"),
    ("explode dirac-gan --at theta=1,omega=0 --eta-max 1e308", "at most 1e+06"),
    ("study --quick --seeds 100000", "at most 1,000 seeds"),
    ("study --quick --workers 1000000", "fit in this machine's memory"),
    # (4) models
    ("solve adir.toml", "'adir.toml' is a folder"),
    ("solve bin.toml", "binary data"),
    ("derive bin.toml", "binary data"),
    ("analyze adir.toml", "is a folder"),
    ("explode bin.toml --at x=0.5", "binary data"),
    ("demo --no-figures --model adir.toml", "--model 'adir.toml' is a folder"),
    ("demo --no-figures --model nothere.toml", "unknown model 'nothere.toml'"),
    ("sweep adir.toml --param u_max=1", "'adir.toml' is a folder"),
    ("solve m.toml --param n=1000", "the exponent n of x**n is 1000"),
    ("derive m.toml --param n=-1e6", "at most 64"),
    ("solve m.toml --param n=4 --param n=5", "--param n: given twice"),
    ("derive m.toml --param n=4,n=5", "--param n: given twice"),
    ("derive m.toml --param n=nan", "--param n: expected a finite number"),
    ("derive big.toml", "quadrature_order: expected an integer in [1, 200]"),
    ("solve wide.toml", "bounds must lie within +-1e+12"),
    # an empty name is not the current folder
    ("figures --quick --out=", "--out: expected a path; got an empty name"),
    ("table build-local --quick --out=", "--out: expected a path; got an empty name"),
    ("export sol.npz --out=", "--out: expected a path; got an empty name"),
    ("derive --all --out=", "--out: expected a path; got an empty name"),
    ("sweep local-quadratic --param u_max=1 --out=", "--out: expected a path; got an empty name"),
    ("study --quick --out=", "--out: expected a path; got an empty name"),
    ("demo --no-figures --out=", "--out: expected a path; got an empty name"),
    # usage errors are one line too
    ("figures --only nope", "invalid choice: 'nope'"),
    ("solve local-quadratic --grid a", "invalid int value: 'a'"),
    ("table lookup local-quadratic", "required: --at"),
    # (5) files: a folder or text where an npz is expected
    ("export text.npz --out t.npz", "'text.npz' is a text file (it starts with 'hello world')"),
    ("export adir.npz --out t.npz", "'adir.npz' is a folder"),
    ("export nothere.npz --out t.npz", "'nothere.npz' does not exist"),
    ("query text.npz --at y=1", "is a text file"),
    ("query adir.npz --at y=1", "'adir.npz' is a folder"),
    ("query array.npz --at y=1", "a single .npy array"),
    ("table info text.npz", "is a text file"),
    ("table info adir.npz", "is a folder"),
    ("table lookup bin.toml --at y=1", "binary data"),
    ("sweep local-quadratic --param u_max=1 --dask-scheduler garbage::://", "expected an address"),
]


@pytest.mark.parametrize("command, needle", CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_and_writes_nothing(work, capsys, command, needle):
    if "/proc" in command and not UNWRITABLE.is_dir():
        pytest.skip("needs /proc")
    before = snapshot(work)
    try:
        rc = main(command.split())
    except SystemExit as exc:  # usage errors exit from the argument parser
        rc = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"stochctl {command.split()[0]}")
    assert ": error: " in lines[0]
    assert needle in lines[0]
    assert "Traceback" not in captured.err and "pickle" not in captured.err
    assert snapshot(work) == before


def test_unreachable_dask_scheduler_is_one_line_within_the_timeout(work, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from stochctl.cli import sweep as sweep_cli

    monkeypatch.setattr(sweep_cli, "DASK_TIMEOUT", 0.5)
    before = snapshot(work)
    rc = main(["sweep", "local-quadratic", "--param", "u_max=1", "--dask-scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no scheduler reachable within 0.5 s" in err[0]
    assert snapshot(work) == before


def test_existing_output_is_replaced_and_said(work, capsys):
    assert main(["export", "sol.npz", "--out", "t.npz", "--csv"]) == 0
    first = capsys.readouterr().out
    assert "replaced" not in first
    assert main(["export", "sol.npz", "--out", "t.npz", "--csv"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert "t.npz (replaced the existing file)" in second[0]
    assert "t.csv (replaced the existing file)" in second[1]
    assert not [p for p in os.listdir(work) if ".tmp" in p]


def test_failed_write_leaves_no_temporary_file(work, monkeypatch):
    from stochctl.solvers import Solution

    sol = Solution.load("sol.npz")
    before = snapshot(work)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        sol.save("sol.npz")
    with pytest.raises(OSError, match="disk full"):
        sol.save("new.npz")
    assert snapshot(work) == before


def test_figures_quick_default_folder_keeps_the_full_figures(work, monkeypatch, capsys):
    import stochctl.figures as figures

    seen = {}

    def fake_generate(out, **kwargs):
        seen[kwargs["quick"]] = Path(out)
        return []

    monkeypatch.setattr(figures, "generate", fake_generate)
    assert main(["figures", "--quick", "--no-progress"]) == 0
    assert main(["figures", "--no-progress"]) == 0
    assert seen == {True: Path("figures-quick"), False: Path("figures")}


def test_build_local_default_is_the_current_folder_not_the_package(work, monkeypatch, capsys):
    import stochctl.tables.shipped as shipped

    seen = []

    def fake_write(out, **kwargs):
        seen.append(Path(out))
        Path(out).write_bytes(b"x")
        return Path(out), type("T", (), {"checksum": "sha256:0"})()

    monkeypatch.setattr(shipped, "write_local_table", fake_write)
    assert main(["table", "build-local", "--quick"]) == 0
    assert seen == [Path("local_quadratic_table.npz")] and not seen[0].is_absolute()
    assert seen[0].resolve() != shipped.default_path()


def test_quartic_with_a_parameter_exponent_solves(work, capsys):
    assert main(["solve", "m.toml", "--grid", "21", "--out", "q.npz", "--quiet"]) == 0
    from stochctl.solvers import Solution

    sol = Solution.load("q.npz")
    assert np.all(np.isfinite(sol.values))


def test_model_without_domain_uses_the_documented_default(work, capsys):
    Path("nodomain.toml").write_text(QUARTIC.split("[domain]")[0])
    assert main(["solve", "nodomain.toml", "--grid", "11", "--out", "d.npz", "--quiet"]) == 0
    from stochctl.solvers import Solution

    grid = Solution.load("d.npz").grid
    assert (grid.lower, grid.upper) == ((-1.0,), (1.0,))


def test_help_texts_have_no_rest_markup(capsys):
    for command in (["export"], ["sweep"], ["table"], ["table", "build-local"], ["demo"], ["solve"], ["study"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text and ":class:" not in text, command


def test_monte_carlo_path_count_is_checked_before_allocation():
    from stochctl.errors import InputError
    from stochctl.models import get_model
    from stochctl.solvers.montecarlo import simulate_constant
    from stochctl.symbolic import ControlProblem

    problem = ControlProblem.from_model(get_model("quadratic"))
    with pytest.raises(InputError, match=r"at most [\d,]+ paths fit"):
        simulate_constant(problem, 0.5, [1.0], paths=10**10)


def test_output_folder_commands_say_how_many_files_they_replaced(work, capsys):
    argv = ["sweep", "local-quadratic", "--param", "u_max=0.5:1:2", "--grid", "21", "--dt", "0.05",
            "--horizon", "0.2", "--out", "sw", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    assert "replaced" not in capsys.readouterr().out
    assert main(argv) == 0
    assert "(replaced 4 existing files)" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["solve", ""], ["derive", ""], ["analyze", ""], ["export", "", "--out", "t.npz"],
                                  ["table", "info", ""]])
def test_an_empty_name_is_refused(work, capsys, argv):
    before = snapshot(work)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty name" in err[0]
    assert snapshot(work) == before
