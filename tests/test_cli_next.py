"""CLI: ``analyse --next-trial`` and ``joint`` write JSON that matches the Python API."""

import json

import pytest
from click.testing import CliRunner

import ketabayes as kb
from ketabayes.cli import main

# SIMULATED toy data
TOY = "study,yi,vi\nA,-20,64\nB,-10,49\nC,-14,81\nD,-25,100\nE,2,90\n"


def test_analyse_next_trial_json(tmp_path):
    path = tmp_path / "toy.csv"
    path.write_text(TOY)
    out = tmp_path / "o.json"
    r = CliRunner().invoke(main, ["analyse", str(path), "--measure", "MD", "--mcid", "10", "--prior-tau",
                                  "halfnormal(10)", "--next-trial", "50,200", "--sd", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())["next_trial"]
    res = kb.RandomEffectsModel.from_arrays([-20, -10, -14, -25, 2], [64, 49, 81, 100, 90], studies=list("ABCDE"),
                                            measure="MD", prior_tau="halfnormal(10)").fit(mcid=10, seed=1)
    nt = kb.next_trial(res, [50, 200], sd=20)
    assert [row["assurance_benefit"] for row in d["table"]] == pytest.approx(list(nt.table["assurance_benefit"]))
    assert "heterogeneity" in d["statement"]
    r = CliRunner().invoke(main, ["analyse", str(path), "--measure", "MD", "--mcid", "10", "--prior-tau",
                                  "halfnormal(10)", "--next-trial", "50,x", "--sd", "20"])
    assert r.exit_code == 2 and "--next-trial" in r.output


def test_joint_json(tmp_path):
    out = tmp_path / "j.json"
    r = CliRunner().invoke(main, ["joint", "--efficacy=-15.79,-32.09,0.51,MD", "--harm", "3.26,1.05,10.09,RR",
                                  "--rho", "0.2", "--mcid", "10", "--harm-threshold", "1.25", "--baseline-risk", "0.2",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "assumed 0.2" in r.output
    d = json.loads(out.read_text())
    res = kb.BivariateModel.from_published((-15.79, -32.09, 0.51, "MD"), (3.26, 1.05, 10.09, "RR"),
                                           rho=0.2).fit(mcid=10, harm_threshold=1.25)
    assert d["joint"][0]["p_benefit_acceptable_harm"] == pytest.approx(
        res.joint_table()["p_benefit_acceptable_harm"].iloc[0])
    assert len(d["net_benefit"]) == 5
    r = CliRunner().invoke(main, ["joint", "--efficacy", "1,2", "--harm", "3.26,1.05,10.09,RR", "--mcid", "10",
                                  "--harm-threshold", "1.25"])
    assert r.exit_code == 2 and "--efficacy" in r.output


def test_demo_part_answers_joint_and_next_trial(tmp_path, capsys):
    """Demo part 1c prints the assumptions and the joint probability equals scipy's independent value."""
    import math

    from scipy import stats

    from ketabayes.demo_benefit_harm import run_benefit_harm
    from ketabayes.reporting.panel import reanalyse_published

    data = kb.load_dataset("ferraro2025_published")
    iv = data[(data["drug"] == "ketamine") & (data["route"] == "intravenous")].set_index("outcome")
    pain, ae = iv.loc["pain intensity"], iv.loc["adverse events (any)"]
    pa = reanalyse_published(-15.79, -32.09, 0.51, "MD", mcid=10, benefit="lower", seed=1)
    out = run_benefit_harm(pain, ae, pa.results["neutral"], tmp_path)
    text = capsys.readouterr().out
    for phrase in ("ASSUMPTION: the review does not report the correlation", "ASSUMPTION: SD of pain",
                   "ASSUMPTION: baseline risk", "No single trial is expected to settle it"):
        assert phrase in text
    z = stats.norm.ppf(0.975)
    p = stats.norm.cdf((-10 + 15.79) / (32.6 / (2 * z))) * stats.norm.cdf(
        (math.log(1.25) - math.log(3.26)) / ((math.log(10.09) - math.log(1.05)) / (2 * z)))
    jt = out["joint"][0.0].joint_table().iloc[0]
    assert jt["p_benefit_acceptable_harm"] == pytest.approx(p, abs=1e-9)
    assert (tmp_path / "ketamine_benefit_harm_plane.png").exists() and (tmp_path / "ketamine_next_trial.png").exists()
