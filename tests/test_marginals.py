"""Marginals with atoms and weighted draws, against closed forms; shortest (HPD) intervals of every marginal.

``PointMass`` / ``MixedMarginal`` (model averages of a Bayes factor) and
``WeightedDrawsMarginal`` (power-scaling): CDFs, left limits, moments and the
generalised inverse ``inf{x: F(x) >= q}``, checked against normal CDFs and
quantiles from scipy and hand-computed step functions. HPD intervals, also of ``exp(X)``:
against the closed form for a lognormal, the highest-density region on a dense grid, and
brute-force searches over the (weighted) draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ketabayes.marginals import (
    DrawsMarginal,
    MixedMarginal,
    MixtureMarginal,
    PointMass,
    WeightedDrawsMarginal,
)


def _spike_slab(w0=0.4, m=-1.0, s=0.5):
    return MixedMarginal([w0, 1 - w0], [PointMass(0.0), MixtureMarginal([1.0], [m], [s])])


def test_point_mass_cdf_left_limit_and_quantiles():
    p = PointMass(0.3)
    np.testing.assert_array_equal(p.cdf([0.2, 0.3, 0.4]), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(p.prob_below([0.2, 0.3, 0.4]), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(p.ppf(np.array([0.0, 0.1, 1.0])), [-np.inf, 0.3, 0.3])
    assert p.mean == 0.3 and p.sd == 0.0


def test_mixed_marginal_cdf_jumps_at_the_atom():
    w0, m, s = 0.4, -1.0, 0.5
    mm = _spike_slab(w0, m, s)
    slab0 = stats.norm.cdf(0.0, m, s)
    assert float(mm.cdf(0.0)) == pytest.approx(w0 + (1 - w0) * slab0, abs=1e-15)
    assert float(mm.prob_below(0.0)) == pytest.approx((1 - w0) * slab0, abs=1e-15)
    assert float(mm.prob_below(-0.7)) == float(mm.cdf(-0.7))  # continuous away from the atom
    assert mm.mean == pytest.approx((1 - w0) * m)
    assert mm.sd == pytest.approx(math.sqrt((1 - w0) * (s**2 + m**2) - ((1 - w0) * m) ** 2))


def test_mixed_marginal_quantile_is_the_generalised_inverse():
    w0, m, s = 0.4, -1.0, 0.5
    mm = _spike_slab(w0, m, s)
    below, at = float(mm.prob_below(0.0)), float(mm.cdf(0.0))  # F(0-) ~ 0.586, F(0) ~ 0.986
    # q inside the jump (and at its top) -> exactly the atom
    for q in (0.5 * (below + at), at, below + 1e-9):
        assert mm.ppf(np.array([q]))[0] == 0.0
    # q below / above the jump: the slab's quantile of the rescaled probability
    for q in (0.01, 0.3, below - 1e-6):
        expect = stats.norm.ppf(q / (1 - w0), m, s)
        assert mm.ppf(np.array([q]))[0] == pytest.approx(expect, abs=1e-10)
    for q in (0.99, 0.999):
        expect = stats.norm.ppf((q - w0) / (1 - w0), m, s)
        assert mm.ppf(np.array([q]))[0] == pytest.approx(expect, abs=1e-10)
    # at the bottom of the jump, inf{x: F(x) >= F(0-)} = 0 (F is strictly increasing left of 0)
    assert mm.ppf(np.array([below]))[0] == pytest.approx(0.0, abs=1e-12)
    # shape follows q; the ends are -inf / inf as for MixtureMarginal
    out = mm.ppf(np.array([[0.0, 0.5], [1.0, 0.7]]))
    assert out.shape == (2, 2) and out[0, 0] == -np.inf and out[1, 0] == np.inf and out[1, 1] == 0.0


def test_mixed_marginal_of_atoms_only():
    mm = MixedMarginal([0.3, 0.7], [PointMass(0.0), PointMass(1.0)])
    # F = 0.3 on [0, 1), 1 from 1: inf{x: F(x) >= q}
    np.testing.assert_array_equal(mm.ppf(np.array([0.1, 0.3, 0.30001, 0.9])), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(mm.prob_below([0.0, 0.5, 1.0, 1.5]), [0.0, 0.3, 0.3, 1.0])


def test_mixed_marginal_with_a_draws_component():
    # quantiles of a component given only approximately (np.quantile of draws) still bracket the root
    rng = np.random.default_rng(3)
    draws = rng.normal(0.5, 1.0, 4001)
    mm = MixedMarginal([0.5, 0.5], [PointMass(-3.0), DrawsMarginal(draws)])
    for q in (0.6, 0.75, 0.95):
        x = float(mm.ppf(np.array([q]))[0])
        assert float(mm.cdf(x)) >= q and float(mm.cdf(x - 1e-9)) < q


def test_weighted_draws_marginal_matches_hand_computed_step_function():
    x = np.array([3.0, 1.0, 2.0, 4.0])
    w = np.array([1.0, 2.0, 3.0, 4.0])  # sorted: 1 (0.2), 2 (0.3), 3 (0.1), 4 (0.4)
    m = WeightedDrawsMarginal(x, w)
    np.testing.assert_allclose(m.cdf([0.5, 1.0, 2.5, 3.0, 4.0]), [0.0, 0.2, 0.5, 0.6, 1.0])
    np.testing.assert_array_equal(m.ppf(np.array([0.1, 0.2, 0.55, 0.61])), [1.0, 1.0, 3.0, 4.0])
    assert m.mean == pytest.approx((3 * 1 + 1 * 2 + 2 * 3 + 4 * 4) / 10)
    assert m.sd == pytest.approx(math.sqrt((9 * 1 + 1 * 2 + 4 * 3 + 16 * 4) / 10 - 2.7**2))


# ---------------------------------------------------------------------------
# shortest (HPD) intervals: every marginal, on the analysis and on the ratio (exp) scale
# ---------------------------------------------------------------------------
def _grid_hpd(x, dens, prob):
    """The highest-density region {f > c} holding ``prob`` on a dense uniform grid (bisection on c)."""
    dx = x[1] - x[0]
    lo_c, hi_c = 0.0, float(dens.max())
    for _ in range(200):
        c = 0.5 * (lo_c + hi_c)
        if dens[dens > c].sum() * dx > prob:
            lo_c = c
        else:
            hi_c = c
    region = x[dens > lo_c]
    return region[0], region[-1]


def _mixture_density(x, w, m, s):
    return sum(wi * stats.norm.pdf(x, mi, si) for wi, mi, si in zip(w, m, s))


def test_hpd_of_the_exponential_of_a_normal_has_its_closed_form():
    """exp(X), X ~ N(m, s^2): f_Y(e^l) = f_Y(e^u) gives l + u = 2 (m - s^2) on the log scale."""
    m, s, prob = -0.3, 0.6, 0.95
    lo, hi = MixtureMarginal([1.0], [m], [s]).hpd(prob, transform="exp")

    def mass(u):
        return stats.norm.cdf(u, m, s) - stats.norm.cdf(2 * (m - s**2) - u, m, s) - prob

    from scipy import optimize

    u = optimize.brentq(mass, m - s**2, m + 10 * s, xtol=1e-15)
    assert lo == pytest.approx(math.exp(2 * (m - s**2) - u), rel=1e-9)
    assert hi == pytest.approx(math.exp(u), rel=1e-9)
    # not exp of the log-scale HPD (= the equal-tailed interval of a normal)
    assert abs(lo - math.exp(m - 1.959964 * s)) > 0.05


@pytest.mark.parametrize("transform", [None, "exp"])
def test_hpd_of_a_skewed_mixture_against_a_dense_grid(transform):
    w, m, s = [0.6, 0.3, 0.1], [0.0, 0.7, -0.5], [0.3, 0.5, 0.2]
    y = np.linspace(1e-6, 12.0, 1_200_001) if transform else np.linspace(-4.0, 5.0, 900_001)
    dens = (_mixture_density(np.log(y), w, m, s) / y) if transform else _mixture_density(y, w, m, s)
    ref = _grid_hpd(y, dens, 0.9)
    lo, hi = MixtureMarginal(w, m, s).hpd(0.9, transform=transform)
    step = y[1] - y[0]
    assert lo == pytest.approx(ref[0], abs=3 * step) and hi == pytest.approx(ref[1], abs=3 * step)


def test_hpd_of_a_bimodal_mixture_is_the_shortest_single_interval():
    """Symmetric modes at -3 and 3: the interval with equal end densities around 0 (in the valley) holds 40%
    but is not the shortest; the density check sends this case to the quantile search."""
    m = MixtureMarginal([0.5, 0.5], [-3.0, 3.0], [1.0, 1.0])
    x = np.linspace(-9.0, 9.0, 180_001)
    F = 0.5 * stats.norm.cdf(x + 3.0) + 0.5 * stats.norm.cdf(x - 3.0)
    j = np.searchsorted(F, F + 0.4)  # for each lower end, the first grid point holding 40% more
    ok = j < x.size
    i = int(np.argmin(np.where(ok, x[np.minimum(j, x.size - 1)] - x, np.inf)))
    lo, hi = m.hpd(0.4)
    assert hi - lo == pytest.approx(x[j[i]] - x[i], abs=2e-4)
    assert hi - lo < 3.0 and float(m.cdf(hi) - m.cdf(lo)) == pytest.approx(0.4, abs=1e-9)


@pytest.mark.parametrize("transform", [None, "exp"])
def test_hpd_of_draws_is_the_narrowest_span_holding_the_draws(transform):
    x = np.random.default_rng(3).gamma(2.0, 0.4, size=2001) - 0.5
    g = np.exp if transform else (lambda t: t)
    xs = np.sort(g(x))
    n_in = int(np.floor(0.9 * xs.size)) + 1  # ArviZ's convention: floor(prob n) + 1 draws
    widths = [xs[i + n_in - 1] - xs[i] for i in range(xs.size - n_in + 1)]
    i = int(np.argmin(widths))
    assert DrawsMarginal(x).hpd(0.9, transform=transform) == pytest.approx((xs[i], xs[i + n_in - 1]), rel=1e-14)


@pytest.mark.parametrize("transform", [None, "exp"])
def test_hpd_of_weighted_draws_by_brute_force(transform):
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=300), rng.uniform(0.1, 1.0, 300)
    g = np.exp if transform else (lambda t: t)
    o = np.argsort(x)
    xs, ws = g(x[o]), w[o] / w.sum()
    best = (np.inf, None)
    for i in range(xs.size):  # every span [x_i, x_j] holding at least 80% of the weight
        for j in range(i, xs.size):
            if ws[i:j + 1].sum() >= 0.8 - 1e-12:
                if xs[j] - xs[i] < best[0]:
                    best = (xs[j] - xs[i], (xs[i], xs[j]))
                break
    assert WeightedDrawsMarginal(x, w).hpd(0.8, transform=transform) == pytest.approx(best[1], rel=1e-14)


def test_hpd_with_an_atom():
    """Spike at 0 (mass 0.6) and N(0.3, 0.1^2) (0.4): a 95% interval must hold the spike and reach right to u
    with 0.6 + 0.4 (Phi((u - 0.3) / 0.1) - Phi(-3)) = 0.95; a 50% one is the spike alone."""
    mm = MixedMarginal([0.6, 0.4], [PointMass(0.0), MixtureMarginal([1.0], [0.3], [0.1])])
    u = 0.3 + 0.1 * stats.norm.ppf(0.35 / 0.4 + stats.norm.cdf(-3.0))
    lo, hi = mm.hpd(0.95)
    assert lo == 0.0 and hi == pytest.approx(u, abs=1e-9)
    assert mm.hpd(0.5) == (0.0, 0.0)
    lo, hi = mm.hpd(0.95, transform="exp")
    assert lo == 1.0 and hi == pytest.approx(math.exp(u), abs=1e-9)
    assert PointMass(0.2).hpd(0.9, transform="exp") == (math.exp(0.2), math.exp(0.2))


def test_hpd_rejects_bad_arguments():
    m = MixtureMarginal([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="prob"):
        m.hpd(1.0)
    with pytest.raises(ValueError, match="transform"):
        m.hpd(0.9, transform="log")


@pytest.mark.parametrize("w0, m, s, prob", [(0.1, 0.3, 0.2, 0.9), (0.3, 0.05, 0.2, 0.9)])
def test_hpd_with_the_atom_inside(w0, m, s, prob):
    """An atom at 0 (mass w0) inside the interval: the normal part supplies prob - w0 with equal end densities,
    i.e. m +/- z s with Phi(z) = 1/2 + (prob - w0) / (2 (1 - w0))."""
    mm = MixedMarginal([w0, 1 - w0], [PointMass(0.0), MixtureMarginal([1.0], [m], [s])])
    z = stats.norm.ppf(0.5 + (prob - w0) / (2 * (1 - w0)))
    lo, hi = mm.hpd(prob)
    assert lo == pytest.approx(m - z * s, abs=1e-10) and hi == pytest.approx(m + z * s, abs=1e-10)
    assert lo < 0 < hi


def test_hpd_of_a_model_average_with_draws_uses_the_cdf_search():
    """A component without a density (draws) sends the model average to the CDF search: against a brute-force
    search of the same CDF on a dense grid."""
    draws = np.random.default_rng(2).normal(0.5, 0.2, 4001)
    mm = MixedMarginal([0.2, 0.5, 0.3], [PointMass(0.0), MixtureMarginal([1.0], [0.4], [0.15]), DrawsMarginal(draws)])
    x = np.union1d(np.linspace(-0.6, 1.6, 200_001), [0.0])
    F, Fb = mm.cdf(x), mm.prob_below(x)
    j = np.searchsorted(F, Fb + 0.9 - 1e-13)
    ok = j < x.size
    width = np.where(ok, x[np.minimum(j, x.size - 1)] - x, np.inf)
    i = int(np.argmin(width))
    lo, hi = mm.hpd(0.9)
    assert hi - lo == pytest.approx(width[i], abs=2.5e-5)
    assert float(mm.cdf(np.array(hi)) - mm.prob_below(np.array(lo))) >= 0.9 - 1e-9
