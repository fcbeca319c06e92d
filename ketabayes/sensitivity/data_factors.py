"""Data factors of the grid: the choices that build a variant's effect-size frame.

One mechanism: each variant's data is the frame of its ``data`` level with the other data
factors applied in order, each a function of the frame that the data layer provides:

=================  ===================================================================
factor             what a level does to the frame
=================  ===================================================================
``data``           the frame itself: the first level, or a table / ``callable(first
                   level) -> table`` (e.g. another extraction, another conversion)
``r``              every within-patient correlation that was *assumed* (``assumed_r``)
                   set to the level (:func:`~ketabayes.data.crossover.with_assumed_r`)
``multiarm``       ``"correlated"`` / ``"combine"`` / ``"split"``
                   (:func:`~ketabayes.data.multiarm.handle_multiarm`)
``conversions``    ``"included"`` / ``"excluded"``: the trials with ``converted == True``
                   (a mean/SD or SE estimated from other summaries) left out
=================  ===================================================================

A factor that cannot change any of the frames (no assumed correlation, no multi-arm trial,
no converted trial) is an error naming the column it looked at. The analysis assumptions
``rho_time``, ``rho_between`` and ``bias`` do not change the frame; they reach the analysis
through the :class:`~ketabayes.sensitivity.spec.Variant`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ketabayes.errors import DataError, DataWarning, KetabayesError

__all__ = ["FrameSet", "data_levels", "float_levels", "text_levels", "bias_levels", "build_frame", "CONVERSIONS"]

#: levels of the ``conversions`` factor
CONVERSIONS = ("included", "excluded")


def _is_frame(x) -> bool:
    return isinstance(x, pd.DataFrame)


def data_levels(data, study: str) -> dict[str, pd.DataFrame]:
    """``{label: frame}`` of the ``data`` argument: a frame (label ``"as given"``) or a mapping.

    A mapping's first value must be a table; later values may be tables or callables that
    receive (a copy of) the first table and return a table.
    """
    if _is_frame(data):
        return {"as given": data}
    if not isinstance(data, Mapping) or not data:
        raise KetabayesError(f"data must be a pandas DataFrame of effect sizes, or a dict {{label: DataFrame or "
                             f"callable}} (the data factor), got {type(data).__name__}")
    items = [(str(k), v) for k, v in data.items()]
    label0, base = items[0]
    if not _is_frame(base):
        raise KetabayesError(f"data level {label0!r}: the first level must be a DataFrame (callables of later levels "
                             "receive it), got " + type(base).__name__)
    out = {}
    for label, v in items:
        if callable(v) and not _is_frame(v):
            try:
                v = v(base.copy(deep=True))
            except KetabayesError:
                raise
            except Exception as e:
                raise KetabayesError(f"data level {label!r}: the callable failed on the first level's table: "
                                     f"{type(e).__name__}: {e}") from e
        if not _is_frame(v):
            raise KetabayesError(f"data level {label!r} must be a DataFrame or a callable returning one, got "
                                 f"{type(v).__name__}")
        if v.empty:
            raise KetabayesError(f"data level {label!r} has no rows")
        out[label] = v
    return out


def float_levels(value, name: str, check: Callable[[float], float]) -> dict[str, float]:
    """``{label: number}`` of a numeric factor (label ``f"{x:g}"``); ``check`` validates each."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        raise KetabayesError(f"{name} takes a number or a list of numbers, got a dict")
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        value = [value]
    out: dict[str, float] = {}
    for x in value:
        try:
            xv = check(x)
        except KetabayesError as e:
            raise KetabayesError(f"{name} level {x!r}: {e}") from None
        lab = f"{xv:g}"
        if lab in out:
            raise KetabayesError(f"{name} level {lab} is given twice")
        out[lab] = float(xv)
    if not out:
        raise KetabayesError(f"{name} needs at least one level")
    return out


def text_levels(value, name: str, allowed: Sequence[str]) -> list[str]:
    """Levels of a factor with a fixed vocabulary (``True`` = all of them)."""
    if value is None or value is False:
        return []
    if value is True:
        return list(allowed)
    value = [value] if isinstance(value, str) else list(value)
    out = []
    for v in value:
        if v not in allowed:
            raise KetabayesError(f"{name} level {v!r} is not one of {', '.join(map(repr, allowed))}")
        if v in out:
            raise KetabayesError(f"{name} level {v!r} is given twice")
        out.append(v)
    if not out:
        raise KetabayesError(f"{name} needs at least one level")
    return out


def bias_levels(value, benefit: str) -> dict:
    """``{label: BiasAdjustment or None}``: ``"none"``, ``"RoB"`` (column ``rob``, high = ``"high"``),
    a :class:`~ketabayes.sensitivity.structured.BiasAdjustment`, or a dict of kb.bma's keywords
    (``rob``, ``rob_high``, ``prior_rob``); a dict of levels gives them labels."""
    from dataclasses import replace

    from ketabayes.sensitivity.structured import BiasAdjustment

    if value is None:
        return {}

    def one(v):
        if v is None or (isinstance(v, str) and v.strip().lower() == "none"):
            return None
        if isinstance(v, str) and v.strip().lower() == "rob":
            return BiasAdjustment(direction=benefit)
        if isinstance(v, BiasAdjustment):
            return replace(v, direction=benefit)
        if isinstance(v, Mapping):
            unknown = set(v) - {"rob", "rob_high", "prior_rob"}
            if unknown:
                raise KetabayesError(f"a bias level takes kb.bma's keywords rob, rob_high, prior_rob; got {sorted(unknown)}")
            return BiasAdjustment(v.get("rob", "rob"), v.get("rob_high"), v.get("prior_rob"), benefit)
        raise KetabayesError(f"bias levels are 'none', 'RoB', a BiasAdjustment or a dict (rob=..., rob_high=...); "
                             f"got {v!r}")

    if isinstance(value, Mapping) and not set(value) <= {"rob", "rob_high", "prior_rob"}:
        items = [(str(k), one(v)) for k, v in value.items()]
    else:
        value = [value] if isinstance(value, (str, Mapping, BiasAdjustment)) else list(value)
        items = []
        for v in value:
            b = one(v)
            items.append(("none" if b is None else ("RoB" if isinstance(v, str) else b.describe()), b))
    out = {}
    for lab, b in items:
        if lab in out:
            raise KetabayesError(f"two bias levels are both labelled {lab!r}; give them as a dict {{label: level}}")
        out[lab] = b
    return out


def converted_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose values were converted (``converted == True``; a missing flag counts as not converted)."""
    if "converted" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["converted"].map(lambda x: bool(x) if not pd.isna(x) else False).to_numpy(dtype=bool)


def has_assumed_r(frame: pd.DataFrame) -> bool:
    return "assumed_r" in frame.columns and bool(
        np.isfinite(pd.to_numeric(frame["assumed_r"], errors="coerce").to_numpy(dtype=float)).any())


def _with_r(frame: pd.DataFrame, r: float | None, study: str) -> pd.DataFrame:
    from ketabayes.data.crossover import with_assumed_r

    if r is not None and not math.isnan(r) and has_assumed_r(frame):
        return with_assumed_r(frame, r, study=study)
    return frame


def _with_multiarm(frame: pd.DataFrame, multiarm: str | None, study: str) -> pd.DataFrame:
    from ketabayes.data.multiarm import handle_multiarm, multiarm_trials

    if multiarm is not None and multiarm_trials(frame, study=study):
        return handle_multiarm(frame, multiarm, study=study)
    return frame


def _with_conversions(frame: pd.DataFrame, conversions: str | None) -> pd.DataFrame:
    if conversions == "excluded":
        conv = converted_rows(frame)
        if conv.all():
            raise DataError("conversions='excluded' leaves no trial: every trial's values were converted "
                            "(column 'converted')", column="converted")
        frame = frame.loc[~conv]
    return frame.reset_index(drop=True)


def build_frame(frame: pd.DataFrame, *, r: float | None, multiarm: str | None, conversions: str | None,
                study: str) -> pd.DataFrame:
    """A variant's frame: ``frame`` with the data factors' levels applied in order (a new table)."""
    return _with_conversions(_with_multiarm(_with_r(frame, r, study), multiarm, study), conversions)


def _prepare(df: pd.DataFrame, study: str) -> pd.DataFrame:
    """A fresh copy with a study column and ``vi`` (from ``sei`` when only that is given)."""
    df = df.reset_index(drop=True).copy()
    if study not in df.columns:
        df[study] = [f"Study {i + 1}" for i in range(len(df))]
    if "vi" not in df.columns and "sei" in df.columns:
        df["vi"] = pd.to_numeric(df["sei"], errors="coerce") ** 2
    return df


def _mask(df: pd.DataFrame, name: str, spec, where: str) -> np.ndarray:
    try:
        if isinstance(spec, str):
            keep = df.index.isin(df.query(spec).index)
        elif callable(spec):
            keep = np.asarray(spec(df), dtype=bool)
        else:
            keep = np.asarray(spec, dtype=bool)
    except Exception as e:
        raise KetabayesError(f"subset {name!r}: could not select rows{where} with {spec!r}: {e}") from e
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (len(df),):
        hint = (" (the data factors change the rows: give the subset as a query string or a callable)"
                if where else "")
        raise KetabayesError(f"subset {name!r}: the mask has {keep.size} entries but the data{where} has {len(df)} "
                             f"rows{hint}")
    return keep


class FrameSet:
    """The effect-size frame of every combination of data-factor levels, and the rows of each subset.

    Built once when the grid is configured (data construction takes milliseconds), so every
    problem shows before anything is fitted; a variant's rows are taken from it on demand.

    Parameters
    ----------
    data : DataFrame or dict
        See :class:`~ketabayes.sensitivity.Sensitivity`.
    r : float or list of float, optional
    multiarm, conversions : str or list of str, optional
    subsets : dict, optional
    leave_one_out : bool
    study : str
    """

    def __init__(self, data, *, r=None, multiarm=None, conversions=None, subsets=None, leave_one_out=False,
                 study: str = "study"):
        from ketabayes.data.multiarm import MULTIARM_HANDLING, multiarm_trials
        from ketabayes.data.paired import check_correlation

        self.study = study
        self.data = {lab: _prepare(df, study) for lab, df in data_levels(data, study).items()}
        self.r = float_levels(r, "r", check_correlation)
        self.multiarm = text_levels(multiarm, "multiarm", MULTIARM_HANDLING)
        self.conversions = text_levels(conversions, "conversions", CONVERSIONS)
        frames = list(self.data.values())
        if self.r and not any(has_assumed_r(f) for f in frames):
            raise KetabayesError(f"r={list(self.r.values())}: no trial of the data needs an assumed within-patient "
                                 "correlation (column 'assumed_r' is missing or empty; crossover() fills it for "
                                 "trials of route 'periods' without ri, effect_sizes() for paired measures with r=)")
        if self.multiarm and not any(multiarm_trials(f, study=study) for f in frames):
            raise KetabayesError(f"multiarm={self.multiarm}: the data has no multi-arm trial (a study with several "
                                 "contrasts against one shared control, columns 'control' and 'vi_control', as "
                                 "multiarm_contrasts() writes them)")
        if "excluded" in self.conversions and not any(converted_rows(f).any() for f in frames):
            raise KetabayesError("conversions='excluded': no trial's values were converted (column 'converted' is "
                                 "missing or all False), so there is nothing to leave out")
        self.frames: dict[tuple, pd.DataFrame] = {}
        stages: dict[tuple, pd.DataFrame] = {}  # each step once per prefix of levels (build_frame, staged)
        for key in itertools.product(*self.levels().values()):
            dlab, rlab, mlab, clab = key
            try:
                if key[:2] not in stages:
                    stages[key[:2]] = _with_r(self.data[dlab], self.r.get(rlab), study)
                if key[:3] not in stages:
                    stages[key[:3]] = _with_multiarm(stages[key[:2]], mlab if self.multiarm else None, study)
                self.frames[key] = _with_conversions(stages[key[:3]], clab)
            except DataError as e:
                raise DataError(f"{e} [data factors: {self.key_label(key)}]") from e
        self.base_key = next(iter(self.frames))
        # subsets: masks over every frame's rows
        self.subset_specs = {"all": None}
        for name, spec in (subsets or {}).items():
            if str(name) in self.subset_specs:
                raise KetabayesError(f"subset name {name!r} is used twice")
            self.subset_specs[str(name)] = spec
        self.masks: dict[tuple, np.ndarray] = {}
        multi = len(self.frames) > 1
        for key, f in self.frames.items():
            for name, spec in self.subset_specs.items():
                where = f" [{self.key_label(key)}]" if multi else ""
                m = np.ones(len(f), dtype=bool) if spec is None else _mask(f, name, spec, where)
                if not m.any():
                    raise KetabayesError(f"subset {name!r} keeps no study{where}")
                self.masks[(key, name)] = m
        # leave-one-out: a study (or, after a split control, a trial) left out of every frame
        self.loo: dict[str, str] = {}
        if leave_one_out:
            base = self.frames[self.base_key]
            from ketabayes.sensitivity.structured import structure_of

            labels = base[study].astype(str).tolist()
            if len(set(labels)) < 2:
                raise KetabayesError("leave_one_out=True needs at least two studies")
            structured = structure_of(base, study) is not None
            for s in (dict.fromkeys(labels) if structured else labels):
                name = f"without {s}"
                if name in self.subset_specs or name in self.loo:
                    raise KetabayesError(f"leave-one-out: study label {s!r} (column {study!r}) is not unique; "
                                         "make the labels unique, e.g. add the year")
                self.loo[name] = s

    # ------------------------------------------------------------------
    def levels(self) -> dict[str, list[str]]:
        """Labels of the data factors' levels (one level, e.g. ``"as given"``, when not varied)."""
        return {"data": list(self.data), "r": list(self.r) or ["-"], "multiarm": self.multiarm or ["as given"],
                "conversions": self.conversions or ["included"]}

    def key_label(self, key: tuple) -> str:
        return ", ".join(f"{n}={v}" for n, v in zip(("data", "r", "multiarm", "conversions"), key))

    def subset_names(self) -> list[str]:
        return [*self.subset_specs, *self.loo]

    def mask(self, subset: str, key: tuple | None = None) -> np.ndarray:
        """Rows of frame ``key`` (default: the first) that ``subset`` keeps."""
        key = self.base_key if key is None else key
        if subset in self.loo:
            f = self.frames[key]
            s = self.loo[subset]
            keep = (f[self.study].astype(str) != s).to_numpy()
            if "trial" in f.columns:
                keep &= (f["trial"].astype(str) != s).to_numpy()
            return keep
        return self.masks[(key, subset)]

    def rows(self, key: tuple, subset: str) -> pd.DataFrame:
        """The rows of one variant's data (a fresh frame: leave-one-out grids stream)."""
        return self.frames[key].loc[self.mask(subset, key)].reset_index(drop=True)

    def size(self, key: tuple, subset: str) -> int:
        return int(self.mask(subset, key).sum())

    def validate(self, validate_one: Callable[[pd.DataFrame, bool], str]) -> str:
        """Run ``validate_one(frame, first)`` on every distinct frame; the measures must agree.

        Warnings (e.g. non-estimable studies) are shown for each data level's table, not again for
        the frames the other data factors derive from it.
        """
        measures = {}
        seen = set()
        for key, f in self.frames.items():
            if key[0] in seen:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DataWarning)
                    measures[key] = validate_one(f, False)
            else:
                measures[key] = validate_one(f, key == self.base_key)
            seen.add(key[0])
        if len(set(measures.values())) > 1:
            shown = "; ".join(f"{self.key_label(k)}: {m}" for k, m in measures.items())
            raise KetabayesError(f"the data levels do not share one effect measure ({shown}); effects on different "
                                 "scales are never pooled")
        return measures[self.base_key]

    def settings(self) -> dict:
        """Digests of every frame and subset mask (for the configuration hash)."""
        from ketabayes.sensitivity.spec import _frame_digest, _mask_digest

        return {"frames": {self.key_label(k): _frame_digest(f) for k, f in self.frames.items()},
                "subsets": {f"{self.key_label(k)}/{n}": _mask_digest(m) for (k, n), m in self.masks.items()},
                "leave_one_out": sorted(self.loo.values()), "r": self.r, "multiarm": self.multiarm,
                "conversions": self.conversions}

    def describe(self) -> dict:
        """What each data-factor level changes, study by study (for :meth:`Sensitivity.grid_description`)."""
        from ketabayes.data.multiarm import multiarm_trials

        out: dict = {"data": {lab: {"n_rows": len(f)} for lab, f in self.data.items()}}
        if self.r:
            out["r"] = {"levels": list(self.r.values()), "rederived": {
                lab: f.loc[np.isfinite(pd.to_numeric(f.get("assumed_r", pd.Series(np.nan, index=f.index)),
                                                     errors="coerce")), self.study].astype(str).tolist()
                for lab, f in self.data.items()}}
        if self.multiarm:
            out["multiarm"] = {"levels": self.multiarm,
                               "trials": {lab: multiarm_trials(f, study=self.study) for lab, f in self.data.items()}}
        if self.conversions:
            out["conversions"] = {"levels": self.conversions, "converted": {
                lab: f.loc[converted_rows(f), self.study].astype(str).tolist() for lab, f in self.data.items()}}
        return out
