"""Priors as data: densities against closed forms, parsing, serialisation, the MCID prior panel.

Every expected density below is written out from its textbook formula with the ``math``
module (not scipy, which the library itself uses); normalisation is checked with
QUADPACK (``scipy.integrate.quad``); the tau CDFs of the log(tau^2) priors are checked
against the closed form P(log tau^2 <= 2 log t) of the normal / Student-t distribution.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from ketabayes.errors import KetabayesError, PriorError
from ketabayes.model import priors as P
from ketabayes.model.priors import (
    DEFAULT_TAU_PRIOR,
    default_tau_prior,
    parse_prior,
    prior_from_dict,
    prior_panel,
    rhodes_prior,
    turner_prior,
)

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------
# closed-form log densities, written out independently of the library
# ---------------------------------------------------------------------------
def ref_normal(x, mu, s):
    return -LOG_SQRT_2PI - math.log(s) - (x - mu) ** 2 / (2 * s * s)


def ref_halfnormal(x, s):
    return math.log(2.0) - LOG_SQRT_2PI - math.log(s) - x * x / (2 * s * s) if x >= 0 else -math.inf


def ref_halfcauchy(x, b):
    return math.log(2.0 / (math.pi * b)) - math.log1p((x / b) ** 2) if x >= 0 else -math.inf


def ref_t_logpdf(z, nu):
    """log density of the standard Student-t with nu degrees of freedom."""
    return (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
            - (nu + 1) / 2 * math.log1p(z * z / nu))


def ref_halfstudentt(x, nu, s):
    return math.log(2.0) + ref_t_logpdf(x / s, nu) - math.log(s) if x >= 0 else -math.inf


def ref_exponential(x, lam):
    return math.log(lam) - lam * x if x >= 0 else -math.inf


def ref_uniform(x, lo, hi):
    return -math.log(hi - lo) if lo <= x <= hi else -math.inf


def ref_lognormaltau2(t, mu, s):
    """log(tau^2) ~ N(mu, s^2): density of tau = N(2 log t) * |d(2 log t)/dt| = N(2 log t) * 2/t."""
    return ref_normal(2 * math.log(t), mu, s) + math.log(2.0 / t)


def ref_logttau2(t, mu, s, nu):
    return ref_t_logpdf((2 * math.log(t) - mu) / s, nu) - math.log(s) + math.log(2.0 / t)


# (prior, reference log density, points at which to compare)
CASES = [
    (P.Normal(0.3, 1.7), lambda x: ref_normal(x, 0.3, 1.7), [-4.0, -0.5, 0.3, 2.2, 6.0]),
    (P.Normal(-10, 50), lambda x: ref_normal(x, -10, 50), [-200.0, -10.0, 0.0, 75.0]),
    (P.HalfNormal(0.5), lambda x: ref_halfnormal(x, 0.5), [0.0, 0.01, 0.4, 1.3, 3.0]),
    (P.HalfNormal(12.0), lambda x: ref_halfnormal(x, 12.0), [0.0, 1.0, 12.0, 40.0]),
    (P.HalfCauchy(0.7), lambda x: ref_halfcauchy(x, 0.7), [0.0, 0.2, 0.7, 5.0, 100.0]),
    (P.HalfStudentT(3.0, 0.8), lambda x: ref_halfstudentt(x, 3.0, 0.8), [0.0, 0.3, 0.8, 4.0, 30.0]),
    (P.HalfStudentT(7.5, 2.0), lambda x: ref_halfstudentt(x, 7.5, 2.0), [0.0, 1.0, 5.0]),
    (P.Exponential(2.5), lambda x: ref_exponential(x, 2.5), [0.0, 0.1, 1.0, 4.0]),
    (P.Uniform(0.0, 2.0), lambda x: ref_uniform(x, 0.0, 2.0), [0.0, 0.5, 1.999]),
    (P.Uniform(0.5, 3.0), lambda x: ref_uniform(x, 0.5, 3.0), [0.5, 1.0, 2.9]),
    (P.LogNormalTau2(-2.56, 1.74), lambda x: ref_lognormaltau2(x, -2.56, 1.74), [1e-3, 0.05, 0.28, 1.0, 4.0]),
    (P.LogStudentTTau2(-3.44, 2.59, 5.0), lambda x: ref_logttau2(x, -3.44, 2.59, 5.0),
     [1e-4, 0.02, 0.18, 1.0, 10.0]),
    (P.LogStudentTTau2(-1.0, 0.5, 4.0), lambda x: ref_logttau2(x, -1.0, 0.5, 4.0), [0.1, 0.6, 2.0]),
]
IDS = [str(c[0]) for c in CASES]


@pytest.mark.parametrize(("prior", "ref", "points"), CASES, ids=IDS)
def test_logpdf_matches_closed_form(prior, ref, points):
    got = np.asarray(prior.logpdf(np.array(points)), dtype=float)
    want = np.array([ref(x) for x in points])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # scalar input gives the same value
    assert float(prior.logpdf(points[1])) == pytest.approx(ref(points[1]), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("prior", [c[0] for c in CASES if c[0].support == "positive"], ids=lambda p: str(p))
def test_scale_priors_have_zero_density_below_zero(prior):
    assert np.all(np.asarray(prior.logpdf(np.array([-1.0, -1e-9]))) == -np.inf)


def test_uniform_has_zero_density_outside_its_bounds():
    p = P.Uniform(0.5, 3.0)
    assert np.all(np.asarray(p.logpdf(np.array([0.49, 3.01, 10.0]))) == -np.inf)


def test_flat_prior_is_improper_and_constant():
    p = P.Flat()
    assert not p.proper
    np.testing.assert_array_equal(p.logpdf(np.array([-1e6, 0.0, 3.0])), np.zeros(3))
    assert all(c[0].proper for c in CASES)


@pytest.mark.parametrize("prior", [c[0] for c in CASES], ids=IDS)
def test_density_integrates_to_one(prior):
    if isinstance(prior, P._Tau2Prior):
        # integrate in u = log(tau): the mass sits over many orders of magnitude of tau
        # (heavy log-t tails: integrate far out, in two pieces around the bulk)
        f = lambda u: math.exp(float(prior.logpdf(math.exp(u))) + u)  # noqa: E731
        total = integrate.quad(f, -300, 0, limit=400)[0] + integrate.quad(f, 0, 300, limit=400)[0]
    else:
        lo, hi = prior.bounds()
        center = float(getattr(prior, "mu", 0.0))
        if math.isinf(lo) and math.isinf(hi):
            total = sum(integrate.quad(lambda x: math.exp(float(prior.logpdf(x))), a, b, limit=400)[0]
                        for a, b in ((-math.inf, center), (center, math.inf)))
        else:
            total = integrate.quad(lambda x: math.exp(float(prior.logpdf(x))), lo, hi, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("t", [0.01, 0.1, 0.3, 1.0, 3.0])
@pytest.mark.parametrize(
    ("prior", "cdf_log_tau2"),
    [
        (P.LogNormalTau2(-2.56, 1.74), lambda l: stats.norm.cdf(l, -2.56, 1.74)),
        (P.LogNormalTau2(-4.0, 0.6), lambda l: stats.norm.cdf(l, -4.0, 0.6)),
        (P.LogStudentTTau2(-3.44, 2.59, 5.0), lambda l: stats.t.cdf((l + 3.44) / 2.59, 5.0)),
        (P.LogStudentTTau2(-1.0, 0.5, 4.0), lambda l: stats.t.cdf((l + 1.0) / 0.5, 4.0)),
    ],
    ids=["LN(-2.56,1.74)", "LN(-4,0.6)", "logt(-3.44,2.59,5)", "logt(-1,0.5,4)"],
)
def test_tau_cdf_from_logpdf_equals_closed_form_on_log_tau2(prior, cdf_log_tau2, t):
    # P(tau <= t) = P(log tau^2 <= 2 log t); integrate the tau density in u = log tau
    got, _ = integrate.quad(lambda u: math.exp(float(prior.logpdf(math.exp(u))) + u), -300, math.log(t),
                            limit=400, epsabs=1e-12)
    assert got == pytest.approx(float(cdf_log_tau2(2 * math.log(t))), abs=1e-8)


# ---------------------------------------------------------------------------
# string form and parsing
# ---------------------------------------------------------------------------
ROUND_TRIP = [
    P.Normal(0, 50), P.Normal(-0.25, 1.5), P.Flat(), P.HalfNormal(10), P.HalfNormal(0.5), P.HalfCauchy(1),
    P.HalfStudentT(3, 2.5), P.Exponential(4), P.Uniform(0, 5), P.Uniform(0.1, 2),
    P.LogNormalTau2(-2.56, 1.74), P.LogStudentTTau2(-3.44, 2.59, 5), P.LogStudentTTau2(-2, 1, 7),
]


@pytest.mark.parametrize("prior", ROUND_TRIP, ids=lambda p: str(p))
def test_string_form_round_trips(prior):
    text = str(prior)
    assert parse_prior(text) == prior
    # whitespace and case do not matter
    assert parse_prior("  " + text.upper().replace(", ", ",") + " ") == prior


def test_string_form_keeps_six_significant_digits():
    # the string form is meant for people (6 significant digits); the dict form is exact
    p = P.Normal(0.0, 10 / stats.norm.ppf(0.95))
    back = parse_prior(str(p))
    assert back.sigma == pytest.approx(p.sigma, rel=1e-6)
    assert prior_from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal(0, 2)", P.Normal(0, 2)),
        ("N(1, 3)", P.Normal(1, 3)),
        ("gaussian(1, 3)", P.Normal(1, 3)),
        ("flat()", P.Flat()),
        ("improper()", P.Flat()),
        ("halfnormal(0.5)", P.HalfNormal(0.5)),
        ("hn(0.5)", P.HalfNormal(0.5)),
        ("half-normal(0.5)", P.HalfNormal(0.5)),
        ("half_normal(0.5)", P.HalfNormal(0.5)),
        ("halfcauchy(2)", P.HalfCauchy(2)),
        ("hc(2)", P.HalfCauchy(2)),
        ("half-cauchy(2)", P.HalfCauchy(2)),
        ("half_cauchy(2)", P.HalfCauchy(2)),
        ("halfstudentt(3, 1)", P.HalfStudentT(nu=3, sigma=1)),
        ("halft(3, 1)", P.HalfStudentT(nu=3, sigma=1)),
        ("half-t(3, 1)", P.HalfStudentT(nu=3, sigma=1)),
        ("half-student-t(3, 1)", P.HalfStudentT(nu=3, sigma=1)),
        ("half_student_t(3, 1)", P.HalfStudentT(nu=3, sigma=1)),
        ("exponential(2)", P.Exponential(2)),
        ("exp(2)", P.Exponential(2)),
        ("uniform(0, 4)", P.Uniform(0, 4)),
        ("unif(4)", P.Uniform(0, 4)),
        ("uniform(4)", P.Uniform(0, 4)),
        ("lognormaltau2(-2, 1.5)", P.LogNormalTau2(-2, 1.5)),
        ("lognormal(-2, 1.5)", P.LogNormalTau2(-2, 1.5)),
        ("logttau2(-3, 2, 5)", P.LogStudentTTau2(-3, 2, 5)),
        ("logt(-3, 2)", P.LogStudentTTau2(-3, 2, 5)),  # nu defaults to 5 (Rhodes et al. 2015)
        ("logstudentttau2(-3, 2, 4)", P.LogStudentTTau2(-3, 2, 4)),
    ],
)
def test_parse_aliases(text, expected):
    got = parse_prior(text)
    assert got == expected
    assert type(got) is type(expected)
    # and the canonical string of what was parsed reads back to the same prior
    assert parse_prior(str(got)) == got


def test_parse_turner_and_rhodes():
    t = parse_prior("turner(all-cause mortality, pharmacological vs. placebo)")
    assert t == turner_prior("all-cause mortality", "pharmacological vs. placebo / control")
    assert isinstance(t, P.LogNormalTau2) and "Turner" in t.citation
    assert parse_prior("turner('general')") == turner_prior("general")
    # the marginal ("general") predictive distribution of Turner et al. 2015: LN(-2.56, 1.74^2)
    g = parse_prior("turner(general)")
    assert (g.mu, g.sigma) == (-2.56, 1.74)
    r = parse_prior('rhodes("general")')
    assert r == rhodes_prior("general")
    assert isinstance(r, P.LogStudentTTau2) and r.nu == 5 and "Rhodes" in r.citation
    r2 = parse_prior("rhodes(mental health outcome, pharmacological vs. placebo, other)")
    assert r2 == rhodes_prior("mental health outcome", "pharmacological vs. placebo / control", "other")
    # the numbers survive the string form (the citation is kept by the dict form)
    for p in (t, g, r, r2):
        assert parse_prior(str(p)) == dataclasses.replace(p, citation="")
        assert prior_from_dict(p.to_dict()) == p


def test_parse_passes_priors_and_dicts_through():
    p = P.HalfCauchy(0.3)
    assert parse_prior(p) is p
    assert parse_prior({"kind": "halfcauchy", "beta": 0.3}) == p


@pytest.mark.parametrize("prior", [*ROUND_TRIP, P.Normal(0, 1, label="sceptical"), turner_prior("general"),
                                   rhodes_prior("general")], ids=lambda p: repr(p))
def test_dict_round_trip_through_json(prior):
    d = prior.to_dict()
    assert d["kind"] == prior.kind
    assert prior_from_dict(d) == prior
    assert prior_from_dict(json.loads(json.dumps(d))) == prior


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("halfnormall(1)", r"unknown prior 'halfnormall'.*did you mean 'halfnormal'"),
        ("halfcauhy(1)", r"did you mean 'halfcauchy'"),
        ("normal(0)", r"normal takes 2 argument\(s\), got 1"),
        ("halfnormal(1, 2)", r"halfnormal takes 1 argument\(s\), got 2"),
        ("flat(1)", r"flat takes 0 argument\(s\), got 1"),
        ("uniform(1, 2, 3)", r"uniform takes 1 or 2 argument\(s\), got 3"),
        ("normal(zero, 1)", r"arguments must be numbers"),
        ("halfnormal(ten)", r"arguments must be numbers"),
        ("halfnormal(-1)", r"'sigma' must be a positive finite number, got -1"),
        ("normal(0, -2)", r"'sigma' must be a positive finite number"),
        ("halfnormal(0)", r"'sigma' must be a positive finite number"),
        ("halfcauchy(inf)", r"'beta' must be a positive finite number"),
        ("normal(nan, 1)", r"'mu' must be a finite number"),
        ("exponential(-3)", r"'lam' must be a positive"),
        ("uniform(3, 1)", r"need 0 <= lower < upper"),
        ("uniform(-1, 1)", r"need 0 <= lower < upper"),
        ("halfnormal 10", r"cannot read prior"),
        ("", r"cannot read prior"),
        ("turner(nonsense outcome)", r"unknown; choose one of"),
    ],
)
def test_bad_prior_strings_raise_clear_prior_errors(text, match):
    with pytest.raises(PriorError, match=match) as info:
        parse_prior(text)
    assert isinstance(info.value, ValueError)  # a KetabayesError is a ValueError


def test_non_string_input_and_unknown_dict_kind():
    with pytest.raises(PriorError, match="cannot read a prior from 10"):
        parse_prior(10)
    with pytest.raises(PriorError, match="unknown prior kind 'gamma'"):
        prior_from_dict({"kind": "gamma", "alpha": 1})


# ---------------------------------------------------------------------------
# prior panel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mcid", [10.0, 0.2231435513142097, 1])
def test_prior_panel_lower_is_better(mcid):
    panel = prior_panel(mcid, "lower")
    sc, ne, en = panel["sceptical"], panel["neutral"], panel["enthusiastic"]
    assert stats.norm.cdf(-mcid, sc.mu, sc.sigma) == pytest.approx(0.05, abs=1e-12)  # P(benefit beyond MCID)
    assert sc.mu == 0.0
    assert en.mu == -mcid
    assert stats.norm.sf(0.0, en.mu, en.sigma) == pytest.approx(0.05, abs=1e-12)  # P(no benefit or harm)
    assert (ne.mu, ne.sigma) == (0.0, pytest.approx(5 * mcid, rel=1e-15))
    # with sd 5 x MCID, P(|mu| > MCID) = 2 Phi(-1/5) = 0.8415 (the docstring's "84%")
    assert 2 * stats.norm.cdf(-mcid, 0, ne.sigma) == pytest.approx(2 * stats.norm.cdf(-0.2), rel=1e-12)
    assert [name for name, _ in panel] == ["sceptical", "neutral", "enthusiastic"]
    assert [p.label for _, p in panel] == ["sceptical", "neutral", "enthusiastic"]
    assert panel.mcid == mcid and panel.benefit == "lower"
    text = panel.describe()
    assert all(name in text for name in ("sceptical", "neutral", "enthusiastic"))


@pytest.mark.parametrize("mcid", [10.0, 0.5])
def test_prior_panel_higher_is_better(mcid):
    panel = prior_panel(mcid, "higher")
    sc, ne, en = panel["sceptical"], panel["neutral"], panel["enthusiastic"]
    assert stats.norm.sf(mcid, sc.mu, sc.sigma) == pytest.approx(0.05, abs=1e-12)
    assert en.mu == mcid
    assert stats.norm.cdf(0.0, en.mu, en.sigma) == pytest.approx(0.05, abs=1e-12)
    assert ne.sigma == pytest.approx(5 * mcid, rel=1e-15)


def test_prior_panel_accepts_numpy_integers():
    panel = prior_panel(np.int64(10), "lower")
    assert stats.norm.cdf(-10, 0, panel["sceptical"].sigma) == pytest.approx(0.05, abs=1e-12)


def test_prior_panel_neutral_factor_and_errors():
    assert prior_panel(2.0, neutral_sd_factor=3)["neutral"].sigma == pytest.approx(6.0)
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(PriorError, match="MCID must be a positive number"):
            prior_panel(bad)
    with pytest.raises(PriorError, match="benefit must be 'lower' or 'higher'"):
        prior_panel(1.0, "up")


# ---------------------------------------------------------------------------
# default prior for tau
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["OR", "RR", "SMD", "or", "smd"])
def test_default_tau_prior_for_unitless_measures(measure):
    assert default_tau_prior(measure) == P.HalfNormal(0.5)
    assert DEFAULT_TAU_PRIOR == P.HalfNormal(0.5)


def test_default_tau_prior_for_md_is_half_the_unit_information_sd():
    # three MD trials: sd within arms ~ 20, total sample sizes 40, 100, 250
    n = np.array([40.0, 100.0, 250.0])
    vi = np.array([20.0**2 * 4 / 40, 22.0**2 * 4 / 100, 18.0**2 * 4 / 250])
    uisd = math.sqrt((40 + 100 + 250) / (1 / vi[0] + 1 / vi[1] + 1 / vi[2]))
    # sanity of the independent computation: UISD is the pooled "2 x per-arm SD" scale
    assert 36 < uisd < 44
    got = default_tau_prior("MD", vi, n)
    assert isinstance(got, P.HalfNormal)
    assert got.sigma == pytest.approx(0.5 * uisd, rel=5e-4)  # stored rounded to 4 significant digits


@pytest.mark.parametrize("args", [(None, None), (np.array([1.0, 2.0]), None),
                                  (np.array([1.0, 2.0]), np.array([10.0, np.nan]))])
def test_default_tau_prior_for_md_needs_sample_sizes(args):
    with pytest.raises(PriorError, match=r"no default prior for tau on the MD scale without sample sizes"):
        default_tau_prior("MD", *args)


# ---------------------------------------------------------------------------
# PyMC variables
# ---------------------------------------------------------------------------
def _pymc_logp(prior, values):
    import pymc as pm

    with pm.Model():
        rv = prior.to_pymc("x")
        return np.array([float(pm.logp(rv, v).eval()) for v in values])


@pytest.mark.parametrize(
    ("prior", "values"),
    [
        (P.Normal(0.3, 1.7), [-2.0, 0.3, 4.0]),
        (P.HalfNormal(0.5), [0.01, 0.4, 2.0]),
        (P.HalfCauchy(0.7), [0.05, 0.7, 10.0]),
        (P.HalfStudentT(3.0, 0.8), [0.1, 0.8, 5.0]),
        (P.Exponential(2.5), [0.01, 1.0, 3.0]),
        (P.Uniform(0.0, 2.0), [0.1, 1.0, 1.9]),
        (P.Uniform(0.5, 3.0), [0.6, 2.9]),
    ],
    ids=lambda v: str(v) if isinstance(v, P.Prior) else "",
)
def test_to_pymc_logp_matches_logpdf(prior, values):
    # Tolerance 1e-6, not 1e-12: PyTensor turns Python floats that are exact in float32 (0.5, 2.5, 3.0)
    # into float32 constants, so e.g. Uniform(0.5, 3) gives -log(2.5) in float32 (off by 2.8e-8), and
    # PyMC's HalfNormal constant is off by 1.9e-9. A wrong parameterisation (scale vs rate, sd vs
    # variance, a missing factor 2 for the half distributions) is off by O(0.1) or more.
    np.testing.assert_allclose(_pymc_logp(prior, values), prior.logpdf(np.array(values)), rtol=0, atol=1e-6)


def test_flat_to_pymc_is_flat():
    np.testing.assert_allclose(_pymc_logp(P.Flat(), [-5.0, 0.0, 7.0]), 0.0)


@pytest.mark.parametrize("prior", [P.LogNormalTau2(-2.56, 1.74), P.LogStudentTTau2(-3.44, 2.59, 5.0)],
                         ids=str)
def test_tau2_priors_to_pymc_imply_the_same_tau_density(prior):
    # PyMC gets log(tau^2) as the random variable and tau = exp(log(tau^2) / 2) as a Deterministic;
    # the implied density of tau is p_l(2 log t) * 2 / t (change of variables)
    import pymc as pm

    with pm.Model() as model:
        tau = prior.to_pymc("tau")
        assert "tau" in model.named_vars and tau in model.deterministics
        log_tau2 = model["log_tau2"]
        t = np.array([0.01, 0.2, 1.0, 3.0])
        l_logp = np.array([float(pm.logp(log_tau2, 2 * math.log(x)).eval()) for x in t])
    np.testing.assert_allclose(l_logp + np.log(2 / t), prior.logpdf(t), rtol=0, atol=1e-6)  # see above


def test_prior_for_mu_must_be_normal_or_flat():
    import ketabayes as kb

    with pytest.raises(KetabayesError, match="prior_mu must be a prior on the real line"):
        kb.RandomEffectsModel.from_arrays([0.1, 0.2], [0.01, 0.02], prior_mu="halfnormal(1)")
    with pytest.raises(KetabayesError, match="prior_tau must be a prior on tau > 0"):
        kb.RandomEffectsModel.from_arrays([0.1, 0.2], [0.01, 0.02], prior_tau="normal(0, 1)")
