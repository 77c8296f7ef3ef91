"""One convexity scan: the analysis report and the derivation documents agree, and both are right.

Oracles: the eigenvalues of each player's Hessian block recomputed at 30 digits from
the sympy Hessian (mpmath) at grid points, and closed forms of the quadratic game.
"""

import numpy as np
import pytest

from stochctl.analysis.convexity import CONVEXITY_TOL, analyze_convexity, exact_eigenvalues, scan_block_convexity
from stochctl.models import MODEL_NAMES, get_model
from stochctl.documents.render import _grid, convexity_findings


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_report_and_documents_agree_on_every_model(name):
    model = get_model(name)
    findings = convexity_findings(model)
    report = analyze_convexity(model, points=findings[0]["per_axis"])
    assert len(report.blocks) == len(findings) == len(model.players)
    for block, f in zip(report.blocks, findings):
        assert block.player == f["player"]
        assert int(block.fails.sum()) == f["failing"], (name, block.player)
        lo, hi = f["range"]
        assert float(block.extreme.min()) == pytest.approx(lo, rel=1e-12, abs=1e-300)
        assert float(block.extreme.max()) == pytest.approx(hi, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_scan_matches_exact_eigenvalues(name, rng):
    model = get_model(name)
    pts, _ = _grid(model)
    for scan in scan_block_convexity(model, list(pts)):
        chosen = rng.choice(pts.shape[1], size=min(12, pts.shape[1]), replace=False)
        if np.any(scan.fails):  # include failing points when there are any
            chosen = np.concatenate([chosen, np.flatnonzero(scan.fails)[:4]])
        for i in chosen:
            point = {s: float(v) for s, v in zip(model.state_symbols, pts[:, i])}
            exact = exact_eigenvalues(model, scan.block, point)
            deciding = exact[0] if scan.sense == "min" else exact[-1]
            assert scan.extreme[i] == pytest.approx(deciding, rel=1e-9, abs=1e-12)
            if abs(deciding) > 10 * scan.tolerance:
                wrong_side = deciding < 0 if scan.sense == "min" else deciding > 0
                assert bool(scan.fails[i]) == wrong_side, (name, scan.player, point, deciding)


def test_tolerance_treats_round_off_as_zero_and_finds_real_failures():
    mesh = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5), indexing="ij")
    bilinear = scan_block_convexity(get_model("quadratic-game", a=0.0, c=0.0), mesh)
    assert not any(s.fails.any() for s in bilinear)
    tiny = scan_block_convexity(get_model("quadratic-game", a=-0.1 * CONVEXITY_TOL, c=2.0), mesh)
    assert not tiny[0].fails.any() and tiny[0].tolerance == CONVEXITY_TOL  # the block's own scale, max(1, |a|)
    wrong = scan_block_convexity(get_model("quadratic-game", a=-0.5, c=-0.25), mesh)
    assert wrong[0].fails.all() and wrong[1].fails.all()
    np.testing.assert_allclose(wrong[0].extreme, -0.5)
    np.testing.assert_allclose(wrong[1].extreme, 0.25)
