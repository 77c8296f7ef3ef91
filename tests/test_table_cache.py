"""Shipped tables are read and verified once per process; a changed or tampered file is not trusted."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from stochctl import _npz
from stochctl.errors import FileFormatError
from stochctl.policies import LocalPolicy
from stochctl.tables import core


@pytest.fixture
def verifications(monkeypatch):
    """Count the checksum computations (each verification of a table computes at least one)."""
    calls = []
    real = _npz.checksum

    def counted(header, arrays):
        calls.append(1)
        return real(header, arrays)

    monkeypatch.setattr(_npz, "checksum", counted)
    return calls


def test_two_schedulers_verify_the_packaged_table_once(verifications):
    core._VERIFIED.clear()
    p1 = LocalPolicy("local-discrete", total_steps=100, u_max=1.0)
    first = len(verifications)
    assert first >= 1  # the first load reads and verifies the file
    p2 = LocalPolicy("local-discrete", total_steps=100, u_max=1.0)
    assert len(verifications) == first  # the second does not
    assert p1.table is not p2.table and p1.table.checksum == p2.table.checksum
    assert p1.table.stats is not p2.table.stats  # each policy counts its own lookups
    p1.table.lookup_array(np.array([[1.0, 0.5, 1.0, 1.0]]), names=["u"])
    assert p1.table.stats.queries == 1 and p2.table.stats.queries == 0


def test_a_changed_file_is_read_again_and_a_tampered_one_refused(tmp_path, verifications):
    path = tmp_path / "table.npz"
    shutil.copyfile(core.packaged_table_path("local-quadratic"), path)
    t1 = core._load_verified(path)
    n = len(verifications)
    core._load_verified(path)
    assert len(verifications) == n  # cached
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k]) for k in data.files if k != "header"}
    arrays["value_0"] = arrays["value_0"].copy()
    arrays["value_0"].flat[0] += 0.25
    with np.load(path, allow_pickle=False) as data:
        text = str(data["header"])
    np.savez(path, header=np.array(text), **arrays)  # the stored checksum no longer matches
    with pytest.raises(FileFormatError):
        core._load_verified(path)
    with pytest.raises(FileFormatError):  # and again: a refused file is never cached
        core._load_verified(path)
    shutil.copyfile(core.packaged_table_path("local-quadratic"), path)
    assert core._load_verified(path).checksum == t1.checksum


def test_a_tampered_copy_of_a_shipped_table_is_refused(tmp_path):
    src = core.packaged_table_path("local-quadratic")
    core.PolicyTable.shipped("local-quadratic")  # cached
    path = tmp_path / "copy.npz"
    raw = bytearray(src.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError):
        core.load_table(str(path))
