"""A study folder is tied to the code and table that produced it; a folder of other code under the
same protocol is still reported."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from stochctl.errors import FileFormatError, InputError
from stochctl.study import tasks as T
from stochctl.study.protocol import StudyConfig, code_fingerprint, quick_config
from stochctl.tables import packaged_table_path

ROOT = Path(__file__).resolve().parent.parent
V2 = ROOT / "results" / "study-v2"


def test_protocol_hash_follows_the_policy_table_bytes(tmp_path):
    base = quick_config()
    copy = tmp_path / "table.npz"
    shutil.copyfile(packaged_table_path("local-quadratic"), copy)
    same = base.select(policy_table=str(copy))
    assert code_fingerprint(str(copy)) == code_fingerprint("local-quadratic")
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    other = tmp_path / "other.npz"
    other.write_bytes(bytes(data))
    changed = base.select(policy_table=str(other))
    assert code_fingerprint(str(other)) != code_fingerprint(str(copy))
    assert changed.protocol_hash() != same.protocol_hash()


# --------------------------------------------------------------------------------------
# a folder of another code fingerprint under the same protocol is reported, with a warning
# --------------------------------------------------------------------------------------


def _recorded_by(folder: Path, code: str, **changes) -> str:
    """Make ``folder`` look recorded by code ``code`` (and protocol ``changes``), with a consistent hash."""
    manifest = json.loads((folder / "study.json").read_text())
    old = manifest["hash"]
    manifest["protocol"].update(code=code, **changes)
    text = json.dumps(manifest["protocol"], sort_keys=True, separators=(",", ":"))
    manifest["hash"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    (folder / "study.json").write_text(json.dumps(manifest, indent=2))
    csv = folder / "results.csv"
    csv.write_text(csv.read_text().replace(old, manifest["hash"]))
    return manifest["hash"]


def test_v2_is_reported_as_recorded_with_a_warning_naming_both_fingerprints():
    """The report of results/study-v2 under this code is its committed summary.md (read only; the
    committed one predates the targets section and names the folder by its absolute path)."""
    from stochctl.study.report import load_study, summary_markdown

    before = sorted((p.name, p.stat().st_mtime_ns) for p in V2.iterdir())
    said = []
    config, rows = load_study(V2, warn=said.append)
    recorded = json.loads((V2 / "study.json").read_text())
    this = code_fingerprint(config.policy_table)
    assert recorded["protocol"]["code"] != this  # else this test shows nothing
    assert len(said) == 1 and "\n" not in said[0]
    assert recorded["protocol"]["code"] in said[0] and this in said[0]
    assert config.protocol_hash() == recorded["hash"] and config.code == recorded["protocol"]["code"]
    text = summary_markdown(config, rows, command="stochctl study --out /work/main/results/study-v2")
    start = text.index("## Targets")
    text = text[:start] + text[text.index("## ", start + 1):]
    assert text.rstrip("\n") == (V2 / "summary.md").read_text().rstrip("\n")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in V2.iterdir()) == before


def test_the_first_studys_folder_is_another_protocol_and_refused():
    from stochctl.study.report import load_study

    with pytest.raises(InputError, match=r"another study protocol .*code, .*version differ"):
        load_study(ROOT / "results" / "study-full", warn=pytest.fail)


def test_report_only_on_another_codes_folder_warns_once_and_a_changed_protocol_is_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    from stochctl.cli import main
    from stochctl.study.runner import run_study

    cfg = StudyConfig(name="tiny", tasks=("gauss1d",), methods=("sgd",), seeds=(0,), version=2,
                      sweeps=(("sgd", (1e-2,)), ("adam", (1e-3,))), steps=tuple((t, 3) for t in T.TASK_NAMES),
                      evaluations=2)
    run_study(cfg, tmp_path / "a", workers=1, progress=False)
    this = code_fingerprint()
    recorded = _recorded_by(tmp_path / "a", "0123456789abcdef")
    argv = ["study", "--report-only", "--out", str(tmp_path / "a"), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stochctl study: warning:")
    assert "0123456789abcdef" in err[0] and this in err[0]
    assert f"(protocol {recorded})" in (tmp_path / "a" / "summary.md").read_text()
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["protocol"] == recorded
    # this code adds no run to it
    with pytest.raises(InputError, match="another study protocol"):
        run_study(cfg, tmp_path / "a", workers=1, progress=False)
    from stochctl.study.report import load_study

    with pytest.raises(InputError, match="cannot add runs to a study recorded by code 0123456789abcdef"):
        run_study(load_study(tmp_path / "a", warn=lambda m: None)[0], tmp_path / "a", workers=1, progress=False)
    # another protocol (version) is refused in one line, writing nothing
    _recorded_by(tmp_path / "a", "0123456789abcdef", version=1)
    (tmp_path / "a" / "summary.md").unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another study protocol" in err[0] and "version" in err[0]
    assert not (tmp_path / "a" / "summary.md").exists()
    # a manifest edited without its hash is refused as a file
    manifest = json.loads((tmp_path / "a" / "study.json").read_text())
    manifest["protocol"]["norm_bound"] = 1.0
    (tmp_path / "a" / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError, match="does not reproduce its stored hash"):
        load_study(tmp_path / "a")
