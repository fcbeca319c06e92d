"""Marginals with atoms and weighted draws, against closed forms.

``PointMass`` / ``MixedMarginal`` (model averages of a Bayes factor) and
``WeightedDrawsMarginal`` (power-scaling): CDFs, left limits, moments and the
generalised inverse ``inf{x: F(x) >= q}``, checked against normal CDFs and
quantiles from scipy and hand-computed step functions.
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
