"""ketabayes.inference.frequentist against metafor itself.

Every expected number comes from tests/data/metafor_frequentist.json, written by the committed R script
scripts/reference/metafor_frequentist.R (metafor's rma.uni, confint, predict, rma.mh, rma.peto, leave1out,
influence, regtest, ranktest, trimfill on data sets shipped with metadat). CI reads only the JSON.
Tolerances: relative 1e-8 for closed-form quantities, 1e-6 where either side iterates (ML, REML, EB, PM,
and every Q-profile bound).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketabayes.inference.frequentist import rma

REF = json.loads((Path(__file__).parent / "data" / "metafor_frequentist.json").read_text())
DATA = REF["data"]
CLOSED_FORM = {"FE", "DL", "HE", "HS", "SJ"}
ATOL = 1e-10  # for quantities that are 0 on one side and ~1e-17 on the other


def close(got, want, rtol, what):
    """Compare with NaN/None meaning 'undefined' on both sides; return the relative error."""
    got = np.atleast_1d(np.asarray(got, dtype=float))
    want = np.atleast_1d(np.asarray([np.nan if w is None else w for w in np.atleast_1d(want)], dtype=float))
    assert got.shape == want.shape, what
    assert np.array_equal(np.isnan(got), np.isnan(want)), (what, got, want)
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=ATOL, err_msg=what)
    if not ok.any():
        return 0.0
    err = np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), ATOL)
    return float(err.max())


def mods_frame(name):
    m = DATA[name]["mods"]
    return None if m is None else pd.DataFrame(m)


def case_id(c):
    return f"{c['data']}-{'mods' if c['mods'] else 'int'}-{c['method']}-{c['test']}" + (
        f"-{c['level']}" if "level" in c else "")


UNI = REF["rma_uni"]


@pytest.mark.parametrize("case", UNI, ids=[case_id(c) for c in UNI])
def test_rma_uni_matches_metafor(case):
    d = DATA[case["data"]]
    mods = mods_frame(case["data"]) if case["mods"] else None
    level = case.get("level", 0.95)
    if case["method"] == "FE" and case["test"] in ("knha", "adhoc"):
        with pytest.warns(UserWarning, match="Knapp & Hartung"):
            res = rma(d["yi"], d["vi"], mods=mods, method=case["method"], test=case["test"], level=level)
    else:
        res = rma(d["yi"], d["vi"], mods=mods, method=case["method"], test=case["test"], level=level)
    rtol = 1e-8 if case["method"] in CLOSED_FORM else 1e-6
    cid = case_id(case)
    assert res.k == case["k"] and res.p == case["p"]
    coef = res.coefficients
    stat = "zval" if case["test"] == "z" else "tval"
    assert list(coef.columns) == ["estimate", "se", stat, "pval", "ci_low", "ci_high"]
    close(coef["estimate"], case["beta"], rtol, f"{cid} beta")
    close(coef["se"], case["se"], rtol, f"{cid} se")
    close(coef[stat], case["zval"], rtol, f"{cid} zval")
    close(coef["pval"], case["pval"], rtol, f"{cid} pval")
    close(coef["ci_low"], case["ci_lb"], rtol, f"{cid} ci.lb")
    close(coef["ci_high"], case["ci_ub"], rtol, f"{cid} ci.ub")
    close(res.tau2, case["tau2"], rtol, f"{cid} tau2")
    close(res.tau2_se, case["se_tau2"], rtol, f"{cid} se.tau2")
    close(res.I2, case["I2"], rtol, f"{cid} I2")
    close(res.H2, case["H2"], rtol, f"{cid} H2")
    close(res.Q, case["QE"], rtol, f"{cid} QE")
    close(res.Q_pval, case["QEp"], rtol, f"{cid} QEp")
    close(res.QM, case["QM"], rtol, f"{cid} QM")
    close([res.QM_df, res.QM_df2], case["QMdf"], 0, f"{cid} QMdf")
    close(res.QM_pval, case["QMp"], rtol, f"{cid} QMp")
    close(res.df, case["ddf"], 0, f"{cid} ddf")
    if case["p"] == 1:
        close(res.estimate, case["beta"], rtol, f"{cid} estimate")
        close([res.ci_low, res.ci_high], [case["ci_lb"], case["ci_ub"]], rtol, f"{cid} ci")
        if "pi_lb" in case:
            close([res.pi_low, res.pi_high], [case["pi_lb"], case["pi_ub"]], rtol, f"{cid} pi")
        else:
            assert math.isnan(res.pi_low) and math.isnan(res.pi_high)
    if "tau2_ci" in case:
        close([res.tau2_ci_low, res.tau2_ci_high], case["tau2_ci"], 1e-6, f"{cid} tau2 CI")
        close([res.I2_ci_low, res.I2_ci_high], case["I2_ci"], 1e-6, f"{cid} I2 CI")
        close([res.H2_ci_low, res.H2_ci_high], case["H2_ci"], 1e-6, f"{cid} H2 CI")
    else:
        assert math.isnan(res.tau2_ci_low) and math.isnan(res.I2_ci_high)


def test_reference_covers_every_method_and_test():
    combos = {(c["method"], c["test"], c["mods"]) for c in UNI}
    for m in ("FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"):
        for t in ("z", "t", "knha", "adhoc"):
            assert (m, t, False) in combos and (m, t, True) in combos
    assert len({c["data"] for c in UNI}) >= 8


# ---------------------------------------------------------------------------
# Mantel-Haenszel and Peto

BIN = REF["binary"]


@pytest.mark.parametrize("case", BIN, ids=[f"{c['data']}-{c['method']}-{c['measure']}" for c in BIN])
def test_mh_and_peto_match_metafor(case):
    from ketabayes.inference.frequentist import rma_mh, rma_peto

    n = case["counts"]
    if case["method"] == "MH":
        res = rma_mh(n["ai"], n["bi"], n["ci"], n["di"], measure=case["measure"])
    else:
        res = rma_peto(n["ai"], n["bi"], n["ci"], n["di"])
    cid = f"{case['data']} {case['method']} {case['measure']}"
    assert (res.k, res.k_yi) == (case["k"], case["k_yi"])
    rtol = 1e-8  # all closed form
    for ours, theirs in (("estimate", "beta"), ("se", "se"), ("zval", "zval"), ("pval", "pval"),
                         ("ci_low", "ci_lb"), ("ci_high", "ci_ub"), ("Q", "QE"), ("Q_pval", "QEp"), ("I2", "I2"),
                         ("H2", "H2")):
        close(getattr(res, ours), case[theirs], rtol, f"{cid} {theirs}")
    if case["method"] == "MH" and case["measure"] == "OR":
        for ours, theirs in (("CO", "CO"), ("CO_pval", "COp"), ("CMH", "MH"), ("CMH_pval", "MHp"), ("TA", "TA"),
                             ("TA_pval", "TAp")):
            close(getattr(res, ours), case[theirs], rtol, f"{cid} {theirs}")


# ---------------------------------------------------------------------------
# leave-one-out, influence, subgroups, small-study tests, trim-and-fill

DIAG = REF["diagnostics"]


def diag_id(c):
    return f"{c['data']}-{c['method']}-{c['test']}"


def diag_rtol(case):
    return 1e-8 if case["method"] in CLOSED_FORM else 1e-6


@pytest.mark.parametrize("case", DIAG, ids=[diag_id(c) for c in DIAG])
def test_leave1out_and_influence_match_metafor(case):
    from ketabayes.inference.frequentist import influence, leave1out

    d = DATA[case["data"]]
    rtol, cid = diag_rtol(case), diag_id(case)
    l1 = leave1out(d["yi"], d["vi"], method=case["method"], test=case["test"])
    ref = case["leave1out"]
    for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("zval", "zval"), ("pval", "pval"),
                         ("ci_low", "ci_lb"), ("ci_high", "ci_ub"), ("Q", "Q"), ("Q_pval", "Qp"), ("tau2", "tau2"),
                         ("I2", "I2"), ("H2", "H2")):
        if ref[theirs] is None:  # metafor's leave1out() has no tau2 / I2 / H2 column for FE models
            assert case["method"] == "FE" and theirs in ("tau2", "I2", "H2")
            continue
        close(l1[ours], ref[theirs], rtol, f"{cid} leave1out {theirs}")
    inf = influence(d["yi"], d["vi"], method=case["method"], test=case["test"])
    ref = case["influence"]
    for ours, theirs in (("rstudent", "rstudent"), ("dffits", "dffits"), ("cook_d", "cook_d"), ("cov_r", "cov_r"),
                         ("tau2_del", "tau2_del"), ("QE_del", "QE_del"), ("hat", "hat"), ("weight", "weight"),
                         ("dfbetas_intrcpt", "dfbetas")):
        close(inf[ours], ref[theirs], rtol, f"{cid} influence {theirs}")
    assert inf["influential"].tolist() == case["inf_flag"]


@pytest.mark.parametrize("case", DIAG, ids=[diag_id(c) for c in DIAG])
def test_regtest_matches_metafor(case):
    from ketabayes.inference.frequentist import regtest

    d = DATA[case["data"]]
    rtol, cid = diag_rtol(case), diag_id(case)
    r = regtest(d["yi"], d["vi"], method=case["method"], test=case["test"])
    ref = case["regtest"]
    close([r.zval, r.pval, r.df, r.est, r.ci_low, r.ci_high],
          [ref["zval"], ref["pval"], ref["ddf"], ref["est"], ref["ci_lb"], ref["ci_ub"]], rtol, f"{cid} regtest")
    r = regtest(d["yi"], d["vi"], model="lm")
    ref = case["regtest_lm"]
    close([r.zval, r.pval, r.df, r.est, r.ci_low, r.ci_high],
          [ref["zval"], ref["pval"], ref["ddf"], ref["est"], ref["ci_lb"], ref["ci_ub"]], 1e-8, f"{cid} regtest lm")
    r = regtest(d["yi"], d["vi"], predictor="vi", method=case["method"], test=case["test"])
    ref = case["regtest_vi"]
    close([r.zval, r.pval, r.est], [ref["zval"], ref["pval"], ref["est"]], rtol, f"{cid} regtest vi")


ZDIAG = [c for c in DIAG if "ranktest" in c]


@pytest.mark.parametrize("case", ZDIAG, ids=[diag_id(c) for c in ZDIAG])
def test_ranktest_and_trimfill_match_metafor(case):
    from ketabayes.inference.frequentist import ranktest, trimfill

    d = DATA[case["data"]]
    rtol, cid = diag_rtol(case), diag_id(case)
    r = ranktest(d["yi"], d["vi"])
    close([r.tau, r.pval], [case["ranktest"]["tau"], case["ranktest"]["pval"]], 1e-8, f"{cid} ranktest")
    for est in ("L0", "R0"):
        ref = case[f"trimfill_{est}"]
        tf = trimfill(d["yi"], d["vi"], method=case["method"], estimator=est)
        assert (tf.k0, tf.side) == (ref["k0"], ref["side"]), cid
        assert tf.filled.tolist() == ref["fill"]
        close(tf.se_k0, ref["se_k0"], 1e-8, f"{cid} {est} se.k0")
        close(tf.p_k0, ref["p_k0"], 1e-12, f"{cid} {est} p.k0")  # NA (None) for L0
        close([tf.fit.estimate, tf.fit.se, tf.fit.ci_low, tf.fit.ci_high, tf.fit.tau2, tf.fit.Q],
              [ref["beta"], ref["se"], ref["ci_lb"], ref["ci_ub"], ref["tau2"], ref["QE"]], rtol, f"{cid} {est} fit")
        close(tf.yi, ref["yi"], rtol, f"{cid} {est} yi")
        close(tf.vi, ref["vi"], 1e-12, f"{cid} {est} vi")


SUB = [c for c in DIAG if "subgroup" in c]


@pytest.mark.parametrize("case", SUB, ids=[diag_id(c) for c in SUB])
def test_subgroup_matches_metafor(case):
    from ketabayes.inference.frequentist import subgroup

    d = DATA[case["data"]]
    rtol, cid = diag_rtol(case), diag_id(case)
    res = subgroup(d["yi"], d["vi"], d["group"], method=case["method"], test=case["test"])
    ref = case["subgroup"]
    assert list(res.fits) == [g["group"] for g in ref["groups"]]
    tab = res.table()
    for ours, theirs in (("k", "k"), ("estimate", "estimate"), ("se", "se"), ("ci_low", "ci_lb"),
                         ("ci_high", "ci_ub"), ("tau2", "tau2"), ("Q", "QE")):
        close(tab[ours], [g[theirs] for g in ref["groups"]], rtol, f"{cid} subgroup {theirs}")
    close([res.Q_between, res.Q_df, res.Q_pval], [ref["Q_between"], ref["df"], ref["pval"]], rtol, f"{cid} Qb")
