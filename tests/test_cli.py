"""Command line: ``ketabayes analyse``, ``datasets`` and ``demo`` through click's CliRunner.

Click 8.2+ keeps stdout and stderr apart on the runner's result (``.stdout``,
``.stderr``; ``.output`` is the interleaved terminal view). Numbers checked here come
from closed forms written in the tests (the conjugate normal posterior of a
fixed-effect model with a flat prior, and of a published estimate under the prior
panel), never from running ketabayes' own functions.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

import ketabayes as kb
from ketabayes.cli import main

Z95 = 1.6448536269514722
Z975 = 1.959963984540054
RM5 = "tests/data/review_utf8.rm5"
ESTIMATE_FIELDS = ("mean", "sd", "ci_low", "median", "ci_high", "hpd_low", "hpd_high", "p_benefit", "p_trivial",
                   "p_harm", "p_any_benefit")


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def mg_csv(tmp_path):
    """The magnesium trials with metafor's column names (ai, n1i, ci, n2i) and unique study labels."""
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))[["study", "ai", "n1i", "ci", "n2i"]]
    path = tmp_path / "magnesium.csv"
    mg.to_csv(path, index=False)
    return path


def _check_fields(d):
    assert d["estimates"][0]["target"] == "mean"
    assert [e["target"] for e in d["estimates"]] == ["mean", "predictive"]
    for e in d["estimates"]:
        for k in ESTIMATE_FIELDS:
            assert isinstance(e[k], float), k
    assert set(d["tau"]) >= {"mean", "ci_low", "median", "ci_high", "hpd_low", "hpd_high"}
    assert set(d["frequentist"]) == {"FE", "DL", "REML", "REML-HKSJ"}
    for f in d["frequentist"].values():
        assert {"estimate", "se", "ci_low", "ci_high", "tau2", "pi_low", "pi_high"} <= set(f)
    assert d["diagnostics"]
    for k in ("prior_mu", "prior_tau", "thresholds", "seed", "versions", "data_hash", "engine"):
        assert k in d["settings"], k


def _assert_one_line_error(res, *patterns, code=1):
    """A data error (exit 1; a bad prior string is a usage error, code=2): one line on stderr."""
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("ketabayes: error: "), lines[0]
    assert "Traceback" not in res.output
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])


def _assert_usage_error(res, *patterns):
    """A usage error: exit 2 and click's usage message, the reason on its 'Error:' line."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert res.stdout == ""
    assert "Traceback" not in res.output
    assert res.stderr.startswith("Usage: "), res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, res.stderr
    for p in patterns:
        assert re.search(p, error[0]), (p, error[0])


# ---------------------------------------------------------------------------
# analyse: working runs
# ---------------------------------------------------------------------------
def test_analyse_csv_writes_complete_json(runner, mg_csv, tmp_path):
    out = tmp_path / "out.json"
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", "1.25", "--json", str(out),
                               "--prior-mu", "normal(0, 2)", "--prior-tau", "halfnormal(0.5)"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert "Decision table" in res.stdout and "P(benefit)" in res.stdout
    assert "Frequentist reference" in res.stdout
    d = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    _check_fields(d)
    s = d["settings"]
    assert s["prior_mu"]["text"] == "normal(0, 2)" and s["prior_tau"]["text"] == "halfnormal(0.5)"
    assert s["thresholds"] == {"mcid": 1.25, "benefit": "lower", "harm": None, "ratio": True}
    assert s["engine"] == "exact" and s["seed"] == 1
    assert d["measure"] == "OR" and d["scale"] == "log"
    assert d["frequentist"]["FE"]["k"] == 16


def test_analyse_fixed_effect_equals_inverse_variance_closed_form(runner, mg_csv, tmp_path, magnesium_or):
    out = tmp_path / "fixed.json"
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", "1.25", "--fixed",
                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "fixed-effect" in res.stdout
    d = json.loads(out.read_text())
    w = 1 / magnesium_or["vi"].to_numpy()
    mean, sd = float(np.sum(w * magnesium_or["yi"].to_numpy()) / w.sum()), math.sqrt(1 / w.sum())
    e = d["estimates"][0]
    assert e["mean"] == pytest.approx(mean, abs=1e-10)  # flat prior: posterior = N(FE estimate, FE se^2)
    assert e["sd"] == pytest.approx(sd, abs=1e-10)
    assert e["p_trivial"] == pytest.approx(stats.norm.cdf(math.log(1.25), mean, sd)
                                           - stats.norm.cdf(-math.log(1.25), mean, sd), abs=1e-10)
    assert d["settings"]["fixed"] is True and d["settings"]["prior_tau"] is None
    assert d["tau"] == {"mean": 0.0, "ci_low": 0.0, "median": 0.0, "ci_high": 0.0, "hpd_low": 0.0, "hpd_high": 0.0}
    # a normal posterior: the shortest interval is the equal-tailed one
    assert e["hpd_low"] == pytest.approx(e["ci_low"], abs=1e-8) and e["hpd_high"] == pytest.approx(e["ci_high"],
                                                                                                   abs=1e-8)


# the short run may not reach the ESS / R-hat thresholds: the CLI then prints a one-line
# "ketabayes: warning:" on stderr, which is what this test checks (instead of raising it)
@pytest.mark.filterwarnings("always::ketabayes.errors.ConvergenceWarning")
def test_analyse_nuts_short_run(runner, mg_csv, tmp_path):
    out = tmp_path / "nuts.json"
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", "1.25", "--method", "nuts",
                               "--draws", "300", "--chains", "2", "--prior-mu", "normal(0, 2)",
                               "--prior-tau", "halfnormal(0.5)", "--seed", "3", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "NUTS diagnostics: divergences=" in res.stdout
    assert all(line.startswith("ketabayes: warning: NUTS diagnostics failed")
               for line in res.stderr.strip().splitlines() if line)
    d = json.loads(out.read_text())
    _check_fields(d)
    assert d["settings"]["engine"] == "nuts" and d["settings"]["draws"] == 300 and d["settings"]["chains"] == 2
    assert {"divergences", "max_rhat", "min_ess_bulk", "ok"} <= set(d["diagnostics"])
    # a real (small) posterior: the average effect is a reduction in the odds of death
    assert d["estimates"][0]["ci_high"] < 0


def test_analyse_generic_yi_sei_input(runner, tmp_path, magnesium_or):
    path = tmp_path / "gen.csv"
    magnesium_or[["study", "yi", "sei"]].to_csv(path, index=False)
    out = tmp_path / "gen.json"
    res = runner.invoke(main, ["analyse", str(path), "--mcid", "0.2", "--prior-tau", "halfnormal(0.5)",
                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "measure GEN" in res.stdout
    d = json.loads(out.read_text())
    assert d["measure"] == "GEN" and d["scale"] == "identity"
    assert d["settings"]["thresholds"]["ratio"] is False
    _check_fields(d)
    # fixed-effect with yi/sei: closed form again
    res = runner.invoke(main, ["analyse", str(path), "--fixed", "--json", str(out)])
    assert res.exit_code == 0, res.output
    w = 1 / magnesium_or["sei"].to_numpy() ** 2
    assert json.loads(out.read_text())["estimates"][0]["mean"] == pytest.approx(
        float(np.sum(w * magnesium_or["yi"].to_numpy()) / w.sum()), abs=1e-10)


def test_analyse_generic_input_needs_a_tau_prior(runner, tmp_path, magnesium_or):
    path = tmp_path / "gen.csv"
    magnesium_or[["study", "yi", "sei"]].to_csv(path, index=False)
    res = runner.invoke(main, ["analyse", str(path), "--mcid", "0.2"])
    _assert_one_line_error(res, r"no default prior for tau on the GEN scale", r"--prior-tau", code=2)


# ---------------------------------------------------------------------------
# RevMan input
# ---------------------------------------------------------------------------
def test_analyse_revman_outcome_by_number(runner, tmp_path):
    out = tmp_path / "rm.json"
    res = runner.invoke(main, ["analyse", RM5, "--outcome", "1.1", "--mcid", "0.3", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Pain, 0 to 10 scale, end of treatment" in res.stdout
    d = json.loads(out.read_text())
    assert d["measure"] == "SMD"
    assert d["frequentist"]["FE"]["k"] == 4


# the zero-events study 'Okafor 2014' is reported by two DataWarnings, which the CLI prints as
# "ketabayes: warning:" lines on stderr (checked here) instead of raising them
@pytest.mark.filterwarnings("always::ketabayes.errors.DataWarning")
def test_analyse_revman_outcome_by_name_reports_left_out_study(runner, tmp_path):
    out = tmp_path / "rm.json"
    res = runner.invoke(main, ["analyse", RM5, "--outcome", "withdrawal due to adverse events", "--mcid", "1.25",
                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "left out (not estimable): Okafor 2014" in res.stdout
    warn_lines = res.stderr.strip().splitlines()
    assert warn_lines and all(line.startswith("ketabayes: warning: ") for line in warn_lines)
    assert any("Okafor 2014" in line for line in warn_lines)
    d = json.loads(out.read_text())
    assert d["measure"] == "OR" and d["frequentist"]["FE"]["k"] == 3
    assert d["settings"]["excluded_studies"] == ["Okafor 2014"]


def test_analyse_revman_without_outcome_lists_the_outcomes(runner):
    res = runner.invoke(main, ["analyse", RM5, "--mcid", "1.25"])
    _assert_usage_error(res, r"holds 5 outcomes; choose one with --outcome",
                           r"1\.1 Pain, 0 to 10 scale", r"1\.2 Withdrawal due to adverse events",
                           r"2\.2 Quality of life, adjusted difference")


def test_analyse_revman_unknown_outcome(runner):
    res = runner.invoke(main, ["analyse", RM5, "--outcome", "9.9", "--mcid", "1.25"])
    _assert_usage_error(res, r"--outcome: '9\.9' not found")


def test_analyse_revman_unknown_outcome_lists_the_outcomes(runner):
    res = runner.invoke(main, ["analyse", RM5, "--outcome", "9.9", "--mcid", "1.25"])
    _assert_usage_error(res, r"not found", r"1\.2 Withdrawal due to adverse events")


# ---------------------------------------------------------------------------
# bad input: exit status 1 (data) or 2 (usage), no traceback
# ---------------------------------------------------------------------------
def test_missing_file(runner, tmp_path):
    res = runner.invoke(main, ["analyse", str(tmp_path / "nope.csv"), "--measure", "OR"])
    _assert_usage_error(res, r"'DATA'", r"nope\.csv' does not exist")


def test_misspelled_column_suggests_the_right_one(runner, mg_csv, tmp_path):
    bad = pd.read_csv(mg_csv).rename(columns={"n1i": "n1"})
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR"])
    _assert_one_line_error(res, r"column 'n1i'", r"Did you mean n1i='n1'\?")


def test_misspelled_study_column(runner, mg_csv):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--study", "trial"])
    _assert_one_line_error(res, r"column 'trial'", r"Available columns: 'study'")


@pytest.mark.parametrize(("option", "value", "pattern"), [
    ("--prior-tau", "halfnormall(1)", r"unknown prior 'halfnormall'.*did you mean 'halfnormal'"),
    ("--prior-mu", "normal(0)", r"normal takes 2 argument"),
    ("--prior-tau", "halfnormal(-1)", r"must be a positive finite number"),
])
def test_bad_prior_string(runner, mg_csv, option, value, pattern):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", option, value])
    _assert_one_line_error(res, pattern, code=2)  # a prior comes from an option: usage error


@pytest.mark.parametrize("mcid", ["-1", "0", "nan"])
def test_bad_mcid(runner, mg_csv, mcid):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", mcid])
    _assert_usage_error(res, r"mcid must be a positive number")


def test_ratio_mcid_of_one(runner, mg_csv):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", "1"])
    _assert_usage_error(res, r"must differ from 1")


def test_nan_value_names_the_study(runner, mg_csv, tmp_path):
    df = pd.read_csv(mg_csv).astype({"ai": float})
    df.loc[2, "ai"] = np.nan
    path = tmp_path / "nan.csv"
    df.to_csv(path, index=False)
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR"])
    _assert_one_line_error(res, r"study 'Smith 1986'", r"column 'ai'", r"missing value")


def test_empty_file_and_missing_measure(runner, mg_csv, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _assert_one_line_error(runner.invoke(main, ["analyse", str(empty), "--measure", "OR"]), r"the file is empty")
    _assert_usage_error(runner.invoke(main, ["analyse", str(mg_csv)]), r"give --measure")


# ---------------------------------------------------------------------------
# datasets and demo
# ---------------------------------------------------------------------------
def test_datasets_lists_three(runner):
    res = runner.invoke(main, ["datasets"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.strip().splitlines() if line.strip()]
    assert len(lines) == 4  # header + three data sets
    for name in ("ferraro2025_published", "magnesium_mi", "parkinson_adjuvants"):
        assert sum(name in line for line in lines) == 1, name


def _conjugate_md_pain(m0, s0):
    y, se = -15.79, (0.51 + 32.09) / (2 * Z975)
    prec = 1 / s0**2 + 1 / se**2
    return (m0 / s0**2 + y / se**2) / prec, math.sqrt(1 / prec)


def test_demo_without_nuts(runner, tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(main, ["demo", "--no-nuts", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    text = res.stdout
    assert text.count("P(benefit)") >= 3  # pain, adverse events, magnesium
    for name in ("sceptical", "neutral", "enthusiastic"):
        assert len(re.findall(rf"^\s*{name}\s+mean", text, flags=re.MULTILINE)) == 2, name  # pain + AEs
    # the printed pain probabilities are the conjugate normal ones, rounded to 3 decimals
    pain = text[text.index("1a."):text.index("1b.")]
    for name, (m0, s0) in {"sceptical": (0.0, 10 / Z95), "neutral": (0.0, 50.0),
                           "enthusiastic": (-10.0, 10 / Z95)}.items():
        m, s = _conjugate_md_pain(m0, s0)
        row = re.search(rf"^\s*{name}\s+mean.*$", pain, flags=re.MULTILINE).group(0)
        p_ben = stats.norm.cdf(-10, m, s)
        p_triv = stats.norm.cdf(10, m, s) - p_ben
        assert f"{p_ben:.3f}" in row.split(), (name, row)
        assert f"{p_triv:.3f}" in row.split(), (name, row)
    for f in ("ketamine_pain_posterior_neutral.png", "ketamine_adverse_events_posterior_neutral.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    nc = out / "magnesium_exact.nc"
    assert nc.exists()
    back = kb.load_result(nc)
    assert back.engine == "exact" and len(back.studies) == 16
    assert back.settings["seed"] == 20251


def test_precomputed_log_ratios_take_ratio_thresholds(runner, tmp_path):
    """yi/vi columns with --measure RR: yi is a log RR and the MCID a ratio (conjugate closed form)."""
    import math

    from scipy import stats

    y = [-0.9, -0.3, -0.5]
    v = [0.04, 0.09, 0.05]
    path = tmp_path / "lrr.csv"
    path.write_text("study,yi,vi\n" + "\n".join(f"T{i},{a},{b}" for i, (a, b) in enumerate(zip(y, v))) + "\n")
    out = tmp_path / "r.json"
    res = runner.invoke(main, ["analyse", str(path), "--measure", "RR", "--mcid", "1.25", "--fixed",
                               "--prior-mu", "normal(0, 1)", "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    prec = sum(1 / b for b in v) + 1.0
    mean = sum(a / b for a, b in zip(y, v)) / prec
    sd = prec**-0.5
    est = d["estimates"][0]
    assert est["p_benefit"] == pytest.approx(stats.norm.cdf(math.log(0.8), mean, sd), abs=1e-9)
    assert est["p_harm"] == pytest.approx(stats.norm.sf(math.log(1.25), mean, sd), abs=1e-9)
    assert d["scale"] == "log" and d["settings"]["thresholds"]["ratio"] is True


def test_fixed_with_by_is_a_clear_error(runner, tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("study,drug,yi,vi\nA,x,1,1\nB,y,2,1\nC,x,0,2\n")
    res = runner.invoke(main, ["analyse", str(path), "--by", "drug", "--fixed"])
    _assert_usage_error(res, "--fixed cannot be combined with --by")


def test_analyse_prints_revman_table(runner, mg_csv, magnesium_or):
    # RevMan 2025: REML + Hartung-Knapp-Sidik-Jonkman. Computed here independently: REML by bounded
    # minimisation of the restricted likelihood, then the HKSJ variance sum w (y - mu)^2 / ((k - 1) sum w).
    from scipy import optimize

    y, v = magnesium_or["yi"].to_numpy(), magnesium_or["vi"].to_numpy()
    k = y.size

    def neg_reml(t):
        w = 1 / (v + t)
        mu = np.sum(w * y) / w.sum()
        return 0.5 * (np.sum(np.log(v + t)) + math.log(w.sum()) + np.sum(w * (y - mu) ** 2))

    tau2 = optimize.minimize_scalar(neg_reml, bounds=(0, 10), method="bounded", options={"xatol": 1e-12}).x
    w = 1 / (v + tau2)
    mu = np.sum(w * y) / w.sum()
    se = math.sqrt(np.sum(w * (y - mu) ** 2) / ((k - 1) * w.sum()))
    t = stats.t.ppf(0.975, k - 1)
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--prior-mu", "normal(0, 2)",
                               "--prior-tau", "halfnormal(0.5)"])
    assert res.exit_code == 0, res.output
    assert "Frequentist analysis as RevMan reports it" in res.stdout
    line = next(x for x in res.stdout.splitlines() if "Total (95% CI)" in x)
    want = f"OR {math.exp(mu):.3g} [{math.exp(mu - t * se):.3g}, {math.exp(mu + t * se):.3g}]"
    assert line.strip() == f"Total (95% CI): {want}"
    assert f"df = {k - 1}" in res.stdout and "Q-profile" in res.stdout and "DerSimonian-Laird" in res.stdout



# ---------------------------------------------------------------------------
# CLI conventions (issue #13 item 6): --json -, --quiet, exit statuses, --col, zero cells, --tune, progress
# ---------------------------------------------------------------------------
def _fe_log_or(a, b, c, d):
    """Fixed-effect inverse-variance pooled log OR and its se, written out here (Woolf's variance)."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    y = np.log(a * d / (b * c))
    w = 1 / (1 / a + 1 / b + 1 / c + 1 / d)
    return float(np.sum(w * y) / w.sum()), math.sqrt(1 / w.sum())


SIM_2X2 = "study,ai,n1i,ci,n2i\nA,3,40,6,40\nB,5,50,9,52\nC,0,30,4,31\nD,0,20,0,22\n"  # SIMULATED counts


def test_json_to_stdout_with_quiet_is_pure_json(runner, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(SIM_2X2)
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR", "--fixed", "--mcid", "1.25", "--json", "-",
                               "--quiet", "--no-drop00"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    d = json.loads(res.stdout)  # the whole of stdout is one JSON document
    # only0 (default): 0.5 added to every cell of C and D, which have a zero cell
    mean, sd = _fe_log_or([3, 5, 0.5, 0.5], [37, 45, 30.5, 20.5], [6, 9, 4.5, 0.5], [34, 43, 27.5, 22.5])
    assert d["estimates"][0]["mean"] == pytest.approx(mean, abs=1e-10)
    assert d["estimates"][0]["sd"] == pytest.approx(sd, abs=1e-10)


def test_json_to_stdout_moves_the_text_report_to_stderr(runner, mg_csv):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--mcid", "1.25", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["measure"] == "OR"
    assert "Decision table" in res.stderr and "Decision table" not in res.stdout


def test_quiet_silences_the_text_report(runner, mg_csv, tmp_path):
    out = tmp_path / "q.json"
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--quiet", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""
    assert json.loads(out.read_text())["measure"] == "OR"


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--draws", "-5"], ["--draws", "0"], ["--chains", "0"],
                                  ["--tune", "-1"], ["--add", "-0.5"], ["--to", "sometimes"],
                                  ["--measure", "XX"], ["--col", "ai"], ["--col", "=x"]])
def test_bad_option_values_are_usage_errors(runner, mg_csv, args):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", *args])
    _assert_usage_error(res)


def test_usage_error_versus_data_error_exit_status(runner, mg_csv, tmp_path):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--prior-sd", "drug=halfnormal(1)"])
    _assert_usage_error(res, r"--prior-sd needs --by")
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--harm", "1.5"])
    _assert_usage_error(res, r"--harm needs --mcid")
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--outcome", "1.1"])
    _assert_usage_error(res, r"--outcome chooses an outcome of a RevMan file")
    bad = tmp_path / "neg.csv"
    bad.write_text("study,ai,n1i,ci,n2i\nA,-3,40,6,40\nB,5,50,9,52\n")  # SIMULATED
    _assert_one_line_error(runner.invoke(main, ["analyse", str(bad), "--measure", "OR"]), r"study 'A'", r"'ai'")


def test_help_documents_exit_statuses_and_lists_working_measures(runner):
    from ketabayes.data.effect_sizes import MEASURES as ES_MEASURES

    res = runner.invoke(main, ["analyse", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "Exit status: 0 ok; 1 data or convergence error" in text and "2 usage error" in text
    listed = re.search(r"--measure \[([^\]]+)\]", text).group(1).upper().split("|")
    assert set(listed) == set(ES_MEASURES) | {"HR"}
    from ketabayes.cli import ZERO_CELL_TO
    from ketabayes.data.effect_sizes import _TO

    assert ZERO_CELL_TO == _TO  # --to offers exactly effect_sizes' choices


def test_hr_needs_precomputed_log_hazard_ratios(runner, mg_csv, tmp_path):
    _assert_usage_error(runner.invoke(main, ["analyse", str(mg_csv), "--measure", "HR"]),
                        r"--measure", r"HR works only with precomputed yi")
    path = tmp_path / "hr.csv"
    path.write_text("study,yi,sei\nA,-0.2,0.1\nB,-0.1,0.2\n")  # SIMULATED log HRs
    res = runner.invoke(main, ["analyse", str(path), "--measure", "HR", "--fixed", "--mcid", "1.25", "--json", "-",
                               "-q"])
    assert res.exit_code == 0, res.output
    w = np.array([100.0, 25.0])
    assert json.loads(res.stdout)["estimates"][0]["mean"] == pytest.approx((-20 - 2.5) / w.sum(), abs=1e-12)


@pytest.mark.filterwarnings("always::ketabayes.errors.DataWarning")  # study D: no events, left out
def test_column_mapping(runner, tmp_path):
    path = tmp_path / "named.csv"
    path.write_text(SIM_2X2.replace("ai,n1i,ci,n2i", "events_t,total_t,events_c,total_c"))
    base = ["analyse", str(path), "--measure", "OR", "--fixed", "--json", "-", "-q"]
    res = runner.invoke(main, [*base, "--col", "ai=events_t", "--col", "n1i=total_t", "--col", "ci=events_c",
                               "--col", "n2i=total_c"])
    assert res.exit_code == 0, res.output
    mean, _ = _fe_log_or([3, 5, 0.5], [37, 45, 30.5], [6, 9, 4.5], [34, 43, 27.5])  # D: no events, dropped
    assert json.loads(res.stdout)["estimates"][0]["mean"] == pytest.approx(mean, abs=1e-10)
    res = runner.invoke(main, [*base, "--col", "ai=events_t", "--col", "ai=events_c"])
    _assert_usage_error(res, r"ai is mapped twice")
    res = runner.invoke(main, [*base, "--col", "ai=evnts_t"])
    assert res.exit_code == 1 and "ketabayes: error: " in res.stderr


@pytest.mark.filterwarnings("always::ketabayes.errors.DataWarning")
def test_zero_cell_options_reach_effect_sizes(runner, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(SIM_2X2)
    base = ["analyse", str(path), "--measure", "OR", "--fixed", "--json", "-", "-q"]
    res = runner.invoke(main, [*base, "--add", "1", "--to", "all"])
    assert res.exit_code == 0, res.output
    assert "'D'" in res.stderr  # the double-zero study is reported as left out (drop00 default)
    mean, _ = _fe_log_or([4, 6, 1], [38, 46, 31], [7, 10, 5], [35, 44, 28])
    assert json.loads(res.stdout)["estimates"][0]["mean"] == pytest.approx(mean, abs=1e-10)
    res = runner.invoke(main, [*base, "--to", "none", "--no-drop00"])
    assert res.exit_code == 0, res.output
    mean, _ = _fe_log_or([3, 5], [37, 45], [6, 9], [34, 43])  # C and D not estimable without correction
    assert json.loads(res.stdout)["estimates"][0]["mean"] == pytest.approx(mean, abs=1e-10)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("args", "expected"), [
    ([], {"progressbar": False}),  # CliRunner's stderr is not a terminal
    (["--progress"], {"progressbar": True}),
    (["--no-progress", "--tune", "50"], {"progressbar": False, "tune": 50}),
])
def test_nuts_progress_and_tune_are_passed_to_fit(runner, mg_csv, monkeypatch, args, expected):
    from ketabayes.model.random_effects import RandomEffectsModel

    seen = {}

    def fake_fit(self, method, **kwargs):  # records the settings only: no sampling in this test
        seen.update(kwargs, method=method)
        raise _Stop

    monkeypatch.setattr(RandomEffectsModel, "fit", fake_fit)
    res = runner.invoke(main, ["analyse", str(mg_csv), "--measure", "OR", "--method", "nuts", *args])
    assert isinstance(res.exception, _Stop)
    assert seen["method"] == "nuts"
    for k, v in expected.items():
        assert seen[k] == v, k
    if "tune" not in expected:
        assert "tune" not in seen  # the model's own default


# ---------------------------------------------------------------------------
# analyse --likelihood binomial
# ---------------------------------------------------------------------------
def test_analyse_binomial_likelihood_is_the_library_exact_fit(runner, tmp_path):
    """The counts of the magnesium trials (a zero-event arm) and a double-zero trial (SIMULATED row), under
    other column names: the CLI gives the library's exact binomial fit, keeps every trial and says what
    it did with the zero cells."""
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))[["study", "ai", "n1i", "ci", "n2i"]]
    mg = pd.concat([mg, pd.DataFrame({"study": ["SIMULATED double zero"], "ai": [0], "n1i": [20], "ci": [0],
                                      "n2i": [21]})], ignore_index=True)
    path = tmp_path / "counts.csv"
    mg.rename(columns={"ai": "deaths_mg"}).to_csv(path, index=False)
    out = tmp_path / "out.json"
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR", "--likelihood", "binomial", "--col",
                               "ai=deaths_mg", "--mcid", "1.25", "--prior-mu", "normal(0, 2)", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Binomial-logit" in res.stdout and "theta_i = mu + e_i" in res.stdout
    assert "zero-event arm: the counts enter the binomial likelihood as they are" in res.stdout
    assert "double-zero trial: kept" in res.stdout
    assert "continuity" not in res.stdout.split("Data:")[0].replace("(no continuity correction)", "")
    d = json.loads(out.read_text())
    lib = kb.BinomialModel(mg, prior_mu="normal(0, 2)").fit("exact", mcid=1.25, seed=1)
    want = lib.decision_table().set_index("target")
    got = {e["target"]: e for e in d["estimates"]}
    assert list(got) == ["mean", "predictive"]
    for t in ("mean", "predictive"):
        for k in ("mean", "p_benefit", "p_trivial", "p_harm"):
            assert got[t][k] == pytest.approx(float(want.loc[t, k]), rel=1e-12, abs=1e-15), (t, k)
    assert d["settings"]["engine"] == "exact" and d["settings"]["prior_tau"]["text"] == "halfnormal(0.5)"
    notes = {p["study"]: p["note"] for p in d["provenance"]}
    assert len(notes) == 17 and notes["SIMULATED double zero"].startswith("double-zero trial")


@pytest.mark.parametrize("args, pattern", [
    (["--measure", "RR"], "log odds ratios, not RR"),
    (["--measure", "OR", "--fixed"], "--likelihood binomial"),
    (["--measure", "OR", "--bma"], "--likelihood binomial"),
])
def test_analyse_binomial_likelihood_refuses_what_it_cannot_do(runner, mg_csv, args, pattern):
    res = runner.invoke(main, ["analyse", str(mg_csv), "--likelihood", "binomial", *args])
    _assert_usage_error(res, re.escape(pattern))


def test_analyse_binomial_likelihood_needs_counts(runner, tmp_path):
    path = tmp_path / "yi.csv"
    pd.DataFrame({"study": ["A", "B"], "yi": [0.1, -0.2], "vi": [0.1, 0.2]}).to_csv(path, index=False)
    res = runner.invoke(main, ["analyse", str(path), "--measure", "OR", "--likelihood", "binomial"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Error: --likelihood binomial needs the arms' counts: ai, n1i, ci, n2i not in yi.csv" in res.stderr


# ---------------------------------------------------------------------------
# analyse --bma --bias RoB --rob COLUMN
# ---------------------------------------------------------------------------
def _rob_csv(tmp_path):
    """Small invented log-OR table (not trial data) with an allocation-concealment judgement per trial."""
    path = tmp_path / "rob.csv"
    pd.DataFrame({"study": list("ABCDEF"), "yi": [-0.42, -0.10, -0.65, 0.05, -0.30, -0.55],
                  "vi": [0.040, 0.090, 0.060, 0.030, 0.050, 0.120],
                  "allocation": ["high", "low", "Unclear", "low", "low", "high"]}).to_csv(path, index=False)
    return path


def test_analyse_bma_risk_of_bias_model_is_the_library_fit(runner, tmp_path):
    path, out = _rob_csv(tmp_path), tmp_path / "out.json"
    args = ["analyse", str(path), "--measure", "OR", "--bma", "--bias", "RoB", "--rob", "allocation",
            "--prior-rob", "ROBES 2018:allocation_concealment", "--prior-mu", "normal(0, 1)", "--prior-tau",
            "halfnormal(0.5)", "--mcid", "1.1", "--json", str(out)]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "RE-H1-RoB" in res.stdout and "Decision table, model-averaged" in res.stdout
    d = json.loads(out.read_text())
    df = pd.read_csv(path)
    lib = kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", bias="RoB", rob="allocation",
                 prior_rob="ROBES 2018:allocation_concealment", mcid=1.1, measure="OR", seed=1)
    want = lib.models.set_index("model")
    got = {m["model"]: m for m in d["models"]} if "models" in d else None
    assert got is not None and set(got) == set(want.index)
    for label, row in want.iterrows():
        assert got[label]["post_prob"] == pytest.approx(float(row["post_prob"]), rel=1e-10, abs=1e-14)
    # high or unclear count as high risk for the ROBES prior (the levels it was estimated for)
    assert d["settings"]["engine_settings"]["rob_high"] == ["high", "unclear"]
    res = runner.invoke(main, [*args[:-2], "--rob-high", "high"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("extra, pattern", [
    (["--bias", "RoB"], "needs both --bias RoB"),
    (["--rob", "allocation"], "needs both --bias RoB"),
    (["--bias", "PET", "--rob", "allocation"], "needs both --bias RoB"),
    (["--prior-rob", "halfnormal(0.4)"], "need --rob"),
])
def test_analyse_risk_of_bias_options_go_together(runner, tmp_path, extra, pattern):
    res = runner.invoke(main, ["analyse", str(_rob_csv(tmp_path)), "--measure", "OR", "--bma", "--prior-mu",
                               "normal(0, 1)", "--prior-tau", "halfnormal(0.5)", *extra])
    _assert_usage_error(res, re.escape(pattern))


def test_analyse_risk_of_bias_column_must_exist(runner, tmp_path):
    res = runner.invoke(main, ["analyse", str(_rob_csv(tmp_path)), "--measure", "OR", "--bma", "--prior-mu",
                               "normal(0, 1)", "--prior-tau", "halfnormal(0.5)", "--bias", "RoB", "--rob", "alloc"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.strip().splitlines()[-1] == "ketabayes: error: column 'alloc': --rob names no column of rob.csv"


def test_analyse_bma_risk_of_bias_from_a_revman_file(runner, tmp_path):
    """With --rob, a .rm5 file's RoB 1 tables become rob_<domain> columns (invented fixture, tests/data)."""
    from pathlib import Path

    rm5 = Path(__file__).parent / "data" / "review_multiarm.rm5"
    out = tmp_path / "out.json"
    with warnings.catch_warnings():  # the CLI prints its DataWarnings (pytest would raise them)
        warnings.simplefilter("default", kb.DataWarning)
        res = runner.invoke(main, ["analyse", str(rm5), "--outcome", "1.2", "--measure", "OR", "--bma", "--bias",
                                   "RoB", "--rob", "rob_allocation_concealment", "--prior-mu", "normal(0, 1)",
                                   "--prior-tau", "halfnormal(0.5)", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "ketabayes: warning:" in res.stderr  # the fixture's multi-arm trials are named, not pooled silently
    d = json.loads(out.read_text())
    es = d["settings"]["engine_settings"]
    assert es["rob"] == "rob_allocation_concealment" and es["rob_high"] == ["high", "unclear"]
    assert {m["model"] for m in d["models"]} >= {"FE-H1-RoB", "RE-H1-RoB"}
