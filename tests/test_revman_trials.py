"""Trial identity in RevMan imports (issue #10 item 2) and risk-of-bias judgements as data (issue #14 item 4).

The fixtures tests/data/review_multiarm.rm5 and review_multiarm_export.csv are invented (see
tests/data/README.md); every expected value below was typed from those files or computed by hand in
the test (the Gleser-Olkin covariances), not taken from the code under test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.revman import read_revman, split_analyses
from ketabayes.data.revman_rob import read_revman_rob, rob_wide
from ketabayes.data.revman_trials import find_repeated_trials, revman_arms, revman_contrasts
from ketabayes.data.risk_of_bias import check_risk_of_bias, high_risk_indicator, normalise_judgements
from ketabayes.errors import DataError, DataWarning, RevManError

DATA = Path(__file__).parent / "data"
MULTI = DATA / "review_multiarm.rm5"
MULTI_CSV = DATA / "review_multiarm_export.csv"
SHARED = Path(__file__).parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared example folder {SHARED} not found")


def _read(path, **kw):
    with pytest.warns(DataWarning, match="more than one row of one analysis") as record:
        df = read_revman(path, **kw)
    return df, str(record[0].message)


# ---------------------------------------------------------------------------------------------- trial identity


def test_trial_id_is_the_study_id_in_every_outcome_and_subgroup():
    df, _ = _read(MULTI)
    assert df["trial_id"].tolist() == [
        "STD-Kappa-2011", "STD-Mu-2015", "STD-Kappa-2011", "STD-Lambda-2013",      # pain: low dose, high dose
        "STD-Kappa-2011", "STD-Lambda-2013", "STD-Kappa-2011", "STD-Lambda-2013",  # nausea
        "STD-Kappa-2011", "STD-Kappa-2011"]                                        # generic
    assert df["study"].tolist()[:4] == ["Kappa 2011", "Mu 2015", "Kappa 2011", "Lambda 2013"]


def test_import_warning_names_trials_rows_subgroups_and_alternatives():
    _, msg = _read(MULTI)
    # Kappa 2011 in pain: rows 0 and 2, shared placebo group (50.0, 22.0, 32 in both rows)
    assert ("trial 'Kappa 2011' (trial_id 'STD-Kappa-2011') appears 2 times in outcome 1.1 'Pain (0-100)' "
            "(rows 0, 2; subgroups 'Low dose', 'High dose'); its control-group data are identical") in msg
    # Lambda 2013 in nausea: placebo 2/26 vs 4/27, not one shared control group
    assert "trial 'Lambda 2013' (trial_id 'STD-Lambda-2013') appears 2 times in outcome 1.2 'Nausea' (rows 5, 7" in msg
    assert "Lambda 2013' (trial_id 'STD-Lambda-2013') appears 2 times in outcome 1.2 'Nausea' (rows 5, 7; " \
           "subgroups 'Low dose', 'High dose'); its control-group data differ" in msg
    assert "outcome 1.3" in msg and "cannot be told" in msg          # generic rows: no arm data
    assert "Lambda 2013' (trial_id 'STD-Lambda-2013') appears 2 times in outcome 1.1" not in msg  # once there
    for name in ("Cochrane Handbook section 23.3.4", "multiarm_contrasts", "revman_contrasts", "combine_arms",
                 "split_control", "by_subgroup=True"):
        assert name in msg


def test_repeated_trials_found_per_outcome():
    df, _ = _read(MULTI)
    found = [(r.outcome_no, r.study, r.rows, r.shared_control) for r in find_repeated_trials(df)]
    assert found == [(1, "Kappa 2011", (0, 2), True), (2, "Kappa 2011", (4, 6), True),
                     (2, "Lambda 2013", (5, 7), False), (3, "Kappa 2011", (8, 9), None)]
    # a trial in two subgroups is not repeated within either subgroup
    assert find_repeated_trials(df, by_subgroup=True) == []


def test_split_analyses_warns_for_each_analysis_with_a_repeated_trial():
    df, _ = _read(MULTI)
    with pytest.warns(DataWarning) as record:
        parts = list(split_analyses(df))
    messages = [str(w.message) for w in record]
    assert len(parts) == 3 and len(messages) == 3
    assert "outcome 1.1 'Pain (0-100)'" in messages[0] and "rows 0, 2" in messages[0]  # rows of the yielded table
    assert parts[0][1]["trial_id"].tolist() == ["STD-Kappa-2011", "STD-Mu-2015", "STD-Kappa-2011", "STD-Lambda-2013"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # by subgroup: every trial once per analysis, no warning
        assert len(list(split_analyses(df, by_subgroup=True))) == 6


def test_same_trial_in_several_outcomes_is_not_a_repeat(tmp_path):
    text = MULTI.read_text(encoding="utf-8")
    # drop Kappa's high-dose rows: every trial then appears once per outcome, although in all three outcomes
    for row in ('<CONT_DATA STUDY_ID="STD-Kappa-2011" MEAN_1="36.0"', '<DICH_DATA STUDY_ID="STD-Kappa-2011" '
                'EVENTS_1="12"', '<DICH_DATA STUDY_ID="STD-Lambda-2013" EVENTS_1="7"',
                '<IV_DATA STUDY_ID="STD-Kappa-2011" EFFECT_SIZE="-13.0"'):
        start = text.index(row)
        text = text[:start] + text[text.index("/>", start) + 3:]
    path = tmp_path / "once.rm5"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_revman(path)
        assert list(split_analyses(df))
    assert (df["trial_id"] == "STD-Kappa-2011").sum() == 3


def test_csv_export_repeated_trial_by_name():
    df, msg = _read(MULTI_CSV)
    assert df["trial_id"].tolist() == ["Kappa 2011", "Mu 2015", "Kappa 2011", "Lambda 2013"]
    assert "trial 'Kappa 2011' (trial_id 'Kappa 2011') appears 2 times in outcome 1.1 'Pain (0-100)' (rows 0, 2" in msg
    assert "control-group data are identical" in msg


def test_shared_control_rows_become_correlated_contrasts():
    df, _ = _read(MULTI)
    with pytest.warns(DataWarning):
        (analysis, pain), *_ = split_analyses(df)
    arms = revman_arms(pain)
    kappa = arms[arms["study"] == "Kappa 2011"]
    assert kappa["arm"].tolist() == ["control", "Low dose", "High dose"]
    assert kappa["mi"].tolist() == [50.0, 40.0, 36.0] and kappa["ni"].tolist() == [32, 30, 29]
    c = revman_contrasts(pain)
    tab = c.table.set_index(["study", "arm"])
    # by hand: MD = m1 - m2; var = sd1^2/n1 + sd2^2/n2; covariance = the shared control's sd2^2/n2
    v0 = 22.0**2 / 32
    assert tab.loc[("Kappa 2011", "Low dose"), "yi"] == pytest.approx(-10.0)
    assert tab.loc[("Kappa 2011", "High dose"), "yi"] == pytest.approx(-14.0)
    expected = np.array([[20.0**2 / 30 + v0, v0], [v0, 21.0**2 / 29 + v0]])
    np.testing.assert_allclose(c.covariance["Kappa 2011"], expected, rtol=1e-14)
    assert tab.loc[("Mu 2015", "Low dose"), "vi"] == pytest.approx(18.0**2 / 40 + 19.0**2 / 41)
    assert len(c.table) == 4          # Kappa 2, Mu 1, Lambda 1: the placebo group of Kappa counted once


def test_rows_without_a_shared_control_are_refused():
    df, _ = _read(MULTI)
    with pytest.warns(DataWarning):
        nausea = list(split_analyses(df))[1][1]
    with pytest.raises(DataError, match=r"Lambda 2013.*trial_id.*control-group data \(ci, n2i\) differ"):
        revman_contrasts(nausea)
    kappa = nausea[nausea["trial_id"] == "STD-Kappa-2011"]
    c = revman_contrasts(kappa, "RR")
    # log RR by hand: log(8/30) - log(3/32); covariance = 1/3 - 1/32 (the shared control's var of log risk)
    assert c.table["yi"].tolist()[0] == pytest.approx(np.log(8 / 30) - np.log(3 / 32))
    assert c.covariance["Kappa 2011"][0, 1] == pytest.approx(1 / 3 - 1 / 32)
    with pytest.raises(DataError, match="SMD"):
        revman_contrasts(kappa, "SMD")
    with pytest.warns(DataWarning):
        generic = list(split_analyses(df))[2][1]
    with pytest.raises(DataError, match="generic"):
        revman_arms(generic)


@needs_shared
def test_bundled_examples_have_one_row_per_trial_and_analysis():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rm5 = read_revman(SHARED / "revman_example.rm5")
        list(split_analyses(rm5))
    assert rm5["trial_id"].tolist()[:4] == ["STD-Alpha-2001", "STD-Beta-2005", "STD-Gamma_x002d_A-2010",
                                            "STD-Delta-2015"]
    assert find_repeated_trials(rm5) == []
    with pytest.warns(DataWarning, match="group labels"):  # the example's known misaligned header rows only
        csv = read_revman(SHARED / "revman_export_example.csv")
    assert find_repeated_trials(csv) == []
    assert csv["trial_id"].tolist() == csv["study"].tolist()


# ---------------------------------------------------------------------------------------------- risk of bias


def test_rob1_judgements_read_from_rm5():
    rob = read_revman_rob(MULTI)
    got = [(r.study, r.domain_key, r.group, r.judgement) for r in rob.itertuples()]
    assert got == [
        ("Kappa 2011", "sequence_generation", None, "low"), ("Lambda 2013", "sequence_generation", None, "unclear"),
        ("Mu 2015", "sequence_generation", None, "high"),
        ("Kappa 2011", "allocation_concealment", None, "low"), ("Lambda 2013", "allocation_concealment", None, "high"),
        ("Mu 2015", "allocation_concealment", None, "unclear"),
        ("Kappa 2011", "blinding_outcome_assessment", "Pain", "low"),
        ("Kappa 2011", "blinding_outcome_assessment", "Adverse events", "unclear"),
        ("Lambda 2013", "blinding_outcome_assessment", "Pain", "high")]
    assert set(rob["tool"]) == {"RoB 1"}
    assert rob["domain"].iloc[0] == "Random sequence generation (selection bias)"
    assert rob["support"].iloc[2] == "Alternation (invented)."
    wide = rob_wide(rob)
    assert wide.columns.tolist() == ["trial_id", "study", "rob_sequence_generation", "rob_allocation_concealment",
                                     "rob_blinding_outcome_assessment[Pain]",
                                     "rob_blinding_outcome_assessment[Adverse events]"]
    assert wide.attrs["rob_domains"]["rob_blinding_outcome_assessment[Pain]"] == {
        "domain": "Blinding of outcome assessment (detection bias)", "group": "Pain"}


def test_read_revman_joins_rob_columns_on_trial_id():
    df, _ = _read(MULTI, risk_of_bias=True)
    assert df["rob_allocation_concealment"].tolist()[:4] == ["low", "unclear", "low", "high"]
    assert pd.isna(df["rob_blinding_outcome_assessment[Pain]"].iloc[1])   # Mu 2015 was not judged
    assert df.attrs["risk_of_bias"]["rob_sequence_generation"] == "RoB 1"
    with pytest.warns(DataWarning):
        pain = next(iter(split_analyses(df)))[1]
    assert pain["rob_sequence_generation"].tolist() == ["low", "high", "low", "unclear"]


def test_rob_import_errors(tmp_path):
    with pytest.raises(RevManError, match="CSV export does not hold them"):
        read_revman(MULTI_CSV, risk_of_bias=True)
    with pytest.raises(RevManError, match="CSV export does not hold them"):
        read_revman_rob(MULTI_CSV)
    bad = tmp_path / "bad.rm5"
    bad.write_text(MULTI.read_text(encoding="utf-8").replace('RESULT="NO" STUDY_ID="STD-Mu-2015"',
                                                             'RESULT="MAYBE" STUDY_ID="STD-Mu-2015"'), encoding="utf-8")
    with pytest.raises(RevManError, match=r"'Random sequence generation \(selection bias\)', study 'Mu 2015'.*MAYBE"):
        read_revman_rob(bad)
    group = tmp_path / "group.rm5"
    group.write_text(MULTI.read_text(encoding="utf-8").replace('GROUP_ID="QIG-01" RESULT="NO"',
                                                               'GROUP_ID="QIG-09" RESULT="NO"'), encoding="utf-8")
    with pytest.raises(RevManError, match="Lambda 2013.*GROUP_ID='QIG-09'"):
        read_revman_rob(group)
    with pytest.warns(DataWarning, match="no risk-of-bias judgements"):
        assert read_revman_rob(DATA / "review_utf8.rm5").empty


def test_judgements_normalised_and_tool_recorded():
    df = pd.DataFrame({"study": ["A", "B", "C"], "overall": [" Low risk ", "SOME_CONCERNS", "High risk of bias"],
                       "d1": ["low", "Unclear risk", "unknown"]})
    out = check_risk_of_bias(df, ["overall", "d1"])
    assert out["overall"].tolist() == ["low", "some concerns", "high"]
    assert out["d1"].tolist() == ["low", "unclear", "unclear"]
    assert out.attrs["risk_of_bias"] == {"overall": "RoB 2", "d1": "RoB 1"}
    assert df["overall"].tolist()[0] == " Low risk "           # the caller's table is not modified
    assert normalise_judgements(["low", "high"], ["A", "B"], "x") == (["low", "high"], None)


@pytest.mark.parametrize(("values", "tool", "message", "study"), [
    (["low", "hihg", "high"], None, r"unknown risk-of-bias judgement 'hihg'.*RoB 2: 'low', 'some concerns'", "B"),
    (["low", "serious", "moderate"], None, r"'serious' \(also in 1 other study: 'C'\)", "B"),
    (["low", "unclear", "some concerns"], None, "mixes RoB 1", "C"),
    (["low", "unclear", "high"], "RoB 2", r"'unclear' is not a RoB 2 level", "B"),
    (["low", None, "high"], None, "missing risk-of-bias judgement", "B"),
])
def test_unknown_judgements_name_study_and_column(values, tool, message, study):
    df = pd.DataFrame({"study": ["A", "B", "C"], "rob_d2": values})
    with pytest.raises(DataError, match=message) as err:
        check_risk_of_bias(df, "rob_d2", tool=tool)
    assert err.value.column == "rob_d2" and err.value.study == study


def test_high_risk_indicator_never_reads_a_typo_as_low():
    labels = ["A", "B", "C"]
    assert high_risk_indicator(["Low", "High risk", "some concerns"], labels, "r", ["high"]).tolist() == [0, 1, 0]
    assert high_risk_indicator(["low", "high", "some concerns"], labels, "r",
                               ["high", "Some concerns"]).tolist() == [0, 1, 1]
    with pytest.raises(DataError, match="'hgih'"):
        high_risk_indicator(["low", "hgih", "high"], labels, "r", ["high"])
    with pytest.raises(DataError, match="rob_high holds 'severe'"):
        high_risk_indicator(["low", "high", "high"], labels, "r", ["severe"])


def test_docstring_examples_run():
    import doctest

    import ketabayes.data.revman_trials as trials
    import ketabayes.data.risk_of_bias as rob

    for module in (trials, rob):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_repeated_trials_warning_stays_readable_for_many_rows_and_trials():
    """Row lists of more than 12 entries and more than 10 trials are shortened and counted, not spelled out."""
    from ketabayes.data.revman_trials import RepeatedTrial, repeated_trials_message

    many = [RepeatedTrial(trial_id=f"T{j}", study=f"Trial {j}", comparison_no=1, outcome_no=1, outcome="Pain",
                          rows=tuple(range(1000 * j, 1000 * j + 500)), subgroups=(None,) * 500, shared_control=False)
            for j in range(15)]
    text = repeated_trials_message(many, "big.rm5")
    assert "'Trial 0' (trial_id 'T0') appears 500 times" in text
    assert "(rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (489 more), 499); its control" in text
    assert "'Trial 9'" in text and "'Trial 10'" not in text and "and 5 more trials" in text
    assert len(text) < 5000  # ten trials spelled out, whatever the number of rows and trials
    few = RepeatedTrial(trial_id="A", study="A", comparison_no=1, outcome_no=2, outcome="Pain", rows=(3, 7),
                        subgroups=("Low dose", "High dose"), shared_control=True)
    assert "(rows 3, 7; subgroups 'Low dose', 'High dose')" in repeated_trials_message([few], "x.rm5")
