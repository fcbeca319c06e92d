"""Multi-arm trials (ketabayes.data.multiarm).

Expected values: closed forms written out below, and the covariance matrices recomputed by a
different algorithm (the delta-method sandwich A diag(var_arms) A^T with the contrast matrix A),
and the combined-group SD checked against the SD of an explicit pooled sample (numpy.std).
The arm-level numbers are CONSTRUCTED for the tests (not trial data).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.effect_sizes import effect_sizes
from ketabayes.data.multiarm import combine_arms, combine_groups, multiarm_contrasts, split_control
from ketabayes.errors import DataError


def continuous():
    return pd.DataFrame({
        "study": ["T1", "T1", "T1", "T2", "T2"],
        "arm": ["low", "high", "placebo", "high", "placebo"],
        "mi": [3.0, 4.5, 1.0, 5.0, 2.0],
        "sdi": [2.0, 2.5, 3.0, 1.5, 2.0],
        "ni": [20, 25, 30, 12, 14],
    })


def binary():
    return pd.DataFrame({
        "study": ["B1", "B1", "B1", "B2", "B2"],
        "arm": ["a", "b", "ctl", "a", "ctl"],
        "xi": [12, 9, 5, 0, 4],
        "ni": [40, 38, 41, 20, 21],
    })


def sandwich(var_arms, control_pos):
    """Covariance of contrasts g_j - g_0 by A diag(var) A^T."""
    k = len(var_arms)
    others = [j for j in range(k) if j != control_pos]
    a = np.zeros((len(others), k))
    for r, j in enumerate(others):
        a[r, j], a[r, control_pos] = 1.0, -1.0
    return a @ np.diag(var_arms) @ a.T


def test_md_contrasts_and_covariance():
    df = continuous()
    before = df.copy(deep=True)
    res = multiarm_contrasts(df, "MD", control="placebo")
    pd.testing.assert_frame_equal(df, before)
    t = res.table
    assert t["arm"].tolist() == ["low", "high", "high"]
    np.testing.assert_allclose(t["yi"], [2.0, 3.5, 3.0], rtol=1e-14)
    v = [4 / 20, 6.25 / 25, 9 / 30]
    np.testing.assert_allclose(res.covariance["T1"], sandwich(v, 2), rtol=1e-14)
    assert res.covariance["T1"][0, 1] == pytest.approx(9 / 30, rel=1e-14)  # control's sd^2/n
    np.testing.assert_allclose(res.covariance["T2"], [[2.25 / 12 + 4 / 14]], rtol=1e-14)
    full = res.covariance_matrix()
    assert full.shape == (3, 3) and full[0, 2] == 0 and full[2, 2] == pytest.approx(t["vi"].iloc[2])
    # each contrast's variance equals the two-group MD of effect_sizes
    pair = pd.DataFrame({"m1i": [3.0], "sd1i": [2.0], "n1i": [20], "m2i": [1.0], "sd2i": [3.0], "n2i": [30]})
    assert t["vi"].iloc[0] == pytest.approx(effect_sizes(pair, "MD")["vi"].iloc[0], rel=1e-14)


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_binary_contrasts_and_covariance(measure):
    res = multiarm_contrasts(binary(), measure, control="ctl")
    x, n = np.array([12.0, 9.0, 5.0]), np.array([40.0, 38.0, 41.0])
    p = x / n
    if measure == "OR":
        g, var = np.log(x / (n - x)), 1 / x + 1 / (n - x)
    elif measure == "RR":
        g, var = np.log(p), 1 / x - 1 / n
    else:
        g, var = p, p * (1 - p) / n
    np.testing.assert_allclose(res.table["yi"].iloc[:2], [g[0] - g[2], g[1] - g[2]], rtol=1e-13)
    np.testing.assert_allclose(res.covariance["B1"], sandwich(var, 2), rtol=1e-13)
    # each variance equals effect_sizes' two-group value (metafor's escalc definitions)
    pair = pd.DataFrame({"ai": [12], "n1i": [40], "ci": [5], "n2i": [41]})
    assert res.table["vi"].iloc[0] == pytest.approx(effect_sizes(pair, measure)["vi"].iloc[0], rel=1e-13)
    if measure in ("OR", "RR"):  # B2 has a zero cell: 0.5 added to every arm of that trial
        assert "0.5 added" in res.table["note"].iloc[2]
        pair = pd.DataFrame({"ai": [0], "n1i": [20], "ci": [4], "n2i": [21]})
        expected = effect_sizes(pair, measure)
        assert res.table["yi"].iloc[2] == pytest.approx(expected["yi"].iloc[0], rel=1e-13)
        assert res.table["vi"].iloc[2] == pytest.approx(expected["vi"].iloc[0], rel=1e-13)


def test_combine_groups_equals_pooled_sample_sd():
    rng = np.random.default_rng(7)
    a, b = rng.normal(5, 2, 10), rng.normal(7, 3, 15)
    n, m, sd = combine_groups(10, a.mean(), a.std(ddof=1), 15, b.mean(), b.std(ddof=1))
    pooled = np.concatenate([a, b])
    assert n == 25
    assert m == pytest.approx(pooled.mean(), rel=1e-13)
    assert sd == pytest.approx(pooled.std(ddof=1), rel=1e-12)


def test_combine_arms_tables():
    out = combine_arms(continuous(), ["low", "high"], label="drug")
    t1 = out[(out["study"] == "T1") & (out["arm"] == "drug")].iloc[0]
    n, m, sd = combine_groups(20, 3.0, 2.0, 25, 4.5, 2.5)
    assert (t1["ni"], t1["mi"], t1["sdi"]) == (pytest.approx(n), pytest.approx(m), pytest.approx(sd))
    assert "merged arms 'low', 'high'" in t1["note"]
    assert len(out) == 4  # T2 (one listed arm) unchanged
    outb = combine_arms(binary(), ["a", "b"], label="ab", xi="xi", mi=None, sdi=None)
    row = outb[outb["arm"] == "ab"].iloc[0]
    assert (row["xi"], row["ni"]) == (21, 78)


def test_split_control_divides_the_control_size():
    out = split_control(continuous(), control="placebo")
    assert out["study"].tolist() == ["T1: low", "T1: high", "T2: high"]
    np.testing.assert_allclose(out["n2i"], [15, 15, 14])
    assert "split among 2" in out["note"].iloc[0] and out["note"].iloc[2] == ""
    es = effect_sizes(out, "MD")
    assert es["vi"].iloc[0] == pytest.approx(4 / 20 + 9 / 15, rel=1e-14)


def test_bad_input():
    df = continuous()
    with pytest.raises(DataError, match="study 'T1', column 'arm'.*0 arms labelled 'control'"):
        multiarm_contrasts(df, "MD", control="control")
    bad = df.astype(object)
    bad.loc[1, "sdi"] = -1.0
    with pytest.raises(DataError, match="study 'T1 / high', column 'sdi'"):
        multiarm_contrasts(bad, "MD", control="placebo")
    dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match="study 'T1', column 'arm'.*twice"):
        multiarm_contrasts(dup, "MD", control="placebo")
    with pytest.raises(DataError, match="only the control arm"):
        multiarm_contrasts(df[df["study"] == "T2"].iloc[[1]], "MD", control="placebo")
    b = binary().astype(object)
    b.loc[0, "xi"] = 50
    with pytest.raises(DataError, match="column 'xi'.*exceed"):
        multiarm_contrasts(b, "OR", control="ctl")
    with pytest.raises(DataError, match="unknown measure"):
        multiarm_contrasts(df, "SMD", control="placebo")
    assert math.isfinite(multiarm_contrasts(df, "md", control="placebo").table["vi"].sum())


# --------------------------------------------------------------------------- arm data, combine / split from contrasts
def test_contrast_table_carries_arm_data_and_the_shared_variance():
    res = multiarm_contrasts(continuous(), "MD", control="placebo")
    t = res.table
    assert t[["m1i", "sd1i", "n1i"]].iloc[1].tolist() == [4.5, 2.5, 25]
    assert t[["m2i", "sd2i", "n2i"]].iloc[0].tolist() == [1.0, 3.0, 30]
    assert t["vi_control"].iloc[0] == pytest.approx(9 / 30, rel=1e-15)
    assert res.covariance["T1"][0, 1] == t["vi_control"].iloc[0]
    tb = multiarm_contrasts(binary(), "OR", control="ctl").table
    assert tb["vi_control"].iloc[0] == pytest.approx(1 / 5 + 1 / 36, rel=1e-14)
    assert tb[["ai", "n1i", "ci", "n2i"]].iloc[1].tolist() == [9, 38, 5, 41]


def _sample(mean, sd, n):
    """An explicit sample with exactly this mean and SD (ddof=1)."""
    z = np.linspace(-1.0, 1.0, int(n))
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def test_handle_multiarm_combine_equals_a_pooled_sample_and_keeps_other_trials():
    from ketabayes.data.multiarm import handle_multiarm

    arms = continuous().assign(dose=[0.5, 1.0, 0.0, 1.0, 0.0], route="iv")
    tab = multiarm_contrasts(arms, "MD", control="placebo").table
    before = tab.copy(deep=True)
    out = handle_multiarm(tab, "combine")
    pd.testing.assert_frame_equal(tab, before)
    assert out["study"].tolist() == ["T1", "T2"]
    pooled = np.concatenate([_sample(3.0, 2.0, 20), _sample(4.5, 2.5, 25)])
    row = out.iloc[0]
    assert row["yi"] == pytest.approx(pooled.mean() - 1.0, rel=1e-13)
    assert row["vi"] == pytest.approx(pooled.std(ddof=1) ** 2 / 45 + 9 / 30, rel=1e-12)
    assert row["arm"] == "low + high" and "combined" in row["note"]
    assert np.isnan(row["dose"]) and row["route"] == "iv"  # differing doses cannot be merged; equal routes can
    pd.testing.assert_series_equal(out.iloc[1][tab.columns], tab.iloc[2], check_names=False)


def test_handle_multiarm_combine_binary_adds_events():
    from ketabayes.data.multiarm import handle_multiarm

    out = handle_multiarm(multiarm_contrasts(binary(), "OR", control="ctl").table, "combine")
    row = out.iloc[0]
    assert row["yi"] == pytest.approx(math.log(21 / 57) - math.log(5 / 36), rel=1e-13)
    assert row["vi"] == pytest.approx(1 / 21 + 1 / 57 + 1 / 5 + 1 / 36, rel=1e-13)


def test_handle_multiarm_split_divides_the_control():
    from ketabayes.data.multiarm import handle_multiarm

    out = handle_multiarm(multiarm_contrasts(continuous(), "MD", control="placebo").table, "split")
    assert out["study"].tolist() == ["T1: low", "T1: high", "T2"]
    assert out["trial"].iloc[0] == "T1" and np.isnan(out["vi_control"].iloc[0])
    assert out["vi"].iloc[0] == pytest.approx(4 / 20 + 9 / 15, rel=1e-14)
    assert out["vi"].iloc[2] == pytest.approx(1.5**2 / 12 + 4 / 14, rel=1e-14)  # two-arm trial unchanged


def test_handle_multiarm_errors():
    from ketabayes.data.multiarm import handle_multiarm

    tab = multiarm_contrasts(binary(), "OR", control="ctl").table
    with pytest.raises(DataError, match="study 'B1', column 'measure'.*split.*MD"):
        handle_multiarm(tab, "split")
    with pytest.raises(DataError, match="no multi-arm trial"):
        handle_multiarm(tab[tab["study"] == "B2"], "combine")
    with pytest.raises(DataError, match="how='merge'"):
        handle_multiarm(tab, "merge")
    with pytest.raises(DataError, match="study 'B1', column 'ci'.*missing"):
        handle_multiarm(tab.drop(columns=["ci"]), "combine")


def test_multivariate_default_tau_prior_uses_the_arm_sizes():
    from ketabayes.model.multivariate import MultivariateModel

    res = multiarm_contrasts(continuous(), "MD", control="placebo")
    v = res.table["vi"].to_numpy()
    n = np.array([20 + 30, 25 + 30, 12 + 14])
    got = MultivariateModel.from_contrasts(res).prior_tau
    assert got.sigma == pytest.approx(0.5 * math.sqrt(n.sum() / (1 / v).sum()), rel=5e-4)
