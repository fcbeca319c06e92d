"""Decision thresholds and probabilities against normal closed forms (scipy.stats.norm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ketabayes.decision import (
    VERDICTS,
    Thresholds,
    VerdictRule,
    benefit_curve,
    decision_probabilities,
    verdict,
)
from ketabayes.errors import KetabayesError
from ketabayes.marginals import DrawsMarginal, MixtureMarginal

LOG125 = math.log(1.25)


# ---------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------
def test_cuts_for_differences():
    assert Thresholds(10, "lower").cuts() == (-10.0, 10.0)
    assert Thresholds(10, "higher").cuts() == (-10.0, 10.0)
    assert Thresholds(0.3).cuts() == (-0.3, 0.3)


@pytest.mark.parametrize("mcid", [1.25, 0.8])
@pytest.mark.parametrize("benefit", ["lower", "higher"])
def test_ratio_cuts_are_symmetric_on_the_log_scale(mcid, benefit):
    lo, hi = Thresholds(mcid, benefit, ratio=True).cuts()
    assert lo == pytest.approx(-LOG125, rel=1e-14)
    assert hi == pytest.approx(LOG125, rel=1e-14)
    assert Thresholds(mcid, benefit, ratio=True).delta_benefit == pytest.approx(LOG125, rel=1e-14)


def test_harm_threshold_different_from_mcid():
    # lower is better: benefit below -MCID, harm above +harm
    assert Thresholds(10, "lower", harm=5).cuts() == (-10.0, 5.0)
    # higher is better: benefit above +MCID, harm below -harm
    assert Thresholds(10, "higher", harm=5).cuts() == (-5.0, 10.0)
    lo, hi = Thresholds(0.8, "lower", harm=1.1, ratio=True).cuts()
    assert (lo, hi) == (pytest.approx(-LOG125), pytest.approx(math.log(1.1)))
    lo, hi = Thresholds(1.5, "higher", harm=1.1, ratio=True).cuts()
    assert (lo, hi) == (pytest.approx(-math.log(1.1)), pytest.approx(math.log(1.5)))
    th = Thresholds(10, "lower", harm=5)
    assert (th.delta_benefit, th.delta_harm) == (10.0, 5.0)
    assert Thresholds(10).delta_harm == 10.0  # harm defaults to the MCID


def test_for_measure_sets_the_ratio_flag():
    assert Thresholds.for_measure(1.25, "OR").ratio
    assert Thresholds.for_measure(1.25, "rr").ratio
    for m in ("MD", "SMD", "RD", "GEN", None):
        assert not Thresholds.for_measure(1.25, m).ratio


def test_describe_names_the_regions():
    text = Thresholds(1.25, "lower", ratio=True).describe("OR")
    assert "benefit: OR < 0.8" in text and "harm: OR > 1.25" in text and "lower is better" in text
    text = Thresholds(10, "higher", harm=5).describe("MD")
    assert "benefit: MD > 10" in text and "harm: MD < -5" in text and "higher is better" in text


def test_thresholds_dict_round_trip():
    for th in (Thresholds(10), Thresholds(0.8, "higher", harm=1.1, ratio=True)):
        assert Thresholds.from_dict(th.to_dict()) == th


@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, "10"])
def test_mcid_must_be_positive(bad):
    with pytest.raises(KetabayesError, match="mcid must be a positive number"):
        Thresholds(bad)


def test_mcid_none_is_rejected():
    with pytest.raises(KetabayesError, match="mcid must be a positive number"):
        Thresholds(None)


def test_harm_must_be_positive():
    with pytest.raises(KetabayesError, match="harm must be a positive number"):
        Thresholds(10, harm=0)
    with pytest.raises(KetabayesError, match="harm must be a positive number"):
        Thresholds(10, harm=-3)


def test_ratio_thresholds_must_differ_from_one():
    with pytest.raises(KetabayesError, match="must differ from 1"):
        Thresholds(1, ratio=True)
    with pytest.raises(KetabayesError, match="must differ from 1"):
        Thresholds(1.0, ratio=True)
    with pytest.raises(KetabayesError, match="harm is a ratio for OR/RR and must differ from 1"):
        Thresholds(1.25, harm=1, ratio=True)
    assert Thresholds(1, ratio=False).cuts() == (-1.0, 1.0)  # fine for a difference


@pytest.mark.parametrize("bad", ["Lower", "up", "", None])
def test_benefit_must_be_lower_or_higher(bad):
    with pytest.raises(KetabayesError, match="benefit must be 'lower' or 'higher'"):
        Thresholds(10, bad)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        Thresholds(-1)


# ---------------------------------------------------------------------------
# decision probabilities
# ---------------------------------------------------------------------------
NORMALS = [(-0.3, 0.2), (0.0, 1.0), (4.0, 7.5), (-15.79, 8.3159)]
THRESHOLDS = [Thresholds(10), Thresholds(0.25, "higher"), Thresholds(10, harm=4), Thresholds(5, "higher", harm=2),
              Thresholds(1.25, ratio=True), Thresholds(0.8, "higher", harm=1.1, ratio=True)]


def _closed_form(m, s, th):
    lo, hi = th.cuts()
    below_lo, below_hi, below_0 = (stats.norm.cdf(c, m, s) for c in (lo, hi, 0.0))
    if th.benefit == "lower":
        return {"p_benefit": below_lo, "p_trivial": below_hi - below_lo, "p_harm": stats.norm.sf(hi, m, s),
                "p_any_benefit": below_0}
    return {"p_benefit": stats.norm.sf(hi, m, s), "p_trivial": below_hi - below_lo, "p_harm": below_lo,
            "p_any_benefit": stats.norm.sf(0.0, m, s)}


@pytest.mark.parametrize("th", THRESHOLDS, ids=lambda t: f"{t.mcid}-{t.benefit}-{t.harm}-{t.ratio}")
@pytest.mark.parametrize(("m", "s"), NORMALS)
def test_decision_probabilities_single_normal(m, s, th):
    got = decision_probabilities(MixtureMarginal([1.0], [m], [s]), th)
    want = _closed_form(m, s, th)
    assert set(got) == {"p_benefit", "p_trivial", "p_harm", "p_any_benefit"}
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-14), k
    assert got["p_benefit"] + got["p_trivial"] + got["p_harm"] == pytest.approx(1.0, abs=1e-14)
    assert all(0.0 <= v <= 1.0 for v in got.values())


def test_decision_probabilities_two_component_mixture():
    w, ms, ss = np.array([0.3, 0.7]), np.array([-12.0, 2.0]), np.array([4.0, 6.0])
    th = Thresholds(10, "lower", harm=5)
    got = decision_probabilities(MixtureMarginal(w * 10, ms, ss), th)  # weights are normalised
    parts = [_closed_form(m, s, th) for m, s in zip(ms, ss, strict=True)]
    for k in got:
        assert got[k] == pytest.approx(w[0] * parts[0][k] + w[1] * parts[1][k], abs=1e-14)


def test_p_any_benefit_is_the_probability_of_the_benefit_side_of_zero():
    marg = MixtureMarginal([1.0], [-0.5], [0.5])
    assert decision_probabilities(marg, Thresholds(1.25, "lower", ratio=True))["p_any_benefit"] == \
        pytest.approx(stats.norm.cdf(1.0), abs=1e-14)
    assert decision_probabilities(marg, Thresholds(1.25, "higher", ratio=True))["p_any_benefit"] == \
        pytest.approx(stats.norm.cdf(-1.0), abs=1e-14)
    # any benefit includes the benefit beyond the MCID
    p = decision_probabilities(marg, Thresholds(0.2, "lower"))
    assert p["p_any_benefit"] >= p["p_benefit"]


def test_decision_probabilities_from_draws_are_counts():
    rng = np.random.default_rng(3)
    x = rng.normal(-3.0, 8.0, size=(2, 500))
    th = Thresholds(10, "lower", harm=5)
    got = decision_probabilities(DrawsMarginal(x), th)
    n = x.size
    assert got["p_benefit"] == np.sum(x <= -10) / n
    assert got["p_harm"] == pytest.approx(np.sum(x > 5) / n, abs=1e-15)
    assert got["p_trivial"] == pytest.approx(np.sum((x > -10) & (x <= 5)) / n, abs=1e-15)
    assert got["p_any_benefit"] == np.sum(x <= 0) / n


def test_mixture_marginal_moments_and_quantiles_match_normal():
    marg = MixtureMarginal([1.0], [1.5], [0.7])
    assert marg.mean == pytest.approx(1.5, abs=1e-14)
    assert marg.sd == pytest.approx(0.7, abs=1e-14)
    q = np.array([0.025, 0.5, 0.975])
    np.testing.assert_allclose(marg.ppf(q), stats.norm.ppf(q, 1.5, 0.7), atol=1e-10)


# ---------------------------------------------------------------------------
# benefit curve
# ---------------------------------------------------------------------------
def test_benefit_curve_difference_lower():
    m, s = -6.0, 4.0
    t = np.array([0.0, 2.5, 5.0, 10.0, 20.0])
    df = benefit_curve(MixtureMarginal([1.0], [m], [s]), t, benefit="lower")
    assert list(df.columns) == ["threshold", "p_benefit"]
    np.testing.assert_array_equal(df["threshold"].to_numpy(), t)
    np.testing.assert_allclose(df["p_benefit"].to_numpy(), stats.norm.cdf(-t, m, s), atol=1e-14)
    assert np.all(np.diff(df["p_benefit"].to_numpy()) < 0)  # larger benefits are less probable


def test_benefit_curve_difference_higher():
    m, s = 0.4, 0.3
    t = np.array([0.0, 0.1, 0.5, 1.0])
    df = benefit_curve(MixtureMarginal([1.0], [m], [s]), t, benefit="higher")
    np.testing.assert_allclose(df["p_benefit"].to_numpy(), stats.norm.sf(t, m, s), atol=1e-14)


def test_benefit_curve_ratio_reads_r_and_1_over_r_alike():
    m, s = -0.3, 0.2
    marg = MixtureMarginal([1.0], [m], [s])
    up = benefit_curve(marg, [1.0, 1.1, 1.25, 1.5], ratio=True)
    down = benefit_curve(marg, [1.0, 1 / 1.1, 0.8, 1 / 1.5], ratio=True)
    want = stats.norm.cdf(-np.log([1.0, 1.1, 1.25, 1.5]), m, s)
    np.testing.assert_allclose(up["p_benefit"].to_numpy(), want, atol=1e-14)
    np.testing.assert_allclose(down["p_benefit"].to_numpy(), want, atol=1e-14)
    # at threshold 1 (no benefit size) the curve is P(any benefit)
    assert up["p_benefit"].iloc[0] == pytest.approx(
        decision_probabilities(marg, Thresholds(1.25, ratio=True))["p_any_benefit"], abs=1e-15)


def test_benefit_curve_agrees_with_decision_probabilities_at_the_mcid():
    marg = MixtureMarginal([0.5, 0.5], [-8.0, 1.0], [3.0, 5.0])
    for benefit in ("lower", "higher"):
        curve = benefit_curve(marg, [10.0], benefit=benefit)
        assert curve["p_benefit"].iloc[0] == pytest.approx(
            decision_probabilities(marg, Thresholds(10, benefit))["p_benefit"], abs=1e-15)


# ---------------------------------------------------------------------------
# verdict
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probs", "cutoff", "expected"),
    [
        ((0.85, 0.15, 0.0), 0.8, "probable benefit"),
        ((0.80, 0.20, 0.0), 0.8, "probable benefit"),  # the cut-off itself counts
        ((0.79, 0.21, 0.0), 0.8, "uncertain"),
        ((0.0, 0.1, 0.9), 0.8, "probable harm"),
        ((0.05, 0.9, 0.05), 0.8, "practically no effect"),
        ((0.45, 0.55, 0.0), 0.8, "uncertain"),
        ((0.3, 0.4, 0.3), 0.8, "uncertain"),
        ((0.92, 0.08, 0.0), 0.95, "uncertain"),
        ((0.6, 0.4, 0.0), 0.55, "probable benefit"),
        ((1.0, 0.0, 0.0), 1.0, "probable benefit"),
    ],
)
def test_verdict_categories(probs, cutoff, expected):
    rule = VerdictRule(cutoff, cutoff, cutoff)
    assert rule(*probs) == expected
    assert verdict(*probs, rule=rule) == expected
    assert expected in VERDICTS


def test_verdict_default_rule_is_80_percent():
    assert verdict(0.80, 0.2, 0.0) == "probable benefit"
    assert verdict(0.79, 0.21, 0.0) == "uncertain"
    assert verdict(0.1, 0.1, 0.8) == "probable harm"
    assert verdict(0.1, 0.8, 0.1) == "practically no effect"


def test_verdict_separate_cutoffs():
    rule = VerdictRule(benefit=0.95, harm=0.6, trivial=0.9)
    assert rule(0.9, 0.1, 0.0) == "uncertain"
    assert rule(0.96, 0.04, 0.0) == "probable benefit"
    assert rule(0.0, 0.35, 0.65) == "probable harm"
    assert rule(0.05, 0.89, 0.06) == "uncertain"
    assert rule(0.05, 0.91, 0.04) == "practically no effect"


def test_verdict_on_arrays_and_missing_probabilities():
    got = verdict(np.array([0.9, 0.1, 0.1, 0.4]), np.array([0.1, 0.8, 0.1, 0.3]), np.array([0.0, 0.1, 0.8, 0.3]))
    assert got.tolist() == ["probable benefit", "practically no effect", "probable harm", "uncertain"]
    assert verdict(math.nan, 0.5, 0.5) == ""


@pytest.mark.parametrize("cutoff", [0.5, 0.3, 0.0, 1.01, -1, math.nan])
@pytest.mark.parametrize("which", ["benefit", "harm", "trivial"])
def test_verdict_cutoff_must_be_in_half_open_interval(cutoff, which):
    with pytest.raises(KetabayesError, match=rf"verdict cut-off '{which}' must be in \(0.5, 1\]"):
        VerdictRule(**{which: cutoff})


def test_a_point_mass_at_zero_is_not_any_benefit_in_either_direction():
    from ketabayes.decision import Thresholds, decision_probabilities
    from ketabayes.marginals import MixedMarginal, MixtureMarginal, PointMass

    # half the mass at exactly 0, half N(-1, 0.1^2) (essentially all below 0)
    m = MixedMarginal([0.5, 0.5], [PointMass(0.0), MixtureMarginal([1.0], [-1.0], [0.1])])
    lower = decision_probabilities(m, Thresholds(0.5, "lower"))
    assert lower["p_any_benefit"] == pytest.approx(0.5, abs=1e-12)
    assert lower["p_trivial"] == pytest.approx(0.5 + 0.5 * stats.norm.sf(-0.5, -1.0, 0.1), abs=1e-9)
    higher = decision_probabilities(m, Thresholds(0.5, "higher"))
    assert higher["p_any_benefit"] == pytest.approx(0.0, abs=1e-12)
