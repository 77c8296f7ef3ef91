"""A study folder is tied to the code and table that produced it."""

import shutil

from stochctl.tables import packaged_table_path
from stochctl.study.protocol import code_fingerprint, quick_config


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
