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
