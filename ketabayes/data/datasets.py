"""Real meta-analysis data sets bundled with ketabayes.

The files live in ``ketabayes/data/files/`` and are described in one
registry, ``datasets.json`` (title, column meanings, citation, provenance and
the suggested metafor column mapping of each data set).

=========================  ==========================================================
name                       content
=========================  ==========================================================
``ferraro2025_published``  published pooled results of the 2025 Cochrane review of
                           ketamine / NMDA antagonists for chronic pain
``magnesium_mi``           16 trials of IV magnesium in myocardial infarction (deaths)
``parkinson_adjuvants``    29 trials of adjuvants to levodopa (change in "off" time)
=========================  ==========================================================
"""

from __future__ import annotations

import difflib
import functools
import json
import textwrap
from importlib import resources

import pandas as pd

from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError, KetabayesError

__all__ = ["list_datasets", "load_dataset", "describe_dataset", "arm_contrasts"]

_FILES = "files"


@functools.cache
def _registry() -> dict[str, dict]:
    text = resources.files("ketabayes.data").joinpath(_FILES, "datasets.json").read_text("utf-8")
    return json.loads(text)


def _entry(name: str) -> dict:
    registry = _registry()
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(str(name), list(registry), n=1, cutoff=0.5)
    close += [n for n in registry if str(name).lower() in n and n not in close]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise KetabayesError(
        f"unknown dataset {name!r}.{hint} Available: {', '.join(sorted(registry))}"
    )


def _read(entry: dict) -> pd.DataFrame:
    with resources.files("ketabayes.data").joinpath(_FILES, entry["file"]).open("rb") as f:
        return pd.read_csv(f)


def list_datasets() -> pd.DataFrame:
    """List the data sets bundled with ketabayes.

    Returns
    -------
    pandas.DataFrame
        One row per data set with columns ``name``, ``title``, ``n_rows``
        (rows of the data set as published) and ``citation``.

    Examples
    --------
    >>> from ketabayes.data.datasets import list_datasets
    >>> list_datasets()["name"].tolist()
    ['ferraro2025_published', 'magnesium_mi', 'parkinson_adjuvants']
    """
    rows = [
        {
            "name": name,
            "title": entry["title"],
            "n_rows": len(_read(entry)),
            "citation": entry["citation"],
        }
        for name, entry in sorted(_registry().items())
    ]
    return pd.DataFrame(rows, columns=["name", "title", "n_rows", "citation"])


def load_dataset(name: str, *, form: str = "original") -> pd.DataFrame:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        Name of the data set, see :func:`list_datasets`.
    form : {"original", "contrasts"}, default "original"
        ``"original"`` returns the file as published. ``"contrasts"`` (only
        for ``parkinson_adjuvants``) returns one row per active arm versus the
        placebo arm of the same trial, see :func:`arm_contrasts`.

    Returns
    -------
    pandas.DataFrame
        The data. ``df.attrs`` holds ``name``, ``title``, ``description``,
        ``columns`` (meaning of each column), ``citation``, ``doi``, ``pmid``,
        ``provenance``, ``metafor_mapping`` and ``form``.

    Raises
    ------
    KetabayesError
        If the name is unknown (the message suggests the closest name) or the
        data set has no such form.

    Notes
    -----
    ``ferraro2025_published`` holds pooled estimates read from published
    text, not study-level data; the 0-100 scale of its pain mean difference
    is inferred from the size of the estimate, not stated in the source.

    Examples
    --------
    >>> from ketabayes.data.datasets import load_dataset
    >>> mg = load_dataset("magnesium_mi")
    >>> len(mg), list(mg.columns[-4:])
    (16, ['ai', 'n1i', 'ci', 'n2i'])
    >>> pk = load_dataset("parkinson_adjuvants", form="contrasts")
    >>> pk.loc[pk["study"].str.startswith("LARGO"), ["study", "drug_class"]].to_numpy().tolist()
    [['LARGO (COMTI)', 'COMTI'], ['LARGO (MAOBI)', 'MAOBI']]
    """
    entry = _entry(name)
    forms = ["original", *entry.get("forms", {})]
    if form not in forms:
        raise KetabayesError(
            f"dataset {name!r} has no form {form!r}; available: {', '.join(map(repr, forms))}"
        )
    df = _read(entry)
    if form == "contrasts":
        df = arm_contrasts(df, reference="Placebo")
    df.attrs = {
        "name": name,
        "title": entry["title"],
        "description": entry["description"],
        "columns": dict(entry["columns"]),
        "citation": entry["citation"],
        "doi": entry.get("doi"),
        "pmid": entry.get("pmid"),
        "provenance": entry["provenance"],
        "metafor_mapping": dict(entry["metafor_mapping"]),
        "form": form,
    }
    if form != "original":
        df.attrs["form_description"] = entry["forms"][form]
    return df


def describe_dataset(name: str) -> str:
    """Human-readable description of a bundled data set.

    Parameters
    ----------
    name : str
        Name of the data set, see :func:`list_datasets`.

    Returns
    -------
    str
        Title, size, description, column meanings, citation, provenance and
        the suggested metafor column mapping.

    Examples
    --------
    >>> from ketabayes.data.datasets import describe_dataset
    >>> print(describe_dataset("magnesium_mi"))  # doctest: +ELLIPSIS
    Intravenous magnesium in acute myocardial infarction: 16 trials ...
    """
    entry = _entry(name)
    df = _read(entry)

    def wrap(text: str, indent: str = "  ") -> str:
        return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)

    width = max(map(len, entry["columns"]))
    lines = [entry["title"], f"name: {name}; {len(df)} rows x {df.shape[1]} columns", ""]
    lines += ["Description:", wrap(entry["description"]), "", "Columns:"]
    lines += [
        textwrap.fill(
            meaning, width=88, initial_indent=f"  {col:<{width}}  ",
            subsequent_indent=" " * (width + 4),
        )
        for col, meaning in entry["columns"].items()
    ]
    lines += ["", "Citation:", wrap(entry["citation"])]
    lines += ["", "Provenance:", wrap(entry["provenance"])]
    mapping = {k: v for k, v in entry["metafor_mapping"].items() if k != "note"}
    lines += ["", "Suggested metafor mapping: " + ", ".join(f"{k}={v}" for k, v in mapping.items())]
    if "note" in entry["metafor_mapping"]:
        lines.append(wrap(entry["metafor_mapping"]["note"]))
    for form, text in entry.get("forms", {}).items():
        lines += ["", f"form={form!r}:", wrap(text)]
    return "\n".join(lines)


def arm_contrasts(df: pd.DataFrame, *, reference: str = "Placebo") -> pd.DataFrame:
    """Turn wide arm-level data into two-arm contrasts against a reference arm.

    The input has metadat's wide layout: a ``study`` column and, for each
    arm ``k = 1, 2, ...``, the columns ``t{k}`` (treatment), ``y{k}`` (mean),
    ``sd{k}`` and ``n{k}``. Each non-reference arm gives one contrast with the
    reference arm of the same study.

    Parameters
    ----------
    df : pandas.DataFrame
        Arm-level data, e.g. ``load_dataset("parkinson_adjuvants")``.
    reference : str, default "Placebo"
        Treatment name of the reference (control) arm; every study must have
        exactly one.

    Returns
    -------
    pandas.DataFrame
        Columns ``study, drug_class, m1i, sd1i, n1i, m2i, sd2i, n2i``: group 1
        is the active arm (``drug_class`` = its treatment), group 2 the
        reference arm, ready for ``effect_sizes(measure="MD")`` (MD = active
        minus reference). A study with several active arms gives one row per
        arm, labelled ``"study (treatment)"``; these rows share the reference
        arm and are correlated.

    Raises
    ------
    DataError
        If a study has no reference arm or more than one, or the arm columns
        are missing.

    Examples
    --------
    >>> from ketabayes.data.datasets import arm_contrasts, load_dataset
    >>> pk = arm_contrasts(load_dataset("parkinson_adjuvants"))
    >>> len(pk)
    30
    """
    arms = []
    k = 1
    while f"t{k}" in df.columns:
        arms.append(k)
        k += 1
    needed = [STUDY_COL] + [f"{v}{k}" for k in arms for v in ("t", "y", "sd", "n")]
    missing = [c for c in needed if c not in df.columns]
    if len(arms) < 2 or missing:
        raise DataError(
            "arm_contrasts needs a 'study' column and arm columns t1, y1, sd1, n1, t2, ...",
            column=missing[0] if missing else "t2",
        )

    rows = []
    for _, row in df.iterrows():
        study = str(row[STUDY_COL])
        present = [k for k in arms if pd.notna(row[f"t{k}"]) and str(row[f"t{k}"]).strip()]
        controls = [k for k in present if row[f"t{k}"] == reference]
        if len(controls) != 1:
            raise DataError(
                f"expected exactly one {reference!r} arm, found {len(controls)}",
                study=study, column="t1",
            )
        control = controls[0]
        active = [k for k in present if k != control]
        for k in active:
            treatment = str(row[f"t{k}"])
            label = study if len(active) == 1 else f"{study} ({treatment})"
            rows.append(
                {
                    STUDY_COL: label,
                    "drug_class": treatment,
                    "m1i": row[f"y{k}"],
                    "sd1i": row[f"sd{k}"],
                    "n1i": row[f"n{k}"],
                    "m2i": row[f"y{control}"],
                    "sd2i": row[f"sd{control}"],
                    "n2i": row[f"n{control}"],
                }
            )
    columns = [STUDY_COL, "drug_class", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
    out = pd.DataFrame(rows, columns=columns)
    for col in ("m1i", "sd1i", "m2i", "sd2i"):
        out[col] = out[col].astype("float64")
    for col in ("n1i", "n2i"):
        out[col] = out[col].astype("Int64")
    duplicated = out[STUDY_COL].duplicated(keep=False)
    if duplicated.any():
        raise DataError(
            "two contrasts of one study have the same label (two arms with the same "
            "treatment); rename the arms first",
            study=str(out.loc[duplicated, STUDY_COL].iloc[0]), column=STUDY_COL,
        )
    return out
