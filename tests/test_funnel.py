"""Funnel plot, checked by content: the points drawn and the region boundaries.

Region boundaries are checked against normal quantiles computed here with scipy
(|y| / se = z_{(1+L)/2} for a two-sided test at level 1 - L; Peters et al. 2008).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from scipy import stats  # noqa: E402

from ketabayes.errors import KetabayesError  # noqa: E402
from ketabayes.inference.frequentist import trimfill  # noqa: E402
from ketabayes.reporting.funnel import plot_funnel  # noqa: E402

# BCG vaccine trials (dat.bcg), log risk ratios as in tests/test_frequentist.py
TPOS = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27], dtype=float)
TNEG = np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886], dtype=float)
CPOS = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29], dtype=float)
CNEG = np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825], dtype=float)
YI = np.log((TPOS / (TPOS + TNEG)) / (CPOS / (CPOS + CNEG)))
VI = 1 / TPOS - 1 / (TPOS + TNEG) + 1 / CPOS - 1 / (CPOS + CNEG)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _regions(ax):
    """Labelled shaded regions; each band is drawn on both sides of 0, the mirror image unlabelled."""
    polys = [c for c in ax.collections if isinstance(c, PolyCollection) and not isinstance(c, PathCollection)]
    out = {}
    for c in polys:
        if not c.get_label().startswith("_"):
            out.setdefault(c.get_label(), []).append(c)
    assert len(polys) == 2 * len(out)
    return out


def test_points_and_contours():
    fig = plot_funnel(YI, VI, measure="RR")
    ax = fig.axes[0]
    pts = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label() == "studies"]
    assert len(pts) == 1
    offsets = pts[0].get_offsets()
    assert len(offsets) == 13
    np.testing.assert_allclose(np.sort(offsets[:, 0]), np.sort(YI))
    np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(np.sqrt(VI)))
    assert ax.yaxis_inverted() and ax.get_xlabel() == "log risk ratio"
    regions = _regions(ax)
    # the visible labels: one per band (each band is drawn on both sides, only one side labelled)
    assert {"0.10 > p > 0.05", "0.05 > p > 0.01", "p < 0.01"} <= set(regions)
    top = ax.get_ylim()[0]
    z90, z95, z99 = (stats.norm.ppf(1 - a / 2) for a in (0.10, 0.05, 0.01))
    for label, (lo, hi) in {"0.10 > p > 0.05": (z90, z95), "0.05 > p > 0.01": (z95, z99)}.items():
        verts = regions[label][0].get_paths()[0].vertices
        at_top = verts[np.isclose(verts[:, 1], top)][:, 0]
        np.testing.assert_allclose(sorted(set(np.round(at_top, 12))), sorted({lo * top, hi * top}), rtol=1e-9)
        at_zero = verts[np.isclose(verts[:, 1], 0.0)][:, 0]
        np.testing.assert_allclose(at_zero, 0.0, atol=1e-12)  # every contour starts at (0, 0)
    inner_p01 = regions["p < 0.01"][0].get_paths()[0].vertices
    assert np.isclose(inner_p01[np.isclose(inner_p01[:, 1], top)][:, 0], z99 * top).any()


def test_custom_contours_and_filled_studies():
    tf = trimfill(YI, VI, method="FE")
    fig = plot_funnel(tf.yi, tf.vi, method="FE", contours=(0.95,), filled=tf.filled)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if c.get_label() == "filled studies"]
    assert len(filled) == 1 and len(filled[0].get_offsets()) == tf.k0 == 4
    assert set(_regions(ax)) == {"p < 0.05"}


def test_bad_contours():
    with pytest.raises(KetabayesError, match="contours must be increasing"):
        plot_funnel(YI, VI, contours=(0.99, 0.95))
    with pytest.raises(KetabayesError, match="filled has 2 entries"):
        plot_funnel(YI, VI, filled=[True, False])
