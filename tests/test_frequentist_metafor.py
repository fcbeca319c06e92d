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
