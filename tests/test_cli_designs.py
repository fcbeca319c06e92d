"""Command line: crossover, paired, multi-arm and time-window input, provenance and grids over r.

Expected numbers are closed forms written here: crossover and paired variances from the
reported SDs and an assumed r, the inverse-variance (fixed-effect, flat prior) posterior, the
split-control variance; the correlated and time-window analyses against the exact engines on
inputs assembled here. All trial numbers are CONSTRUCTED for the tests (not trial data).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

import ketabayes as kb
from ketabayes.cli import main
from ketabayes.inference.exact_multivariate import ExactMultivariateNormal
from ketabayes.model.priors import Flat, HalfNormal

CROSS = pd.DataFrame({"study": ["X1", "X2", "X3", "X4"], "m1i": [2.4, None, None, 3.0],
                      "sd1i": [2.1, None, None, 2.0], "m2i": [4.0, None, None, 4.2], "sd2i": [2.3, None, None, 2.4],
                      "ni": [24, 18, 20, 30], "mdi": [None, -1.1, -0.8, None], "sddi": [None, 1.9, None, None],
                      "ti": [None, None, -2.1, None]})


def cross_v(r):
    return np.array([(2.1**2 + 2.3**2 - 2 * r * 2.1 * 2.3) / 24, 1.9**2 / 18, (0.8 / 2.1) ** 2,
                     (2.0**2 + 2.4**2 - 2 * r * 2.0 * 2.4) / 30])


CROSS_Y = np.array([-1.6, -1.1, -0.8, -1.2])


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def cross_csv(tmp_path):
    path = tmp_path / "crossover.csv"
    CROSS.to_csv(path, index=False)
    return path


def fe(y, v):
    w = 1 / np.asarray(v)
    return float(np.sum(w * y) / w.sum()), math.sqrt(1 / w.sum())


def one_line_error(res, *patterns, code=1):
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ketabayes: error: "), res.stderr
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])


def usage_error(res, pattern):
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output and re.search(pattern, res.stderr), res.stderr


# --------------------------------------------------------------------------- crossover
def test_crossover_needs_a_correlation_and_never_defaults_one(runner, cross_csv):
    res = runner.invoke(main, ["analyse", str(cross_csv), "--design", "crossover", "--mcid", "1"])
    one_line_error(res, r"study 'X1'.*no correlation \(ri or r=\).*CLI: --r; no silent default", r"'X4'")


def test_crossover_fixed_effect_equals_the_closed_form_and_json_carries_provenance(runner, cross_csv, tmp_path):
    out = tmp_path / "x.json"
    res = runner.invoke(main, ["analyse", str(cross_csv), "--design", "crossover", "--r", "0.5", "--fixed",
                               "--mcid", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Per-study provenance" in res.stdout and "r=0.5 assumed" in res.stdout
    d = json.loads(out.read_text())
    mean, sd = fe(CROSS_Y, cross_v(0.5))
    e = d["estimates"][0]
    assert e["mean"] == pytest.approx(mean, abs=1e-10) and e["sd"] == pytest.approx(sd, abs=1e-10)
    assert e["p_benefit"] == pytest.approx(stats.norm.cdf(-1, mean, sd), abs=1e-10)
    prov = {p["study"]: p for p in d["provenance"]}
    assert [prov[s]["route"] for s in ("X1", "X2", "X3", "X4")] == ["periods", "differences", "t", "periods"]
    assert prov["X1"]["assumed_r"] == 0.5 and prov["X2"]["assumed_r"] is None
    assert prov["X3"]["converted"] is True and "t statistic" in prov["X3"]["conversion"]


def test_r_grid_rows_equal_closed_forms_and_name_the_rederived_trials(runner, cross_csv, tmp_path):
    out = tmp_path / "grid.json"
    res = runner.invoke(main, ["analyse", str(cross_csv), "--design", "crossover", "--r", "0.5,0.2,0.8", "--fixed",
                               "--mcid", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Sensitivity to the assumed within-patient correlation r (re-derives X1, X4)" in res.stdout
    d = json.loads(out.read_text())
    rows = [r for r in d["sensitivity"]["rows"] if r["target"] == "mean"]
    assert [r["r"] for r in rows] == [0.5, 0.2, 0.8]
    for r in rows:
        mean, sd = fe(CROSS_Y, cross_v(r["r"]))
        assert r["mean"] == pytest.approx(mean, abs=1e-10) and r["p_benefit"] == pytest.approx(
            stats.norm.cdf(-1, mean, sd), abs=1e-10)
        assert r["verdict"] == kb.VerdictRule()(r["p_benefit"], r["p_trivial"], r["p_harm"])
    assert d["sensitivity"]["grid"]["r"]["rederived"] == {"as given": ["X1", "X4"]}


def test_r_grid_without_an_assumed_correlation_is_a_clear_error(runner, tmp_path):
    path = tmp_path / "diffs.csv"
    CROSS.iloc[[1, 2]].to_csv(path, index=False)
    res = runner.invoke(main, ["analyse", str(path), "--design", "crossover", "--r", "0.2,0.8", "--fixed"])
    one_line_error(res, r"no trial of the data needs an assumed within-patient correlation")


# --------------------------------------------------------------------------- paired measures
def paired_csv(tmp_path, ri=False):
    d = pd.DataFrame({"study": ["A", "B", "C"], "m1i": [30.6, 23.5, 12.0], "m2i": [38.5, 26.8, 15.5],
                      "sd1i": [15.0, 3.1, 6.0], "sd2i": [11.6, 4.1, 5.0], "ni": [20, 50, 35]})
    if ri:
        d["ri"] = [0.47, 0.64, None]
    path = tmp_path / "paired.csv"
    d.to_csv(path, index=False)
    return path, d


def test_paired_measure_without_correlation_is_a_data_error(runner, tmp_path):
    path, _ = paired_csv(tmp_path)
    res = runner.invoke(main, ["analyse", str(path), "--measure", "mc", "--mcid", "2"])
    one_line_error(res, r"study 'A', column 'ri'.*no silent default.*CLI: --r")
    path, _ = paired_csv(tmp_path, ri=True)  # one study without ri
    res = runner.invoke(main, ["analyse", str(path), "--measure", "MC", "--mcid", "2"])
    one_line_error(res, r"study 'C', column 'ri'")


def test_paired_measure_with_r_and_the_unit_information_default_prior(runner, tmp_path):
    path, d = paired_csv(tmp_path, ri=True)
    out = tmp_path / "mc.json"
    res = runner.invoke(main, ["analyse", str(path), "--measure", "MC", "--r", "0.5", "--mcid", "2", "--json",
                               str(out)])
    assert res.exit_code == 0, res.output
    r = np.array([0.47, 0.64, 0.5])
    v = (d["sd1i"] ** 2 + d["sd2i"] ** 2 - 2 * r * d["sd1i"] * d["sd2i"]).to_numpy() / d["ni"].to_numpy()
    uisd = math.sqrt(d["ni"].sum() / np.sum(1 / v))  # Röver et al. 2021 with n = people measured twice
    j = json.loads(out.read_text())
    assert j["settings"]["prior_tau"]["text"] == f"halfnormal({0.5 * uisd:.4g})"
    assert [p["assumed_r"] for p in j["provenance"]] == [None, None, 0.5]
    res = runner.invoke(main, ["analyse", str(path), "--measure", "MC", "--r", "0.5,0.9", "--fixed", "--mcid", "2",
                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = [x for x in json.loads(out.read_text())["sensitivity"]["rows"] if x["target"] == "mean"]
    y = (d["m1i"] - d["m2i"]).to_numpy()
    for row, rr in zip(rows, (0.5, 0.9)):
        rv = np.array([0.47, 0.64, rr])
        vv = (d["sd1i"] ** 2 + d["sd2i"] ** 2 - 2 * rv * d["sd1i"] * d["sd2i"]).to_numpy() / d["ni"].to_numpy()
        assert row["mean"] == pytest.approx(fe(y, vv)[0], abs=1e-10)


# --------------------------------------------------------------------------- multi-arm and time windows
ARMS = pd.DataFrame({"study": ["S1", "S1", "S2", "S2", "S2"], "arm": ["ket", "pbo", "low", "high", "pbo"],
                     "mi": [-3.1, -2.0, -2.9, -3.6, -2.0], "sdi": [2.2, 2.1, 2.0, 2.1, 2.2],
                     "ni": [30, 30, 30, 30, 30]})


def test_multiarm_correlated_split_and_combine(runner, tmp_path):
    path = tmp_path / "arms.csv"
    ARMS.to_csv(path, index=False)
    out = tmp_path / "arms.json"
    base = ["analyse", str(path), "--design", "multiarm", "--control", "pbo", "--measure", "MD", "--mcid", "1",
            "--prior-tau", "halfnormal(1)", "--json", str(out)]
    res = runner.invoke(main, base)
    assert res.exit_code == 0, res.output
    assert "Cov(delta_ij, delta_ik) = 0.5 tau^2" in res.stdout and "rma.mv" in res.stdout
    y = np.array([-1.1, -0.9, -1.6])
    v0 = 2.2**2 / 30
    S = np.diag([2.2**2 / 30 + 2.1**2 / 30, 2.0**2 / 30 + v0, 2.1**2 / 30 + v0])
    S[1, 2] = S[2, 1] = v0
    mv = ExactMultivariateNormal(y, S, [0, 1, 1], [0, 0, 0], Flat(), HalfNormal(1.0), rho=0.5)
    e = json.loads(out.read_text())["estimates"][0]
    assert e["target"] == "mean" and e["mean"] == pytest.approx(mv.mu.mean, rel=1e-10)
    assert e["p_benefit"] == pytest.approx(float(mv.mu.cdf(-1.0)), abs=1e-10)
    res = runner.invoke(main, [*base, "--multiarm", "split", "--fixed"])
    assert res.exit_code == 0, res.output
    assert "split among 2 comparisons" in res.stdout
    vs = np.array([2.2**2 / 30 + 2.1**2 / 30, 2.0**2 / 30 + 2.2**2 / 15, 2.1**2 / 30 + 2.2**2 / 15])
    assert json.loads(out.read_text())["estimates"][0]["mean"] == pytest.approx(fe(y, vs)[0], abs=1e-10)
    res = runner.invoke(main, [*base, "--fixed"])
    usage_error(res, r"fitted by the exact multivariate model: it takes no --by, --fixed")
    usage_error(runner.invoke(main, base[:4] + ["--measure", "MD"]), r"needs --control")


def test_time_windows_need_rho_time_and_its_grid_equals_the_model(runner, tmp_path):
    d = pd.DataFrame({"study": ["A", "A", "A", "B", "B", "C", "C"],
                      "time": ["short", "medium", "long", "short", "long", "short", "medium"],
                      "yi": [-1.6, -1.1, -0.4, -1.2, -0.2, -1.9, -0.9], "vi": [0.2, 0.22, 0.25, 0.3, 0.35, 0.18, 0.2],
                      "ni": [60, 60, 60, 40, 40, 80, 80]})
    path = tmp_path / "time.csv"
    d.to_csv(path, index=False)
    usage_error(runner.invoke(main, ["analyse", str(path), "--design", "time", "--measure", "MD"]),
                r"needs --rho-time")
    out = tmp_path / "t.json"
    res = runner.invoke(main, ["analyse", str(path), "--design", "time", "--measure", "MD", "--mcid", "1",
                               "--rho-time", "0.5,0.9", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "rho_time = 0.5 (ASSUMED" in res.stdout and "Sensitivity to the assumed correlation across time" in res.stdout
    rows = json.loads(out.read_text())["sensitivity"]["rows"]
    for rt in (0.5, 0.9):
        m = kb.MultivariateModel.from_time_points(d, rho_time=rt, measure="MD")
        dt = m.fit(mcid=1, seed=1, draws=10, chains=1, frequentist=False).decision_table().set_index("target")
        for row in (x for x in rows if x["rho_time"] == rt):
            assert row["p_benefit"] == pytest.approx(dt.loc[row["target"], "p_benefit"], abs=1e-10)


@pytest.mark.parametrize(("args", "pattern"), [
    (["--measure", "OR", "--r", "0.5"], r"--r is the assumed within-patient correlation of paired measures"),
    (["--measure", "MC", "--r", "1.5"], r"1.5 is not a correlation in \[-1, 1\]"),
    (["--measure", "MC", "--r", "0.5,x"], r"takes numbers separated by commas"),
    (["--measure", "MC", "--rho-time", "0.5"], r"--rho-time belongs to --design time"),
    (["--measure", "MC", "--route", "t"], r"--route belongs to --design crossover"),
    (["--measure", "MC", "--control", "pbo"], r"--control and --multiarm belong to --design multiarm"),
    (["--measure", "MC", "--r", "0.2,0.5", "--by", "drug"], r"a grid over --r / --rho-time runs the normal-normal"),
    (["--design", "crossover", "--measure", "SMD"], r"crossover trials give a paired mean difference \(MD\)"),
])
def test_design_options_that_do_not_fit_are_usage_errors(runner, tmp_path, args, pattern):
    path, _ = paired_csv(tmp_path, ri=True)
    usage_error(runner.invoke(main, ["analyse", str(path), *args]), pattern)


def test_every_json_carries_the_provenance(runner, tmp_path):
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))[["study", "ai", "n1i", "ci", "n2i"]]
    path = tmp_path / "mg.csv"
    mg.to_csv(path, index=False)
    out = tmp_path / "mg.json"
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR", "--json", str(out)])
    assert res.exit_code == 0, res.output
    prov = json.loads(out.read_text())["provenance"]
    assert len(prov) == 16 and {"study", "note"} <= set(prov[0])
    zero = [p for p in prov if "added" in p["note"]]
    assert zero and "0.5 added" in zero[0]["note"] and "Per-study provenance" in res.stdout
