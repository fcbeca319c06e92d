"""No silent path (issue #15 item 2): malformed input is an error naming the row / column, never a guess.

Numbers checked here are closed forms written in the tests (inverse-variance fixed-effect pooling and the
normal CDF), not values produced by ketabayes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

import ketabayes as kb
from ketabayes.cli import main
from ketabayes.data.csv_table import read_csv_table
from ketabayes.data.revman import read_revman
from ketabayes.errors import DataError, DataWarning, RevManError

RM5 = Path(__file__).parent / "data" / "review_utf8.rm5"


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _cli(*args):
    return CliRunner().invoke(main, ["analyse", *map(str, args)])


def _data_error(res, *needles):
    assert res.exit_code == 1, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    line = res.stderr.strip()
    assert line.startswith("ketabayes: error: ") and "\n" not in line, res.stderr
    for n in needles:
        assert n in line, (n, line)


# --- CSV shape before values -----------------------------------------------------------------------------
def test_unquoted_decimal_commas_are_an_error_naming_the_row(tmp_path):
    path = _csv(tmp_path, "study,yi,vi\nB,0.2,0.05\nA,0,1,0,04\n")  # SIMULATED
    with pytest.raises(DataError, match=r"study 'A'.*line 3 has 5 fields but the header has 3") as exc:
        read_csv_table(path)
    assert "decimal commas" in str(exc.value).lower()
    _data_error(_cli(path, "--mcid", "0.2", "--prior-tau", "halfnormal(1)"), "line 3", "'A'", "5 fields")


def test_trailing_extra_field_is_not_turned_into_an_index(tmp_path):
    # pandas would read 'A' as the index and shift yi/vi one column to the left
    path = _csv(tmp_path, "study,yi,vi\nA,0.1,0.04,\nB,0.2,0.05,\n")
    with pytest.raises(DataError, match=r"line 2 has 4 fields"):
        read_csv_table(path)


def test_duplicated_csv_column_name_is_an_error(tmp_path):
    path = _csv(tmp_path, "study,yi,vi,yi\nA,0.1,0.04,0.3\nB,0.2,0.05,0.1\n")
    assert list(pd.read_csv(path).columns) == ["study", "yi", "vi", "yi.1"]  # what pandas would do silently
    with pytest.raises(DataError, match=r"column 'yi'.*names column 'yi' twice \(fields 2 and 4\)"):
        read_csv_table(path)
    _data_error(_cli(path, "--prior-tau", "halfnormal(1)"), "'yi' twice")


def test_well_formed_csv_reads_as_pandas_does(tmp_path):
    path = _csv(tmp_path, 'study,yi,vi\n"Smith, 2001",0.1,0.04\nB,0.2,0.05\n')
    pd.testing.assert_frame_equal(read_csv_table(path), pd.read_csv(path))


# --- a 'measure' column mixing measures ------------------------------------------------------------------
MIXED = pd.DataFrame({"study": ["A", "B", "C"], "yi": [-0.3, 2.0, -0.1], "vi": [0.04, 1.5, 0.05],
                      "measure": ["OR", "MD", "OR"]})  # SIMULATED


@pytest.mark.parametrize("make", [
    lambda df: kb.effect_sizes(df, "GEN"),
    lambda df: kb.RandomEffectsModel(df, prior_tau="halfnormal(1)"),
    lambda df: kb.RandomEffectsModel(df, measure="OR", prior_tau="halfnormal(1)"),
    lambda df: kb.HierarchicalModel(df, by=[], measure="OR", prior_tau="halfnormal(1)"),
])
def test_mixed_measures_are_not_pooled(make):
    with pytest.raises(DataError, match=r"column 'measure'.*2 different measures \(OR: 'A', 'C'; MD: 'B'\)"):
        make(MIXED)


def test_mixed_measures_pool_after_an_explicit_filter():
    model = kb.RandomEffectsModel(MIXED[MIXED["measure"] == "OR"], prior_tau="halfnormal(1)")
    assert model.measure == "OR" and model.studies == ["A", "C"]


def test_measure_column_contradicting_the_given_measure():
    df = MIXED[MIXED["measure"] == "MD"]
    with pytest.raises(DataError, match=r"study 'B', column 'measure'.*say measure MD.*'OR' was given"):
        kb.RandomEffectsModel(df, measure="OR", prior_tau="halfnormal(1)")


def test_cli_mixed_measure_column(tmp_path):
    path = tmp_path / "mixed.csv"
    MIXED.to_csv(path, index=False)
    _data_error(_cli(path, "--measure", "OR", "--prior-tau", "halfnormal(1)"), "2 different measures")
    _data_error(_cli(path, "--prior-tau", "halfnormal(1)"), "2 different measures")


# --- negative sei without vi -----------------------------------------------------------------------------
def test_negative_sei_without_vi_is_an_error(tmp_path):
    df = pd.DataFrame({"study": ["A", "B"], "yi": [0.1, 0.2], "sei": [-0.2, 0.3]})
    for make in (lambda: kb.RandomEffectsModel(df, prior_tau="halfnormal(1)"),
                 lambda: kb.HierarchicalModel(df, by=[], prior_tau="halfnormal(1)"),
                 lambda: kb.effect_sizes(df, "GEN")):
        with pytest.raises(DataError, match=r"study 'A', column 'sei'.*-0\.2"):
            make()
    path = tmp_path / "sei.csv"
    df.to_csv(path, index=False)
    _data_error(_cli(path, "--prior-tau", "halfnormal(1)"), "'A'", "'sei'")


# --- complex, datetime and timedelta are not numbers -----------------------------------------------------
@pytest.mark.parametrize(("values", "kind"), [
    ([0.1 + 0.2j, 0.3 + 0j], "complex"),
    (pd.to_datetime(["2020-01-01", "2021-06-01"]), "date/time"),
    (pd.to_timedelta([1, 2], unit="D"), "time duration"),
    (np.array([np.datetime64("2020-01-01"), 1.0], dtype=object), "not a number"),
])
def test_complex_dates_and_durations_are_not_numbers(values, kind):
    df = pd.DataFrame({"study": ["A", "B"], "yi": values, "vi": [0.04, 0.05]})
    with pytest.raises(DataError, match=rf"column 'yi'.*{kind}"):
        kb.effect_sizes(df, "GEN")
    with pytest.raises(DataError, match=rf"column 'yi'.*{kind}"):
        kb.RandomEffectsModel(df, prior_tau="halfnormal(1)")


# --- overflowing counts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("big", ["9223372036854775808", "1e30", "18446744073709551617"])
def test_overflowing_counts_in_csv(tmp_path, big):
    path = _csv(tmp_path, f"study,ai,n1i,ci,n2i\nA,3,40,6,40\nB,{big},{big},9,52\n")  # SIMULATED
    with pytest.raises(DataError, match=r"study 'B', column 'ai'.*overflow"):
        kb.effect_sizes(pd.read_csv(path), "OR")
    _data_error(_cli(path, "--measure", "OR"), "'B'", "overflow")


@pytest.mark.parametrize("big", ["9223372036854775808", "1e30"])
def test_overflowing_counts_in_rm5(tmp_path, big):
    text = RM5.read_text(encoding="utf-8")
    assert 'EVENTS_1="17"' in text
    path = tmp_path / "big.rm5"
    path.write_text(text.replace('EVENTS_1="17"', f'EVENTS_1="{big}"', 1), encoding="utf-8")
    with pytest.raises(RevManError, match=r"'Smith 2018a'.*EVENTS_1.*overflow"):
        read_revman(path)


# --- RevMan Peto OR is a ratio measure ---------------------------------------------------------------------
@pytest.mark.filterwarnings("always::ketabayes.errors.DataWarning")  # "check that yi is a log PETO_OR"
def test_revman_generic_peto_or_takes_ratio_thresholds(tmp_path):
    old = '<IV_OUTCOME ID="CMP-001.03" NO="3" EFFECT_MEASURE="MD"'
    text = RM5.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "peto.rm5"
    path.write_text(text.replace(old, old.replace('"MD"', '"PETO_OR"')), encoding="utf-8")
    res = _cli(path, "--outcome", "1.3", "--fixed", "--mcid", "1.25", "--json", "-", "-q")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["settings"]["thresholds"]["ratio"] is True
    y, se = np.array([-0.82, 0.125]), np.array([0.31, 0.4])  # the fixture's IV_DATA of outcome 1.3
    w = 1 / se**2
    mean, sd = float(np.sum(w * y) / w.sum()), math.sqrt(1 / w.sum())
    assert d["estimates"][0]["p_benefit"] == pytest.approx(stats.norm.cdf(math.log(0.8), mean, sd), abs=1e-9)
    assert d["estimates"][0]["p_harm"] == pytest.approx(stats.norm.sf(math.log(1.25), mean, sd), abs=1e-9)


# --- .rm5 declared ISO-8859-1 but written in UTF-8 ---------------------------------------------------------
def test_rm5_declared_latin1_but_utf8_is_read_as_utf8(tmp_path):
    raw = RM5.read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"')
    path = tmp_path / "mislabelled.rm5"
    path.write_bytes(raw.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1))
    with pytest.warns(DataWarning, match=r"mislabelled\.rm5: the XML declaration says ISO-8859-1 but the file "
                                         r"is UTF-8"):
        df = read_revman(path)
    assert "Núñez 2012" in df["study"].tolist()
    assert not any("Ã" in s for s in df["study"])  # no mojibake
    expected = read_revman(RM5)
    pd.testing.assert_frame_equal(df, expected)
