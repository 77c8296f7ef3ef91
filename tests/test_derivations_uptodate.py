"""The committed derivation documents are what ``stochctl derive --all`` produces."""

from pathlib import Path

from stochctl.cli import main
from stochctl.models import MODEL_NAMES

COMMITTED = Path(__file__).resolve().parents[1] / "derivations"


def test_derivation_documents_up_to_date(tmp_path, capsys):
    assert main(["derive", "--all", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == sorted(f"{n}.md" for n in MODEL_NAMES)
    stale = [name for name in MODEL_NAMES
             if (tmp_path / f"{name}.md").read_bytes() != (COMMITTED / f"{name}.md").read_bytes()]
    assert not stale, (f"derivations/ is out of date for {stale}; regenerate with "
                       "`stochctl derive --all --out derivations/`")
