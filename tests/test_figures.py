"""The figures command: every figure is written as a non-blank PNG of its stated size."""

import numpy as np
import pytest
from PIL import Image

from stochctl.cli import main
from stochctl.errors import InputError
from stochctl.figures import FIGURES, DPI, get_spec, pixel_size, readme_text
from stochctl.figures.convexity import runs

# An 8-bit image whose grey levels vary less than this (variance, in units of
# grey level squared) is blank for practical purposes; a figure with axes,
# text and a colour map is in the hundreds or thousands.
VARIANCE_FLOOR = 50.0


@pytest.fixture(scope="module")
def quick_figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    code = main(["figures", "--out", str(out), "--quick", "--no-progress"])
    return code, out


@pytest.mark.slow
def test_quick_run_succeeds(quick_figures):
    code, out = quick_figures
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == sorted(s.filename for s in FIGURES)


@pytest.mark.parametrize("spec", FIGURES, ids=[s.name for s in FIGURES])
@pytest.mark.slow
def test_figure_is_png_of_stated_size_and_not_blank(quick_figures, spec):
    _, out = quick_figures
    path = out / spec.filename
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == pixel_size(spec) == (round(spec.size[0] * DPI), round(spec.size[1] * DPI))
        grey = np.asarray(img.convert("L"), dtype=float)
    assert grey.var() > VARIANCE_FLOOR
    # not a single colour over most of the canvas either: some ink in every quarter
    h, w = grey.shape
    for part in (grey[: h // 2, : w // 2], grey[: h // 2, w // 2:], grey[h // 2:, : w // 2], grey[h // 2:, w // 2:]):
        assert (part < 128).mean() > 0.002


@pytest.mark.slow
def test_readme_has_one_caption_per_figure(quick_figures):
    _, out = quick_figures
    text = (out / "README.md").read_text()
    assert text == readme_text()
    for spec in FIGURES:
        assert f"]({spec.filename})" in text
        assert spec.caption in text


def test_variance_floor_rejects_a_blank_canvas():
    blank = np.full((100, 100), 255.0)
    blank[50, 50] = 0.0  # one stray pixel
    assert blank.var() < VARIANCE_FLOOR


def test_unknown_figure_is_refused():
    with pytest.raises(InputError, match="convexity"):
        get_spec("nope")
    with pytest.raises(SystemExit):
        main(["figures", "--only", "nope"])


def test_runs_match_brute_force(rng):
    for _ in range(50):
        mask = rng.random(rng.integers(0, 30)) < 0.5
        found = runs(mask)
        rebuilt = np.zeros(len(mask), dtype=bool)
        for a, b in found:
            assert a < b and mask[a:b].all()
            assert (a == 0 or not mask[a - 1]) and (b == len(mask) or not mask[b])
            rebuilt[a:b] = True
        assert np.array_equal(rebuilt, mask)


def test_ill_posed_example_has_the_stated_gap():
    from stochctl.analysis import analyze_wellposedness
    from stochctl.figures.minimax import ill_posed_model

    # g = (theta - omega)^2 on [-1, 1]^2: max_omega g = (|theta| + 1)^2, minimised at 0 -> U = 1;
    # min_theta g = 0 for every omega -> L = 0.
    report = analyze_wellposedness(ill_posed_model(), points=21)
    assert report.upper_value == pytest.approx(1.0, abs=1e-8)
    assert report.lower_value == pytest.approx(0.0, abs=1e-8)
    assert not report.saddle_point
