"""Tests of the empirical heterogeneity-prior tables (Turner 2015, Rhodes 2015).

The module's numbers were transcribed from bayesmeta (R/bayesmeta.R). The
expected numbers here come from a second, independent transcription of the
same published tables: the R package rnmamod by L. M. Spineli,
github.com/LoukiaSpin/rnmamod, R/table.tau2.empirical.prior_function.R
(function table_tau2_prior(), vectors ``mean_value`` / ``sd_value``, which
it prints as "LN(mean, sd^2)" and "t(location, scale^2, 5)"). Neither source
is the paper itself, which we could not access (see the module docstring).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest

from ketabayes.errors import PriorError
from ketabayes.model import _empirical_priors as ep

# ---------------------------------------------------------------------------
# rnmamod, measure == "OR" (Turner et al. 2015). Column-major over the 5
# comparison types (Pharma vs Placebo/control, Pharma vs Pharma, Non-pharma vs
# Placebo/control, Non-pharma vs Pharma, Non-pharma vs Non-pharma); within a
# column the 16 outcome types in Turner's order, then the 17th row "General
# healthcare setting" (the marginal prior).
RNMAMOD_TURNER_MEAN = [
    -3.95, -3.52, -3.71, -2.34, -2.14, -2.99, -2.71, -2.29, -1.87, -2.49, -2.06, -1.83, -2.54, -2.12, -1.77, -2.70, -2.56,
    -4.18, -3.75, -3.95, -2.58, -2.37, -3.23, -2.94, -2.53, -2.10, -2.73, -2.29, -2.06, -2.78, -2.35, -2.00, -2.93, -2.56,
    -4.17, -3.74, -3.93, -2.56, -2.36, -3.21, -2.93, -2.51, -2.10, -2.71, -2.28, -2.05, -2.77, -2.34, -1.99, -2.92, -2.56,
    -2.92, -2.49, -2.68, -1.31, -1.11, -1.96, -1.67, -1.26, -0.84, -1.46, -1.03, -0.80, -1.51, -1.09, -0.74, -1.67, -2.56,
    -3.50, -3.08, -3.27, -1.90, -1.69, -2.55, -2.26, -1.85, -1.43, -2.05, -1.61, -1.38, -2.10, -1.67, -1.33, -2.26, -2.56,
]  # fmt: skip
RNMAMOD_TURNER_SD = [
    1.34, 1.74, 1.74, 1.74, 1.74, 1.74, 1.74, 1.53, 1.52, 1.52, 1.51, 1.52, 1.54, 1.53, 1.52, 1.52, 1.74,
    1.41, 1.79, 1.79, 1.79, 1.79, 1.79, 1.79, 1.58, 1.58, 1.58, 1.58, 1.58, 1.60, 1.60, 1.58, 1.58, 1.74,
    1.55, 1.91, 1.91, 1.91, 1.91, 1.91, 1.92, 1.72, 1.71, 1.71, 1.71, 1.71, 1.73, 1.72, 1.71, 1.71, 1.74,
    1.02, 1.50, 1.51, 1.50, 1.50, 1.51, 1.51, 1.25, 1.24, 1.24, 1.24, 1.25, 1.27, 1.27, 1.24, 1.25, 1.74,
    1.26, 1.68, 1.68, 1.68, 1.68, 1.68, 1.68, 1.46, 1.45, 1.45, 1.45, 1.45, 1.47, 1.47, 1.45, 1.45, 1.74,
]  # fmt: skip

# rnmamod, measure == "SMD" (Rhodes et al. 2015), one table per medical area.
# Rows (13): Obstetric; Resource use; Internal/external structure; General
# physical health; Adverse events; Pain; Quality of life; Infection; Signs/
# symptoms; Mental health; Biological markers; Subjective; General healthcare
# setting (marginal). Rhodes pools several of these into one outcome category.
# Columns (5): Pharma vs Placebo, Pharma vs Pharma, then three Non-pharma
# columns that all hold Rhodes's "non-pharmacological (any)".
RNMAMOD_RHODES_ROW_TO_OUTCOME = [0, 1, 2, 3, 3, 3, 3, 4, 4, 5, 6, 7, None]
RNMAMOD_RHODES_COL_TO_COMPARISON = [0, 1, 2, 2, 2]
RNMAMOD_RHODES = {
    "other": (
        [
            -4.13, -2.55, -2.43, -3.16, -3.16, -3.16, -3.16, -3.00, -3.00, -2.99, -3.41, -2.76, -3.44,
            -4.40, -2.83, -2.70, -3.44, -3.44, -3.44, -3.44, -3.27, -3.27, -3.27, -3.68, -3.03, -3.44,
            -3.99, -2.41, -2.29, -3.02, -3.02, -3.02, -3.02, -2.86, -2.86, -3.85, -3.27, -2.62, -3.44,
            -3.99, -2.41, -2.29, -3.02, -3.02, -3.02, -3.02, -2.86, -2.86, -3.85, -3.27, -2.62, -3.44,
            -3.99, -2.41, -2.29, -3.02, -3.02, -3.02, -3.02, -2.86, -2.86, -3.85, -3.27, -2.62, -3.44,
        ],
        [
            2.34, 2.73, 2.50, 2.50, 2.50, 2.50, 2.50, 2.50, 2.50, 2.16, 2.83, 2.58, 2.59,
            2.31, 2.70, 2.46, 2.44, 2.44, 2.44, 2.44, 2.47, 2.47, 2.14, 2.78, 2.59, 2.59,
            2.11, 2.57, 2.32, 2.27, 2.27, 2.27, 2.27, 2.33, 2.33, 1.93, 2.66, 2.41, 2.59,
            2.11, 2.57, 2.32, 2.27, 2.27, 2.27, 2.27, 2.33, 2.33, 1.93, 2.66, 2.41, 2.59,
            2.11, 2.57, 2.32, 2.27, 2.27, 2.27, 2.27, 2.33, 2.33, 1.93, 2.66, 2.41, 2.59,
        ],
    ),
    "respiratory": (
        [
            -6.03, -4.46, -4.33, -5.07, -5.07, -5.07, -5.07, -4.90, -4.90, -4.90, -5.31, -4.66, -3.44,
            -6.31, -4.73, -4.61, -5.34, -5.34, -5.34, -5.34, -5.18, -5.18, -5.17, -5.59, -4.94, -3.44,
            -5.89, -4.32, -4.19, -4.93, -4.93, -4.93, -4.93, -4.76, -4.76, -4.76, -5.17, -4.52, -3.44,
            -5.89, -4.32, -4.19, -4.93, -4.93, -4.93, -4.93, -4.76, -4.76, -4.76, -5.17, -4.52, -3.44,
            -5.89, -4.32, -4.19, -4.93, -4.93, -4.93, -4.93, -4.76, -4.76, -4.76, -5.17, -4.52, -3.44,
        ],
        [
            2.36, 2.74, 2.51, 2.51, 2.51, 2.51, 2.51, 2.50, 2.50, 2.17, 2.83, 2.59, 2.59,
            2.31, 2.70, 2.46, 2.45, 2.45, 2.45, 2.45, 2.47, 2.47, 2.14, 2.78, 2.59, 2.59,
            2.21, 2.57, 2.33, 2.28, 2.28, 2.28, 2.28, 2.33, 2.33, 1.94, 2.66, 2.41, 2.59,
            2.21, 2.57, 2.33, 2.28, 2.28, 2.28, 2.28, 2.33, 2.33, 1.94, 2.66, 2.41, 2.59,
            2.21, 2.57, 2.33, 2.28, 2.28, 2.28, 2.28, 2.33, 2.33, 1.94, 2.66, 2.41, 2.59,
        ],
    ),
    "cancer": (
        [
            -1.57, -0.01, -0.13, -0.60, -0.60, -0.60, -0.60, -0.44, -0.44, -0.43, -0.85, -0.20, -3.44,
            -1.85, -0.27, -0.14, -0.88, -0.88, -0.88, -0.88, -0.71, -0.71, -0.71, -1.13, -0.48, -3.44,
            -1.43, 0.15, 0.27, -0.46, -0.46, -0.46, -0.46, -0.30, -0.30, -0.29, -0.71, -0.06, -3.44,
            -1.43, 0.15, 0.27, -0.46, -0.46, -0.46, -0.46, -0.30, -0.30, -0.29, -0.71, -0.06, -3.44,
            -1.43, 0.15, 0.27, -0.46, -0.46, -0.46, -0.46, -0.30, -0.30, -0.29, -0.71, -0.06, -3.44,
        ],
        [
            2.45, 2.83, 2.61, 2.61, 2.61, 2.61, 2.61, 2.60, 2.60, 2.28, 2.93, 2.68, 2.59,
            2.41, 2.79, 2.56, 2.55, 2.55, 2.55, 2.55, 2.57, 2.57, 2.25, 2.87, 2.68, 2.59,
            2.24, 2.68, 2.45, 2.40, 2.40, 2.40, 2.40, 2.46, 2.46, 2.08, 2.78, 2.53, 2.59,
            2.24, 2.68, 2.45, 2.40, 2.40, 2.40, 2.40, 2.46, 2.46, 2.08, 2.78, 2.53, 2.59,
            2.24, 2.68, 2.45, 2.40, 2.40, 2.40, 2.40, 2.46, 2.46, 2.08, 2.78, 2.53, 2.59,
        ],
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------
# Turner et al. (2015)


def test_turner_table_is_complete():
    assert len(ep.TURNER_2015_OUTCOME_TYPES) == 16
    assert len(ep.TURNER_2015_COMPARISON_TYPES) == 5
    assert len(ep.TURNER_2015_LOGNORMAL) == 80
    for (outcome, comparison), (mean, sd) in ep.TURNER_2015_LOGNORMAL.items():
        assert outcome in ep.TURNER_2015_OUTCOME_TYPES
        assert comparison in ep.TURNER_2015_COMPARISON_TYPES
        assert mean < 0 and sd > 0


def test_turner_table_matches_rnmamod_everywhere():
    n_out = len(ep.TURNER_2015_OUTCOME_TYPES)
    for j, comparison in enumerate(ep.TURNER_2015_COMPARISON_TYPES):
        for i, outcome in enumerate(ep.TURNER_2015_OUTCOME_TYPES):
            expected = (RNMAMOD_TURNER_MEAN[j * (n_out + 1) + i], RNMAMOD_TURNER_SD[j * (n_out + 1) + i])
            assert ep.TURNER_2015_LOGNORMAL[outcome, comparison] == expected, (outcome, comparison)
        # 17th row of each rnmamod column: the marginal ("general healthcare setting") prior
        marginal = (RNMAMOD_TURNER_MEAN[j * (n_out + 1) + n_out], RNMAMOD_TURNER_SD[j * (n_out + 1) + n_out])
        assert ep.TURNER_2015_MARGINAL == marginal


def test_turner_spot_checks():
    # rnmamod: "All-cause mortality" x "Pharma vs. Placebo/control" -> LN(-3.95, 1.34^2)
    assert ep.TURNER_2015_LOGNORMAL["all-cause mortality", "pharmacological vs. placebo / control"] == (-3.95, 1.34)
    # rnmamod: "Subjective outcomes (various)" x "Non-pharma vs. Non-pharma" -> LN(-2.26, 1.45^2)
    key = ("subjective outcomes (various)", "non-pharmacological vs. non-pharmacological")
    assert ep.TURNER_2015_LOGNORMAL[key] == (-2.26, 1.45)
    # bayesmeta's TurnerEtAlPrior("surgical", "pharma", "placebo / control") example:
    # rnmamod "Surgical/device related success/failure" x "Pharma vs. Placebo/control" -> LN(-2.14, 1.74^2)
    key = ("surgical / device related success / failure", "pharmacological vs. placebo / control")
    assert ep.TURNER_2015_LOGNORMAL[key] == (-2.14, 1.74)


def test_turner_sd_is_a_standard_deviation():
    # Both transcriptions treat the second number as the SD of log(tau^2): rnmamod prints
    # "LN(mean, sd^2)" and evaluates qlnorm(p, mean, sd) (R's sdlog); bayesmeta passes it as
    # sdlog and halves both numbers for tau. Check that the halving rule documented in the
    # module gives the same tau quantiles as the square root of the tau^2 quantiles.
    stats = pytest.importorskip("scipy.stats")
    mean, sd = ep.TURNER_2015_MARGINAL
    p = np.array([0.025, 0.5, 0.975])
    tau2_q = stats.lognorm.ppf(p, s=sd, scale=math.exp(mean))
    tau_q = stats.lognorm.ppf(p, s=sd / 2, scale=math.exp(mean / 2))
    np.testing.assert_allclose(tau_q, np.sqrt(tau2_q), rtol=1e-12)
    assert ep.TURNER_2015_INFO["distribution"] == "lognormal"
    assert "standard deviation (not the variance)" in ep.TURNER_2015_INFO["parametrisation"]


def test_turner_table_is_additive():
    # Turner et al. fit outcome-type and comparison-type effects additively on log(tau^2);
    # every predictive mean is (row effect + column effect) to within rounding.
    m = np.array([[ep.TURNER_2015_LOGNORMAL[o, c][0] for c in ep.TURNER_2015_COMPARISON_TYPES]
                  for o in ep.TURNER_2015_OUTCOME_TYPES])  # fmt: skip
    resid = m - m[:, :1] - (m[:1, :] - m[0, 0])
    assert np.abs(resid).max() <= 0.015


# ---------------------------------------------------------------------------
# Rhodes et al. (2015)


def test_rhodes_table_is_complete():
    assert len(ep.RHODES_2015_OUTCOME_TYPES) == 8
    assert len(ep.RHODES_2015_COMPARISON_TYPES) == 3
    assert ep.RHODES_2015_MEDICAL_AREAS == ("other", "respiratory", "cancer")
    assert len(ep.RHODES_2015_LOG_T) == 72
    assert ep.RHODES_2015_DF == 5
    assert all(scale > 0 for _, scale in ep.RHODES_2015_LOG_T.values())


def test_rhodes_table_matches_rnmamod_except_recorded_disagreement():
    mismatches = []
    for area, (loc, scale) in RNMAMOD_RHODES.items():
        n_rows = len(RNMAMOD_RHODES_ROW_TO_OUTCOME)
        for col, comparison_idx in enumerate(RNMAMOD_RHODES_COL_TO_COMPARISON):
            for row, outcome_idx in enumerate(RNMAMOD_RHODES_ROW_TO_OUTCOME):
                expected = (loc[col * n_rows + row], scale[col * n_rows + row])
                if outcome_idx is None:  # "General healthcare setting"
                    assert ep.RHODES_2015_MARGINAL == expected
                    continue
                key = (
                    ep.RHODES_2015_OUTCOME_TYPES[outcome_idx],
                    ep.RHODES_2015_COMPARISON_TYPES[comparison_idx],
                    area,
                )
                if ep.RHODES_2015_LOG_T[key] != expected:
                    mismatches.append((key, ep.RHODES_2015_LOG_T[key], expected))
    # the only disagreement between the two transcriptions: cancer, resource use,
    # pharmacological vs placebo (bayesmeta +0.01, rnmamod -0.01); it is recorded
    assert len(mismatches) == 1
    key, stored, rnmamod = mismatches[0]
    assert key == (ep.RHODES_2015_OUTCOME_TYPES[1], ep.RHODES_2015_COMPARISON_TYPES[0], "cancer")
    assert stored == (0.01, 2.83) and rnmamod == (-0.01, 2.83)
    assert key in ep.RHODES_2015_SUSPECT_ENTRIES


def test_rhodes_spot_checks():
    obstetric, pharm_placebo, nonpharm = (
        ep.RHODES_2015_OUTCOME_TYPES[0],
        ep.RHODES_2015_COMPARISON_TYPES[0],
        ep.RHODES_2015_COMPARISON_TYPES[2],
    )
    # rnmamod, area "other": "Obstetric outcomes" x "Pharma vs. Placebo/control" -> t(-4.13, 2.34^2, 5)
    assert ep.RHODES_2015_LOG_T[obstetric, pharm_placebo, "other"] == (-4.13, 2.34)
    # rnmamod, area "respiratory": "Subjective outcomes" x "Non-pharma" -> t(-4.52, 2.41^2, 5)
    assert ep.RHODES_2015_LOG_T[ep.RHODES_2015_OUTCOME_TYPES[7], nonpharm, "respiratory"] == (-4.52, 2.41)
    # rnmamod, area "cancer": "Biological markers" x "Pharma vs. Pharma" -> t(-1.13, 2.87^2, 5)
    key = (ep.RHODES_2015_OUTCOME_TYPES[6], ep.RHODES_2015_COMPARISON_TYPES[1], "cancer")
    assert ep.RHODES_2015_LOG_T[key] == (-1.13, 2.87)
    # rnmamod "General healthcare setting" -> t(-3.44, 2.59^2, 5)
    assert ep.RHODES_2015_MARGINAL == (-3.44, 2.59)


def test_rhodes_additivity_holds_except_for_recorded_entries():
    # location(outcome, comparison, area) = a(outcome) + b(comparison) + c(area) to within
    # rounding, except the entries listed in RHODES_2015_SUSPECT_ENTRIES
    loc = {k: v[0] for k, v in ep.RHODES_2015_LOG_T.items()}
    out, comp, areas = ep.RHODES_2015_OUTCOME_TYPES, ep.RHODES_2015_COMPARISON_TYPES, ep.RHODES_2015_MEDICAL_AREAS
    # effects estimated from rows/columns that contain no suspect entry
    base = loc[out[0], comp[0], "other"]
    b = {c: loc[out[0], c, "other"] - base for c in comp}
    a = {o: loc[o, comp[0], "respiratory"] - loc[out[0], comp[0], "respiratory"] for o in out}
    c_area = {ar: loc[out[0], comp[0], ar] - base for ar in areas}
    off = set()
    for o in out:
        for c in comp:
            for ar in areas:
                predicted = base + a[o] + b[c] + c_area[ar]
                if abs(loc[o, c, ar] - predicted) > 0.025:
                    off.add((o, c, ar))
                    suspect = ep.RHODES_2015_SUSPECT_ENTRIES[o, c, ar]
                    assert suspect["stored"] == loc[o, c, ar]
                    assert suspect["additive_model"] == pytest.approx(predicted, abs=0.025)
    flagged_off_pattern = {k for k, v in ep.RHODES_2015_SUSPECT_ENTRIES.items() if v["stored"] != v["additive_model"]}
    assert off == flagged_off_pattern


# ---------------------------------------------------------------------------
# metadata and helpers


@pytest.mark.parametrize("info", [ep.TURNER_2015_INFO, ep.RHODES_2015_INFO])
def test_metadata_present_and_read_only(info):
    for field in ("citation", "doi", "scale", "parameter", "distribution", "parametrisation", "source_table"):
        assert info[field]
    assert isinstance(info, MappingProxyType)
    with pytest.raises(TypeError):
        info["doi"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        ep.TURNER_2015_LOGNORMAL["x", "y"] = (0.0, 1.0)  # type: ignore[index]


def test_dois_and_scales():
    assert ep.TURNER_2015_INFO["doi"] == "10.1002/sim.6381"
    assert ep.TURNER_2015_INFO["scale"] == "log odds ratio"
    assert ep.RHODES_2015_INFO["doi"] == "10.1016/j.jclinepi.2014.08.012"
    assert ep.RHODES_2015_INFO["scale"] == "standardized mean difference"


@pytest.mark.parametrize(
    ("i1", "i2", "turner", "rhodes"),
    [
        ("pharmacological", "placebo / control", 0, 0),
        ("placebo / control", "pharmacological", 0, 0),
        ("pharmacological", "pharmacological", 1, 1),
        ("non-pharmacological", "placebo / control", 2, 2),
        ("pharmacological", "non-pharmacological", 3, 2),
        ("non-pharmacological", "non-pharmacological", 4, 2),
    ],
)
def test_comparison_type_lookup(i1, i2, turner, rhodes):
    # mapping of comparator pairs as in bayesmeta's TurnerEtAlPrior()/RhodesEtAlPrior()
    assert ep.turner_comparison_type(i1, i2) == ep.TURNER_2015_COMPARISON_TYPES[turner]
    assert ep.rhodes_comparison_type(i1, i2) == ep.RHODES_2015_COMPARISON_TYPES[rhodes]


def test_comparison_type_errors():
    with pytest.raises(PriorError, match="placebo / control with placebo"):
        ep.turner_comparison_type("placebo / control", "placebo / control")
    with pytest.raises(PriorError, match="intervention type must be one of"):
        ep.rhodes_comparison_type("surgery", "placebo / control")
