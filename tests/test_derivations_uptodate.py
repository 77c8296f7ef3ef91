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


def test_local_discrete_document_is_the_discrete_derivation():
    from stochctl.documents.discrete_render import DISCRETE_DOCUMENTS, discrete_document

    assert "local-discrete" in DISCRETE_DOCUMENTS
    text = (COMMITTED / "local-discrete.md").read_text(encoding="utf-8")
    assert text == discrete_document("local-discrete")
    assert "# Discrete derivation: local-discrete" in text and "## Bellman equation" in text
    assert "## Controlled SDE" not in text
