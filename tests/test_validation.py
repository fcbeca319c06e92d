"""One test (at least) per class of bad input.

Each asserts that the exception is a ketabayes DataError (hence a ValueError)
and that the message names the study label and the column *as the user
spelled it*. Errors about the whole table (no such column, no rows, wrong
type, unknown measure) have no study to name; those tests check the column or
argument instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.effect_sizes import effect_sizes
from ketabayes.data.validation import (
    as_dataframe,
    check_measure,
    closest,
    numeric_column,
    study_labels,
    validate_yi_vi,
)
from ketabayes.errors import DataError, DataWarning


def binary():
    return pd.DataFrame(
        {
            "trial": ["Alpha 2001", "Beta 2004", "Gamma 2010"],
            "ev_drug": [4, 6, 3],
            "n_drug": [123, 306, 231],
            "ev_pbo": [11, 29, 11],
            "n_pbo": [139, 303, 220],
        }
    )


BIN = dict(study="trial", ai="ev_drug", n1i="n_drug", ci="ev_pbo", n2i="n_pbo")


def continuous():
    return pd.DataFrame(
        {
            "trial": ["Alpha 2001", "Beta 2004"],
            "mean_drug": [10.0, 12.0],
            "sd_drug": [3.0, 4.0],
            "n_drug": [20, 30],
            "mean_pbo": [11.0, 12.5],
            "sd_pbo": [3.5, 4.1],
            "n_pbo": [21, 29],
        }
    )


CONT = dict(study="trial", m1i="mean_drug", sd1i="sd_drug", n1i="n_drug", m2i="mean_pbo", sd2i="sd_pbo", n2i="n_pbo")


def raises(func, *args, err_study=None, err_column=None, contains=(), **kwargs) -> DataError:
    """Call func(*args, **kwargs); check the DataError names err_study and err_column."""
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    if err_study is not None:
        assert err.study == err_study
        assert repr(err_study) in msg
    if err_column is not None:
        assert err.column == err_column
        assert repr(err_column) in msg
    for text in contains:
        assert text in msg, msg
    return err


# 1. missing or misspelled column ----------------------------------------------------------


def test_misspelled_mapped_column_suggests_closest():
    raises(effect_sizes, binary(), "OR", **{**BIN, "ai": "ev_drugs"}, err_column="ev_drugs",
           contains=["did you mean 'ev_drug'?"])


def test_absent_metafor_column_suggests_mapping():
    df = binary().rename(columns={"ev_drug": "ai_", "ev_pbo": "ci"})
    raises(effect_sizes, df, "OR", study="trial", n1i="n_drug", n2i="n_pbo", err_column="ai",
           contains=["Did you mean ai='ai_'?", "events in group 1"])


def test_missing_group_size_and_non_events():
    df = binary().drop(columns="n_pbo")
    raises(effect_sizes, df, "OR", study="trial", ai="ev_drug", n1i="n_drug", ci="ev_pbo",
           err_column="n2i", contains=["'di'", "'n2i'"])


def test_gen_needs_vi_or_sei():
    df = pd.DataFrame({"yi": [0.1], "se": [0.2]})
    raises(effect_sizes, df, "GEN", err_column="sei", contains=["Did you mean sei='se'?"])


def test_require_column_helper():
    raises(study_labels, binary(), "trail", err_column="trail", contains=["did you mean 'trial'?"])


# 2. non-numeric values -----------------------------------------------------------------------


def test_non_numeric_value_names_study_column_and_value():
    df = binary().astype({"ev_drug": object})
    df.loc[1, "ev_drug"] = "12a"
    raises(effect_sizes, df, "OR", **BIN, err_study="Beta 2004", err_column="ev_drug", contains=["'12a'", "not a number"])


def test_non_numeric_in_continuous_column():
    df = continuous().astype({"sd_pbo": object})
    df.loc[0, "sd_pbo"] = "3,5"
    raises(effect_sizes, df, "MD", **CONT, err_study="Alpha 2001", err_column="sd_pbo", contains=["'3,5'"])


def test_numbers_stored_as_text_are_accepted():
    df = binary().astype({"ev_drug": str})
    out = effect_sizes(df, "OR", **BIN)
    assert out["estimable"].all()


def test_boolean_is_not_a_number():
    df = pd.DataFrame({"study": ["s1"], "yi": [True], "vi": [0.1]})
    raises(effect_sizes, df, "GEN", err_study="s1", err_column="yi")


# 3. missing values ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [np.nan, None, "", "  "])
def test_missing_value_in_required_column(missing):
    df = continuous().astype({"mean_pbo": object})
    df.loc[1, "mean_pbo"] = missing
    raises(effect_sizes, df, "SMD", **CONT, err_study="Beta 2004", err_column="mean_pbo", contains=["missing value"])


def test_several_bad_studies_are_listed():
    df = binary().astype({"n_drug": float})
    df.loc[[0, 2], "n_drug"] = np.nan
    raises(effect_sizes, df, "OR", **BIN, err_study="Alpha 2001", err_column="n_drug", contains=["'Gamma 2010'"])


def test_infinite_value():
    df = pd.DataFrame({"study": ["s1"], "yi": [np.inf], "vi": [0.1]})
    raises(effect_sizes, df, "GEN", err_study="s1", err_column="yi", contains=["infinite"])


# 4. zero or negative SD, n, SE, vi ----------------------------------------------------------


@pytest.mark.parametrize("column", ["sd_drug", "sd_pbo", "n_drug", "n_pbo"])
@pytest.mark.parametrize("value", [0, -2])
def test_non_positive_sd_and_n(column, value):
    df = continuous()
    df.loc[1, column] = value
    raises(effect_sizes, df, "MD", **CONT, err_study="Beta 2004", err_column=column, contains=["expected a number > 0"])


@pytest.mark.parametrize("arg, value", [("sei", 0.0), ("sei", -0.1), ("vi", 0.0), ("vi", -1.0)])
def test_non_positive_se_and_vi(arg, value):
    df = pd.DataFrame({"study": ["a", "b"], "est": [0.1, 0.2], "spread": [0.1, value]})
    raises(effect_sizes, df, "GEN", yi="est", **{arg: "spread"}, err_study="b", err_column="spread")


def test_empty_group_in_2x2_table():
    df = binary()
    df.loc[2, ["ev_drug", "n_drug"]] = 0
    raises(effect_sizes, df, "RR", **BIN, err_study="Gamma 2010", err_column="n_drug")


# 5. impossible counts -------------------------------------------------------------------------


@pytest.mark.parametrize("events, n", [("ev_drug", "n_drug"), ("ev_pbo", "n_pbo")])
def test_events_greater_than_n(events, n):
    df = binary()
    df.loc[0, events] = df.loc[0, n] + 1
    raises(effect_sizes, df, "OR", **BIN, err_study="Alpha 2001", err_column=events, contains=[repr(n), "larger than"])


@pytest.mark.parametrize("column", ["ev_drug", "n_pbo"])
def test_negative_counts(column):
    df = binary()
    df.loc[1, column] = -1
    raises(effect_sizes, df, "RD", **BIN, err_study="Beta 2004", err_column=column, contains=["negative"])


def test_negative_non_event_count():
    df = pd.DataFrame({"study": ["s"], "a": [3], "b": [-1], "c": [2], "d": [5]})
    raises(effect_sizes, df, "OR", ai="a", bi="b", ci="c", di="d", err_study="s", err_column="b")


@pytest.mark.parametrize("column", ["ev_drug", "n_drug"])
def test_non_integer_counts(column):
    df = binary().astype({column: float})
    df.loc[2, column] = df.loc[2, column] + 0.5
    raises(effect_sizes, df, "OR", **BIN, err_study="Gamma 2010", err_column=column, contains=["whole numbers"])


# 6. duplicate study labels --------------------------------------------------------------------


def test_duplicate_labels_are_made_unique_like_metafor():
    # metafor's .make.unique (used for slab): every instance of a repeated label gets .1, .2, ... in row order
    df = binary()
    df.loc[2, "trial"] = "Alpha 2001"
    before = df.copy()
    with pytest.warns(DataWarning, match=r"'Alpha 2001' \(rows 1, 3\) -> 'Alpha 2001.1', 'Alpha 2001.2'"):
        out = effect_sizes(df, "OR", **BIN)
    assert out["study"].tolist() == ["Alpha 2001.1", "Beta 2004", "Alpha 2001.2"]
    pd.testing.assert_frame_equal(df, before)  # the caller's table is not touched
    assert out["yi"].tolist()[2] == pytest.approx(np.log(3 * 209 / (228 * 11)), abs=1e-12)  # row kept in place


def test_repeated_labels_of_a_real_dataset():
    import ketabayes as kb

    mg = kb.load_dataset("magnesium_mi")  # "Shechter" labels three trials (1989, 1990, 1995)
    with pytest.warns(DataWarning, match=r"'Shechter' \(rows .*\) -> 'Shechter.1', 'Shechter.2', 'Shechter.3'"):
        out = effect_sizes(mg, "OR")
    shechter = out.loc[mg["study"] == "Shechter", "study"].tolist()
    assert shechter == ["Shechter.1", "Shechter.2", "Shechter.3"]
    assert out["study"].is_unique


def test_identical_rows_get_their_own_warning():
    df = pd.concat([binary(), binary().iloc[[1]]], ignore_index=True)  # Beta 2004 entered twice
    with pytest.warns(DataWarning) as record:
        out = effect_sizes(df, "OR", **BIN)
    messages = [str(w.message) for w in record]
    assert any("identical in every column" in m and "rows 2, 4 ('Beta 2004')" in m for m in messages), messages
    assert any("'Beta 2004.1', 'Beta 2004.2'" in m for m in messages), messages
    assert len(out) == 4  # nothing dropped


def test_identical_rows_without_labels():
    df = pd.DataFrame({"yi": [0.1, 0.1, 0.3], "vi": [0.04, 0.04, 0.05]})
    with pytest.warns(DataWarning, match=r"rows 1, 2 \('Study 1'\)"):
        out = validate_yi_vi(df)
    assert out["study"].tolist() == ["Study 1", "Study 2", "Study 3"]


def test_suffix_that_collides_with_an_existing_label():
    df = pd.DataFrame({"study": ["A", "A", "A.1"], "yi": [0.1, 0.2, 0.3], "vi": [0.04, 0.04, 0.05]})
    with pytest.raises(DataError, match=r"already exist: 'A.1'"):
        validate_yi_vi(df)


def test_models_use_the_unique_labels():
    import ketabayes as kb

    df = pd.DataFrame({"study": ["A", "B", "A"], "yi": [0.1, 0.2, 0.3], "vi": [0.04, 0.04, 0.05]})
    with pytest.warns(DataWarning, match="made unique"):
        model = kb.RandomEffectsModel(df, prior_tau="halfnormal(0.5)")
    assert model.studies == ["A.1", "B", "A.2"]
    assert df["study"].tolist() == ["A", "B", "A"]


def test_missing_label():
    df = binary()
    df.loc[1, "trial"] = None
    raises(effect_sizes, df, "OR", **BIN, err_column="trial", contains=["missing study label"])


# 7. no studies -------------------------------------------------------------------------------


def test_empty_dataframe():
    raises(effect_sizes, binary().iloc[:0], "OR", **BIN, contains=["no studies"])


# 8. data that is not a DataFrame; unknown measure ---------------------------------------------


@pytest.mark.parametrize("data", [[[4, 123, 11, 139]], np.ones((2, 4)), None, "trials.csv"])
def test_data_not_a_dataframe(data):
    raises(effect_sizes, data, "OR", contains=["pandas DataFrame"])


def test_dict_with_unequal_columns():
    raises(as_dataframe, {"yi": [0.1, 0.2], "vi": [0.1]}, contains=["equal length"])


def test_duplicate_column_names():
    df = pd.DataFrame([[1, 2]], columns=["yi", "yi"])
    raises(as_dataframe, df, err_column="yi")


@pytest.mark.parametrize("measure, suggestion", [("ORR", "RR"), ("SMDH", "SMD"), ("mdd", "MD")])
def test_unknown_measure_suggests_closest(measure, suggestion):
    raises(effect_sizes, binary(), measure, **BIN, contains=[f"did you mean {suggestion!r}?"])


def test_measure_not_a_string():
    raises(check_measure, 3, ("OR", "RR"), contains=["string"])


def test_unknown_argument_suggests_metafor_name():
    raises(effect_sizes, binary(), "OR", study="trial", ax="ev_drug", n1i="n_drug", ci="ev_pbo",
           n2i="n_pbo", contains=["did you mean ai=...?"])


# --------------------------------------------------------------------------- validate_yi_vi


def test_validate_yi_vi_ok():
    df = pd.DataFrame({"name": ["a", "b"], "y": ["0.5", -0.2], "v": [0.1, 0.2], "other": [1, 2]})
    out = validate_yi_vi(df, yi="y", vi="v", study="name")
    assert list(out.columns) == ["study", "yi", "vi"]
    assert out["study"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(out["yi"], [0.5, -0.2])
    assert out["yi"].dtype == np.float64


@pytest.mark.parametrize(
    "change, column",
    [({"yi": [0.1, np.nan]}, "yi"), ({"yi": [0.1, np.inf]}, "yi"), ({"vi": [0.1, 0.0]}, "vi"),
     ({"vi": [0.1, -0.2]}, "vi"), ({"vi": [0.1, np.nan]}, "vi")],
)
def test_validate_yi_vi_bad_values(change, column):
    df = pd.DataFrame({"study": ["a", "b"], "yi": [0.1, 0.2], "vi": [0.1, 0.2]}).assign(**change)
    raises(validate_yi_vi, df, err_study="b", err_column=column)


def test_validate_yi_vi_table_errors():
    with pytest.warns(DataWarning, match="'a' \\(rows 1, 2\\) -> 'a.1', 'a.2'"):  # repeated labels: no error
        assert validate_yi_vi(pd.DataFrame({"study": ["a", "a"], "yi": [0.1, 0.2], "vi": [0.1, 0.2]})
                              )["study"].tolist() == ["a.1", "a.2"]
    raises(validate_yi_vi, pd.DataFrame({"yi": [], "vi": []}), contains=["no studies"])
    raises(validate_yi_vi, pd.DataFrame({"yi": [0.1], "VI_": [0.1]}), err_column="vi",
           contains=["did you mean 'VI_'?"])
    raises(validate_yi_vi, [(0.1, 0.2)], contains=["pandas DataFrame"])


def test_validate_yi_vi_hints_at_non_estimable_studies():
    df = pd.DataFrame({"study": ["dz", "ok"], "ai": [0, 3], "n1i": [10, 10], "ci": [0, 4], "n2i": [10, 10]})
    with pytest.warns(DataWarning):
        es = effect_sizes(df, "OR")
    raises(validate_yi_vi, es, err_study="dz", err_column="yi", contains=["estimable=False"])
    assert len(validate_yi_vi(es[es["estimable"]])) == 1


# --------------------------------------------------------------------------- helpers


def test_closest():
    assert closest("ax", ["ai", "bi", "n1i"]) == "ai"
    assert closest("EVENTS", ["events", "n"]) == "events"
    assert closest("zzz", ["ai", "bi"]) is None


def test_numeric_column_returns_new_float_array():
    df = pd.DataFrame({"x": ["1", "2.5"]})
    values = numeric_column(df, "x", ["a", "b"])
    np.testing.assert_array_equal(values, [1.0, 2.5])
    assert df["x"].tolist() == ["1", "2.5"]


def test_study_labels_generated_only_for_default_name():
    df = pd.DataFrame({"yi": [1, 2]})
    assert study_labels(df) == ["Study 1", "Study 2"]
    raises(study_labels, df, "trial", err_column="trial")
