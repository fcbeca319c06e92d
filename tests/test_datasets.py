"""Tests of the bundled data sets (ketabayes.data.datasets).

Expected counts and values are read off the source files in shared/data and
their publications, not from the loader.
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from ketabayes.data.datasets import arm_contrasts, describe_dataset, list_datasets, load_dataset
from ketabayes.errors import DataError, KetabayesError

SHARED = Path(__file__).parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"shared data folder {SHARED} not found: the original files live outside the "
    "repository",
)

FILES = resources.files("ketabayes.data").joinpath("files")
ORIGINALS = {
    "ferraro2025_published": ("ferraro2025_published.csv", "ferraro2025_published.csv"),
    "magnesium_mi": ("magnesium_mi.csv", "magnesium_mi_egger2001.csv"),
    "parkinson_adjuvants": ("parkinson_adjuvants.csv", "parkinson_adjuvants_stowe2010.csv"),
}


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(text.splitlines()))


@needs_shared
@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_bundled_csv_equals_shared_original_cell_by_cell(name):
    bundled, original = ORIGINALS[name]
    ours = _cells(FILES.joinpath(bundled).read_text("utf-8"))
    theirs = _cells((SHARED / original).read_text("utf-8"))
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"{bundled} line {i + 1}"


@needs_shared
@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_loaded_frame_equals_original(name):
    expected = pd.read_csv(SHARED / ORIGINALS[name][1])
    pd.testing.assert_frame_equal(load_dataset(name), expected)


def test_list_datasets():
    table = list_datasets()
    assert list(table.columns) == ["name", "title", "n_rows", "citation"]
    assert table["name"].tolist() == [
        "ferraro2025_published", "magnesium_mi", "parkinson_adjuvants",
    ]
    # 8 rows in the Ferraro extract, 16 magnesium trials, 29 Parkinson trials
    assert table["n_rows"].tolist() == [8, 16, 29]
    assert table["citation"].str.len().min() > 50


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("ferraro2025_published", ["Ferraro MC", "CD015373.pub2", "PMID: 40819842", "2025"]),
        ("magnesium_mi", ["Egger M", "Davey Smith G", "Altman DG", "BMJ Books", "2001",
                          "dat.egger2001"]),
        ("parkinson_adjuvants", ["Stowe R", "CD007166", "doi:10.1002/14651858.CD007166.pub2",
                                 "2010", "dat.stowe2010"]),
    ],
)
def test_citations(name, fragments):
    citation = load_dataset(name).attrs["citation"]
    for fragment in fragments:
        assert fragment in citation, fragment


def test_attrs_carry_description_and_provenance():
    df = load_dataset("ferraro2025_published")
    for key in ("name", "title", "description", "columns", "citation", "provenance",
                "metafor_mapping"):
        assert df.attrs[key], key
    # the caveat: the 0-100 scale is inferred, not stated
    assert "inferred" in df.attrs["description"]
    assert "not stated" in df.attrs["description"] or "does not state" in df.attrs["description"]
    assert "inferred" in df.attrs["provenance"]


def test_registry_describes_every_column_and_mapping():
    registry = json.loads(FILES.joinpath("datasets.json").read_text("utf-8"))
    assert set(registry) == set(ORIGINALS)
    for name, entry in registry.items():
        df = load_dataset(name)
        assert list(entry["columns"]) == list(df.columns), name
        mapped = [v for k, v in entry["metafor_mapping"].items() if k != "note"]
        assert set(mapped) <= set(df.columns), name


def test_magnesium_values():
    mg = load_dataset("magnesium_mi")
    assert len(mg) == 16
    assert list(mg.columns) == ["id", "study", "year", "ai", "n1i", "ci", "n2i"]
    isis = mg[mg["study"] == "ISIS-4"].iloc[0]
    assert (isis["year"], isis["ai"], isis["n1i"], isis["ci"], isis["n2i"]) == (
        1995, 2216, 29011, 2103, 29039,
    )
    assert (mg["study"] == "Shechter").sum() == 3


def test_parkinson_values():
    pk = load_dataset("parkinson_adjuvants")
    assert len(pk) == 29
    assert set(pk["t2"]) == {"Placebo"}
    assert pk["t3"].notna().sum() == 1


def test_parkinson_contrasts():
    pk = load_dataset("parkinson_adjuvants", form="contrasts")
    assert list(pk.columns) == ["study", "drug_class", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
    assert len(pk) == 30  # 28 two-arm trials + 2 contrasts from LARGO
    assert pk["drug_class"].value_counts().to_dict() == {
        "Dopamine Agonist": 15, "COMTI": 12, "MAOBI": 3,
    }
    largo = pk[pk["study"].str.startswith("LARGO")].set_index("study")
    assert list(largo.index) == ["LARGO (COMTI)", "LARGO (MAOBI)"]
    assert largo.loc["LARGO (COMTI)", ["m1i", "sd1i", "n1i"]].tolist() == [-1.2, 2.21, 218]
    assert largo.loc["LARGO (MAOBI)", ["m1i", "sd1i", "n1i"]].tolist() == [-1.18, 2.23, 222]
    # both LARGO contrasts use the same placebo arm
    assert largo[["m2i", "sd2i", "n2i"]].drop_duplicates().values.tolist() == [[-0.4, 2.21, 218]]
    first = pk.iloc[0]
    assert (first["study"], first["m1i"], first["n1i"], first["m2i"], first["n2i"]) == (
        "DA(pr/B) Int", -1.9, 152, -0.3, 76,
    )
    assert pk["n1i"].dtype == "Int64" and pk["m1i"].dtype == "float64"
    assert "share" in pk.attrs["form_description"]
    assert "correlated" in pk.attrs["description"]


def test_arm_contrasts_needs_exactly_one_reference_arm():
    wide = pd.DataFrame(
        {"study": ["X"], "t1": ["A"], "y1": [1.0], "sd1": [1.0], "n1": [10],
         "t2": ["B"], "y2": [0.0], "sd2": [1.0], "n2": [10]}
    )
    with pytest.raises(DataError, match=r"study 'X'.*exactly one 'Placebo' arm, found 0"):
        arm_contrasts(wide)
    assert arm_contrasts(wide, reference="B")["study"].tolist() == ["X"]
    with pytest.raises(DataError, match="arm columns"):
        arm_contrasts(wide.drop(columns=["sd2"]))


def test_unknown_dataset_suggests_closest_name():
    with pytest.raises(KetabayesError, match=r"unknown dataset 'magnesium'.*'magnesium_mi'"):
        load_dataset("magnesium")
    with pytest.raises(KetabayesError, match="parkinson_adjuvants"):
        describe_dataset("parkinsons")


def test_unknown_form():
    with pytest.raises(KetabayesError, match="has no form 'contrasts'"):
        load_dataset("magnesium_mi", form="contrasts")


def test_describe_dataset():
    text = describe_dataset("magnesium_mi")
    assert text.startswith("Intravenous magnesium in acute myocardial infarction")
    assert "16 rows" in text and "BMJ Books" in text and "ai=ai" in text


def test_docstring_examples_run():
    import doctest

    import ketabayes.data.datasets as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
