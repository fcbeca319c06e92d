"""Tests of ketabayes.data.revman (RevMan 5 .rm5 and CSV import).

The fixtures in tests/data are invented (see tests/data/README.md); every
expected value below was typed from those files, not from the importer.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.revman import (
    COLUMNS,
    DATA_COLUMNS,
    _decode_study_id,
    read_revman,
    split_analyses,
)
from ketabayes.errors import DataError, DataWarning, KetabayesError, RevManError

DATA = Path(__file__).parent / "data"
UTF8_RM5 = DATA / "review_utf8.rm5"
LATIN1_RM5 = DATA / "review_latin1.rm5"
BOM_CSV = DATA / "review_export_bom.csv"

SHARED = Path(__file__).parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"shared example folder {SHARED} not found: the bundled RevMan format examples "
    "live outside the repository",
)

STUDIES_1_1 = ["Núñez 2012", "Okafor 2014", "O'Brien 2016", "Smith 2018a"]


def _rows(df, comparison_no, outcome_no):
    sel = (df["comparison_no"] == comparison_no) & (df["outcome_no"] == outcome_no)
    return df[sel.to_numpy(dtype=bool)].reset_index(drop=True)


def _variant(tmp_path, old, new, *, src=UTF8_RM5, name=None, encoding="utf-8"):
    """Copy of a fixture with one piece of text replaced (which must be present)."""
    text = src.read_text(encoding=encoding)
    assert old in text, f"fixture text {old!r} not found"
    path = tmp_path / (name or src.name)
    path.write_bytes(text.replace(old, new, 1).encode(encoding))
    return path


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# ---------------------------------------------------------------------------
# .rm5 (XML)
# ---------------------------------------------------------------------------


def test_rm5_schema_dtypes_and_attrs():
    df = read_revman(UTF8_RM5)
    assert tuple(df.columns) == COLUMNS
    assert len(df) == 13
    for col in ("m1i", "sd1i", "m2i", "sd2i", "yi", "sei"):
        assert df[col].dtype == np.float64, col
    for col in ("comparison_no", "outcome_no", "subgroup_no", "year", "n1i", "n2i", "ai", "ci"):
        assert df[col].dtype == "Int64", col
    assert df["random"].dtype == "boolean"
    assert df.attrs["source_file"] == "review_utf8.rm5"
    assert df.attrs["format"] == "rm5"
    assert df.attrs["title"] == "Invented test review: drug Y for chronic pain"


def test_rm5_continuous_outcome_with_subgroups():
    out = _rows(read_revman(UTF8_RM5), 1, 1)
    assert out["study"].tolist() == STUDIES_1_1
    assert out["year"].tolist() == [2012, 2014, 2016, 2018]
    assert out["subgroup_no"].tolist() == [1, 1, 2, 2]
    assert out["subgroup"].tolist() == ["Low dose", "Low dose", "High dose", "High dose"]
    assert out["m1i"].tolist() == [4.25, 3.9, 3.1, -0.75]
    assert out["sd1i"].tolist() == [1.75, 2.2, 1.6, 0.95]
    assert out["n1i"].tolist() == [40, 62, 25, 110]
    assert out["m2i"].tolist() == [5.5, 4.35, 4.8, 0.15]
    assert out["sd2i"].tolist() == [2.05, 2.4, 1.9, 1.05]
    assert out["n2i"].tolist() == [41, 60, 27, 108]
    first = out.iloc[0]
    assert first["comparison"] == "Drug Y versus usual care"
    assert first["outcome"] == "Pain, 0 to 10 scale, end of treatment"
    assert (first["data_type"], first["effect_measure"], first["method"]) == (
        "continuous", "SMD", "IV",
    )
    assert bool(first["random"]) is True
    assert (first["group_label_1"], first["group_label_2"]) == ("Drug Y", "Usual care")
    # columns of the other data types are missing
    assert out[["ai", "ci", "yi", "sei"]].isna().all().all()


def test_rm5_dichotomous_and_generic_outcomes():
    df = read_revman(UTF8_RM5)
    dich = _rows(df, 1, 2)
    assert dich["study"].tolist() == [
        "Núñez 2012", "Okafor 2014", "Smith 2018a", "Lee & Park 2019",
    ]
    assert dich["ai"].tolist() == [3, 0, 17, 5]
    assert dich["n1i"].tolist() == [40, 62, 1204, 33]
    assert dich["ci"].tolist() == [1, 0, 9, 2]
    assert dich["n2i"].tolist() == [41, 60, 1198, 35]
    assert dich["subgroup_no"].isna().all() and dich["subgroup"].isna().all()
    assert dich[["m1i", "sd1i", "m2i", "sd2i"]].isna().all().all()
    assert set(dich["effect_measure"]) == {"OR"} and set(dich["method"]) == {"MH"}
    assert not dich["random"].any()  # RANDOM="NO"

    gen = _rows(df, 1, 3)
    assert gen["data_type"].tolist() == ["generic", "generic"]
    assert gen["study"].tolist() == ["O'Brien 2016", "Lee & Park 2019"]
    assert gen["yi"].tolist() == [-0.82, 0.125]
    assert gen["sei"].tolist() == [0.31, 0.4]
    assert gen["n1i"].tolist() == [24, 16] and gen["n2i"].tolist() == [24, 16]

    sub = _rows(df, 2, 1)
    assert sub["comparison"].tolist() == ["Drug Y versus drug Z"] * 2
    assert sub["subgroup"].tolist() == ["Adults", "Children"]
    assert sub["ai"].tolist() == [21, 8] and sub["ci"].tolist() == [14, 6]
    assert sub["group_label_2"].tolist() == ["Drug Z", "Drug Z"]

    no_n = _rows(df, 2, 2)
    assert no_n["yi"].tolist() == [2.5] and no_n["sei"].tolist() == [1.25]
    assert no_n["n1i"].isna().all() and no_n["n2i"].isna().all()


def test_rm5_iso_8859_1():
    assert b"M\xfcller 2003" in LATIN1_RM5.read_bytes()  # the fixture really is Latin-1
    df = read_revman(LATIN1_RM5)
    assert df["study"].tolist() == ["Müller 2003", "Ström 2007", "Müller 2003"]
    assert df["year"].tolist() == [2003, 2007, 2003]
    assert df["comparison"].unique().tolist() == ["Kräuter versus placebo"]
    assert df["outcome"].tolist() == ["Übelkeit (nausea)"] * 2 + ["Schmerz (0-100 mm)"]
    assert df["group_label_1"].unique().tolist() == ["Kräuter"]
    assert df["ai"].tolist()[:2] == [7, 2] and df["n2i"].tolist() == [50, 21, 50]
    assert df.loc[2, "m1i"] == 31.5 and df.loc[2, "sd2i"] == 15.5


def test_rm5_encoding_override(tmp_path):
    # Latin-1 bytes under a (wrong) UTF-8 declaration: not decodable unless overridden
    path = tmp_path / "mislabelled.rm5"
    path.write_bytes(
        LATIN1_RM5.read_bytes().replace(b'encoding="ISO-8859-1"', b'encoding="UTF-8"')
    )
    with pytest.raises(RevManError, match=r"mislabelled\.rm5.*line \d+.*encoding='ISO-8859-1'"):
        read_revman(path)
    df = read_revman(path, encoding="ISO-8859-1")
    assert df["study"].tolist()[0] == "Müller 2003"


@pytest.mark.parametrize(
    ("study_id", "label"),
    [
        ("STD-Gamma_x002d_A-2010", "Gamma-A 2010"),
        ("STD-M_x00fc_ller-2003", "Müller 2003"),
        ("STD-Lee-_x0026_-Park-2019", "Lee & Park 2019"),
        ("STD-O_x0027_Brien-2016", "O'Brien 2016"),
        ("STD-Smith-2018a", "Smith 2018a"),
        ("Plain", "Plain"),
    ],
)
def test_decode_study_id(study_id, label):
    assert _decode_study_id(study_id) == label


def test_unknown_study_id_is_kept_with_warning(tmp_path):
    path = _variant(
        tmp_path,
        '<STUDY ID="STD-Okafor-2014" NAME="Okafor 2014" YEAR="2014" DATA_SOURCE="PUB"/>\n',
        "",
    )
    with pytest.warns(DataWarning, match=r"STD-Okafor-2014.*'Okafor 2014'"):
        df = read_revman(path)
    assert len(df) == 13  # nothing dropped
    okafor = df[df["study"] == "Okafor 2014"]
    assert len(okafor) == 3 and okafor["year"].tolist() == [2014] * 3
    assert okafor["n1i"].tolist() == [62, 62, 50]


def test_unsupported_outcome_type_is_skipped_with_warning(tmp_path):
    other = (
        '<OTHER_OUTCOME ID="CMP-002.03" NO="3" SUBGROUPS="NO">\n<NAME>Narrative notes</NAME>\n'
        '<OTHER_DATA STUDY_ID="STD-Okafor-2014" ORDER="1"/>\n</OTHER_OUTCOME>\n</COMPARISON>\n'
        "</ANALYSES_AND_DATA>"
    )
    path = _variant(tmp_path, "</COMPARISON>\n</ANALYSES_AND_DATA>", other)
    with pytest.warns(DataWarning, match=r"skipped outcome.*2\.3 'Narrative notes'"):
        df = read_revman(path)
    assert len(df) == 13


def test_generic_ratio_measure_warns_about_scale(tmp_path):
    path = _variant(
        tmp_path,
        '<IV_OUTCOME ID="CMP-001.03" NO="3" EFFECT_MEASURE="MD"',
        '<IV_OUTCOME ID="CMP-001.03" NO="3" EFFECT_MEASURE="HR"',
    )
    with pytest.warns(DataWarning, match=r"outcome 1\.3 .*ratio measure HR.*log"):
        df = read_revman(path)
    assert _rows(df, 1, 3)["yi"].tolist() == [-0.82, 0.125]  # as stored, untransformed


def test_effect_measure_spelled_out_in_element(tmp_path):
    path = _variant(
        tmp_path,
        ' EFFECT_MEASURE="MD" METHOD="IV" RANDOM="YES" SUBGROUPS="NO" TOTALS="YES" STUDIES="2"'
        ' CI_STUDY="95" CI_TOTAL="95">\n<NAME>Sleep quality, crossover trials</NAME>',
        ' METHOD="IV" RANDOM="YES" SUBGROUPS="NO" TOTALS="YES" STUDIES="2" CI_STUDY="95"'
        ' CI_TOTAL="95">\n<NAME>Sleep quality, crossover trials</NAME>\n'
        "<EFFECT_MEASURE>Mean Difference</EFFECT_MEASURE>",
    )
    assert _rows(read_revman(path), 1, 3)["effect_measure"].tolist() == ["MD", "MD"]


def test_review_without_analyses_warns_and_returns_empty_table(tmp_path):
    path = _write(
        tmp_path, "empty_review.rm5",
        '<?xml version="1.0" encoding="UTF-8"?>\n<COCHRANE_REVIEW><STUDIES_AND_REFERENCES/>'
        "</COCHRANE_REVIEW>",
    )
    with pytest.warns(DataWarning, match="no study-level analysis data"):
        df = read_revman(path)
    assert df.empty and tuple(df.columns) == COLUMNS


# ---------------------------------------------------------------------------
# CSV export
# ---------------------------------------------------------------------------


def test_csv_with_bom_equals_rm5():
    assert BOM_CSV.read_bytes().startswith(codecs.BOM_UTF8)  # the fixture really has a BOM
    from_csv = read_revman(BOM_CSV)
    from_rm5 = read_revman(UTF8_RM5)
    # a CSV export has no STUDY_IDs: its trial_id is the study name (unique within a review)
    assert from_csv["trial_id"].tolist() == from_csv["study"].tolist()
    pd.testing.assert_frame_equal(from_csv.drop(columns="trial_id"), from_rm5.drop(columns="trial_id"))
    assert from_csv.attrs["format"] == "csv"
    assert from_csv.attrs["source_file"] == "review_export_bom.csv"


def test_csv_values_typed_from_file():
    df = read_revman(BOM_CSV)
    assert _rows(df, 1, 1)["study"].tolist() == STUDIES_1_1
    assert _rows(df, 1, 1)["m2i"].tolist() == [5.5, 4.35, 4.8, 0.15]
    assert _rows(df, 1, 1)["m1i"].notna().all()  # Effect Estimate column ignored
    dich = _rows(df, 1, 2)
    assert dich["n1i"].tolist() == [40, 62, 1204, 33]  # "1,204" (thousands separator)
    assert dich[["m1i", "sd1i"]].isna().all().all()  # zeros in Mean/SD ignored
    assert not dich["random"].any()  # Analysis Model "Fixed"
    assert _rows(df, 1, 3)["yi"].tolist() == [-0.82, 0.125]


def test_csv_without_bom(tmp_path):
    path = _write(tmp_path, "no_bom.csv", BOM_CSV.read_bytes()[len(codecs.BOM_UTF8):])
    pd.testing.assert_frame_equal(read_revman(path), read_revman(BOM_CSV))


def test_csv_with_bom_read_as_plain_utf8(tmp_path):
    # encoding="utf-8" leaves the BOM in the first header name; it is stripped there too
    pd.testing.assert_frame_equal(
        read_revman(BOM_CSV, encoding="utf-8"), read_revman(BOM_CSV)
    )


MINIMAL_HEADER = (
    "Comparison Number,Outcome Number,Subgroup Number,Name,Data Type,Statistical Method,"
    "Effect Measure,Analysis Model,Events 1,Total 1,Events 2,Total 2,Year of study\n"
)
MINIMAL_OUTCOME = "1,0,0,Cmp,,,,,,,,,\n1,1,0,Deaths,DIC,MH,RR,Random,,,,,\n"


def test_csv_with_a_subset_of_columns(tmp_path):
    content = MINIMAL_HEADER + MINIMAL_OUTCOME + "1,1,0,A 1999,,,,,2,10,3,11,1999\n"
    path = _write(tmp_path, "subset.csv", content)
    df = read_revman(path)
    assert df[["study", "year", "ai", "n1i", "ci", "n2i"]].iloc[0].tolist() == [
        "A 1999", 1999, 2, 10, 3, 11,
    ]
    assert df["group_label_1"].isna().all()


def test_csv_unsupported_data_type_is_skipped_with_warning(tmp_path):
    content = MINIMAL_HEADER + MINIMAL_OUTCOME + (
        "1,1,0,A 1999,,,,,2,10,3,11,1999\n1,2,0,Peto data,O-E,PETO,PETO_OR,Fixed,,,,,\n"
        "1,2,0,A 1999,,,,,,,,,1999\n"
    )
    with pytest.warns(DataWarning, match=r"skipped outcome.*1\.2 'Peto data'.*'O-E'"):
        df = read_revman(_write(tmp_path, "oe.csv", content))
    assert df["outcome_no"].tolist() == [1]


# ---------------------------------------------------------------------------
# the bundled format examples (shared/data)
# ---------------------------------------------------------------------------


@needs_shared
def test_bundled_rm5_example():
    df = read_revman(SHARED / "revman_example.rm5")
    assert len(df) == 10
    cont = _rows(df, 1, 1)
    assert cont["study"].tolist() == ["Alpha 2001", "Beta 2005", "Gamma-A 2010", "Delta 2015"]
    assert cont["subgroup"].tolist() == ["Intravenous", "Intravenous", "Oral", "Oral"]
    assert cont["m1i"].tolist() == [42.0, 38.5, 47.0, 44.0]
    assert cont["n2i"].tolist() == [24, 30, 34, 30]
    gen = _rows(df, 1, 3)
    assert gen["yi"].tolist() == [-6.5, -2.0] and gen["sei"].tolist() == [3.1, 2.4]
    assert gen["n1i"].tolist() == [20, 18]


@needs_shared
def test_bundled_csv_example_header_rows_have_an_extra_field():
    # The example's two outcome header rows have 38 fields under a 37-field header line,
    # which shifts their group labels: they are left missing, with a warning.
    with pytest.warns(DataWarning, match=r"header row .* has 38 fields") as record:
        df = read_revman(SHARED / "revman_export_example.csv")
    lines = sorted(re.search(r"line (\d+)", str(w.message)).group(1) for w in record)
    assert lines == ["3", "7"]
    assert df["group_label_1"].isna().all()
    assert len(df) == 7


@needs_shared
def test_bundled_examples_agree_on_shared_outcomes():
    rm5 = read_revman(SHARED / "revman_example.rm5")
    with pytest.warns(DataWarning, match="group labels"):
        csv = read_revman(SHARED / "revman_export_example.csv")
    # Outcome 2 (any adverse event) is the same analysis in both files. Not compared:
    # the comparison name (the CSV's carries "(INVENTED FORMAT EXAMPLE)") and the group
    # labels (misaligned in the CSV, see the test above).
    cols = [
        "comparison_no", "outcome_no", "outcome", "subgroup_no", "subgroup", "data_type",
        "effect_measure", "method", "random", "study", "year", *COLUMNS[COLUMNS.index("year") + 1:],
    ]
    pd.testing.assert_frame_equal(_rows(csv, 1, 2)[cols], _rows(rm5, 1, 2)[cols])
    # Outcome 1 (continuous): the CSV has no subgroups and no Gamma-A 2010 row; the
    # studies it has must carry the same data.
    cont_csv = _rows(csv, 1, 1).set_index("study")
    cont_rm5 = _rows(rm5, 1, 1).set_index("study").loc[cont_csv.index]
    data = ["year", *DATA_COLUMNS["continuous"]]
    pd.testing.assert_frame_equal(cont_csv[data], cont_rm5[data])


@needs_shared
def test_bundled_example_ids_decode_to_names():
    import xml.etree.ElementTree as ET

    for path in (SHARED / "revman_example.rm5", UTF8_RM5, LATIN1_RM5):
        for study in ET.parse(path).getroot().iter("STUDY"):
            assert _decode_study_id(study.get("ID")) == study.get("NAME")


# ---------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.rm5", "empty.csv"])
@pytest.mark.parametrize("content", [b"", b"  \r\n\n", codecs.BOM_UTF8])
def test_empty_file(tmp_path, name, content):
    with pytest.raises(RevManError, match=rf"{re.escape(name)}: the file is empty"):
        read_revman(_write(tmp_path, name, content))


def test_rm5_that_is_not_xml(tmp_path):
    path = _write(tmp_path, "review.rm5", MINIMAL_HEADER)
    with pytest.raises(RevManError, match=r"review\.rm5: not an XML file.*'Comparison Number"):
        read_revman(path)


def test_truncated_xml(tmp_path):
    raw = UTF8_RM5.read_bytes()
    path = _write(tmp_path, "truncated.rm5", raw[: len(raw) // 2])
    with pytest.raises(RevManError, match=r"truncated\.rm5: not well-formed XML at line \d+"):
        read_revman(path)


def test_unknown_root_element(tmp_path):
    path = _write(tmp_path, "other.rm5", '<?xml version="1.0"?>\n<REVIEW><STUDY/></REVIEW>')
    with pytest.raises(RevManError, match=r"other\.rm5: unknown root element <REVIEW>"):
        read_revman(path)


def test_missing_required_attribute(tmp_path):
    path = _variant(tmp_path, 'MEAN_1="3.9" SD_1="2.2" ', 'MEAN_1="3.9" ')
    msg = (
        r"review_utf8\.rm5: outcome 1\.1 'Pain, 0 to 10 scale, end of treatment'.*"
        r"subgroup 1\.1\.1 'Low dose', <CONT_DATA> #2 \(study 'Okafor 2014'.*SD_1 is missing"
    )
    with pytest.raises(RevManError, match=msg):
        read_revman(path)


def test_missing_study_id(tmp_path):
    path = _variant(tmp_path, '<IV_DATA STUDY_ID="STD-N_x00fa__x00f1_ez-2012" ', "<IV_DATA ")
    with pytest.raises(RevManError, match=r"outcome 2\.2 .*<IV_DATA> #1: .*STUDY_ID is missing"):
        read_revman(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('MEAN_1="4.25"', 'MEAN_1="n/a"', r"'Núñez 2012'.*MEAN_1 = 'n/a' is not a number"),
        ('EVENTS_1="17"', 'EVENTS_1="17.5"', r"'Smith 2018a'.*EVENTS_1 = '17.5' is not a whole"),
        ('SE="0.4"', 'SE="inf"', r"'Lee & Park 2019'.*SE = 'inf' is not a finite number"),
        ('<COMPARISON ID="CMP-002" NO="2">', '<COMPARISON ID="CMP-002" NO="two">',
         r"<COMPARISON> #2: attribute NO = 'two' is not a number"),
    ],
)
def test_rm5_bad_values(tmp_path, old, new, message):
    with pytest.raises(RevManError, match=message):
        read_revman(_variant(tmp_path, old, new))


def test_unknown_encoding_name(tmp_path):
    with pytest.raises(RevManError, match="unknown encoding"):
        read_revman(UTF8_RM5, encoding="no-such-codec")
    with pytest.raises(RevManError, match="unknown encoding"):
        read_revman(BOM_CSV, encoding="no-such-codec")


def test_csv_missing_header_columns(tmp_path):
    path = _write(tmp_path, "cols.csv", "Comparison Number,Outcome Number,Name\n1,0,Cmp\n")
    with pytest.raises(RevManError, match=r"cols\.csv, line 1: .*'Subgroup Number', 'Data Type'"):
        read_revman(path)


def test_csv_with_semicolons_gets_a_hint(tmp_path):
    path = _write(tmp_path, "semi.csv", MINIMAL_HEADER.replace(",", ";") + "1;0;0;Cmp\n")
    with pytest.raises(RevManError, match="';' or tabs as separator"):
        read_revman(path)


def test_csv_study_row_before_outcome_header(tmp_path):
    content = MINIMAL_HEADER + "1,0,0,Cmp,,,,,,,,,\n1,1,0,A 1999,,,,,2,10,3,11,1999\n"
    message = r"orphan\.csv, line 3: study row 'A 1999' .*before any header row"
    with pytest.raises(RevManError, match=message):
        read_revman(_write(tmp_path, "orphan.csv", content))


def test_csv_study_row_before_subgroup_header(tmp_path):
    content = MINIMAL_HEADER + MINIMAL_OUTCOME + "1,1,2,A 1999,,,,,2,10,3,11,1999\n"
    with pytest.raises(RevManError, match=r"line 4: .*before the header row of subgroup 1\.1\.2"):
        read_revman(_write(tmp_path, "sub.csv", content))


def test_csv_outcome_before_comparison_header(tmp_path):
    content = MINIMAL_HEADER + "1,1,0,Deaths,DIC,MH,RR,Random,,,,,\n"
    with pytest.raises(RevManError, match=r"line 2: outcome 1\.1 'Deaths' comes before"):
        read_revman(_write(tmp_path, "nocmp.csv", content))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,1,0,A 1999,,,,,two,10,3,11,1999", r"'A 1999'.*'Events 1' = 'two' is not a number"),
        ('1,1,0,A 1999,,,,,"2,5",10,3,11,1999', r"'Events 1' = '2,5' is not a number"),
        ("1,1,0,A 1999,,,,,2,,3,11,1999", r"'A 1999'.*column 'Total 1' is missing"),
        ("1,x,0,A 1999,,,,,2,10,3,11,1999", r"line 4: column 'Outcome Number' = 'x'"),
        ("1,1,0,A 1999,,,,,2,10,3,11,1999,extra", r"line 4: study row 'A 1999' has 14 fields"),
        # values shifted left by four fields: "2" lands in Data Type
        ("1,1,0,A 1999,2,10,3,11,1999", r"line 4: row 'A 1999' has 9 fields .*Data Type .*'2'"),
        ("1,1,0,Deaths again,DIC,MH,RR,Random,,,,,", r"line 4: a second header row for outcome"),
    ],
)
def test_csv_bad_study_rows(tmp_path, row, message):
    content = MINIMAL_HEADER + MINIMAL_OUTCOME + row + "\n"
    with pytest.raises(RevManError, match=message):
        read_revman(_write(tmp_path, "bad.csv", content))


def test_csv_needs_data_columns_of_its_type(tmp_path):
    header = "Comparison Number,Outcome Number,Subgroup Number,Name,Data Type\n"
    content = header + "1,0,0,Cmp,\n1,1,0,Pain,CON\n1,1,0,A 1999,\n"
    with pytest.raises(RevManError, match=r"lacks column 'Mean 1', needed for continuous"):
        read_revman(_write(tmp_path, "nodata.csv", content))


def test_csv_not_utf8(tmp_path):
    content = (MINIMAL_HEADER + MINIMAL_OUTCOME + "1,1,0,Müller 2003,,,,,2,10,3,11,2003\n")
    path = _write(tmp_path, "latin1.csv", content.encode("latin-1"))
    with pytest.raises(RevManError, match=r"latin1\.csv, line 4: cannot be decoded as utf-8-sig"):
        read_revman(path)
    assert read_revman(path, encoding="latin-1")["study"].tolist() == ["Müller 2003"]


def test_errors_are_ketabayes_errors():
    assert issubclass(RevManError, KetabayesError) and issubclass(RevManError, ValueError)


# ---------------------------------------------------------------------------
# split_analyses
# ---------------------------------------------------------------------------


def test_split_by_outcome():
    parts = list(split_analyses(read_revman(UTF8_RM5)))
    keys = [(a.comparison_no, a.outcome_no) for a, _ in parts]
    assert keys == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    measures = [(a.data_type, a.effect_measure, a.measure) for a, _ in parts]
    assert measures == [
        ("continuous", "SMD", "SMD"), ("dichotomous", "OR", "OR"), ("generic", "MD", "GEN"),
        ("dichotomous", "RR", "RR"), ("generic", "MD", "GEN"),
    ]
    cols = [list(d.columns) for _, d in parts]
    assert cols[0] == ["study", "trial_id", "year", "subgroup_no", "subgroup", *DATA_COLUMNS["continuous"]]
    assert cols[1] == ["study", "trial_id", "year", "ai", "n1i", "ci", "n2i"]
    assert cols[2] == ["study", "trial_id", "year", "yi", "sei", "n1i", "n2i"]
    assert cols[4] == ["study", "trial_id", "year", "yi", "sei"]  # no group sizes given
    first, data = parts[0]
    assert first.subgroup_no is None and first.outcome == "Pain, 0 to 10 scale, end of treatment"
    assert data["study"].tolist() == STUDIES_1_1 and list(data.index) == [0, 1, 2, 3]
    assert data.attrs["outcome_no"] == 1 and data.attrs["source_file"] == "review_utf8.rm5"


def test_split_by_subgroup():
    parts = list(split_analyses(read_revman(UTF8_RM5), by_subgroup=True))
    keys = [(a.comparison_no, a.outcome_no, a.subgroup_no, a.subgroup) for a, _ in parts]
    assert keys == [
        (1, 1, 1, "Low dose"), (1, 1, 2, "High dose"), (1, 2, None, None), (1, 3, None, None),
        (2, 1, 1, "Adults"), (2, 1, 2, "Children"), (2, 2, None, None),
    ]
    assert [len(d) for _, d in parts] == [2, 2, 4, 2, 1, 1, 1]
    assert "subgroup" not in parts[0][1].columns


def test_split_needs_revman_table():
    with pytest.raises(DataError, match="read_revman"):
        list(split_analyses(pd.DataFrame({"study": ["a"]})))


def test_docstring_examples_run():
    import doctest

    import ketabayes.data.revman as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
