"""Parts of ``fit()`` and of rebuilding a model from a saved result shared by the models.

Used by :class:`~ketabayes.model.random_effects.RandomEffectsModel`,
:class:`~ketabayes.model.hierarchical.HierarchicalModel` and
:class:`~ketabayes.model.binomial.BinomialModel`: method validation, the seed
drawn when none is given, the decision thresholds, the settings dictionary
stored with every result, the default prior of ``tau`` from the data, NUTS
engine settings, and the design columns of a saved hierarchical result.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.model.priors import Prior, default_tau_prior, prior_from_dict

__all__ = [
    "Described",
    "html_describe",
    "check_method",
    "draws_tree",
    "default_tau_prior_for",
    "constant_coords",
    "draw_seed",
    "fit_settings",
    "group_constants",
    "make_thresholds",
    "nuts_engine_settings",
    "record_sampler",
    "prior_entry",
    "prior_from_entry",
]

METHODS = ("exact", "nuts")


def check_method(method, methods=METHODS) -> None:
    """Raise :class:`~ketabayes.errors.KetabayesError` (with a did-you-mean) for an unknown method."""
    if method not in methods:
        close = difflib.get_close_matches(str(method), methods, n=1)
        raise KetabayesError(f"unknown method {method!r}; use " + " or ".join(repr(m) for m in methods)
                             + (f" (did you mean {close[0]!r}?)" if close else ""))


def html_describe(text: str) -> str:
    """A model's plain-text description for notebooks: a compact preformatted block."""
    import html

    return f"<pre style='font-size: 0.9em'>{html.escape(text)}</pre>"


class Described:
    """Mixin of the model classes: ``repr`` and the notebook form are the model's ``describe()``."""

    def describe(self) -> str:  # pragma: no cover - every model defines it
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()

    def _repr_html_(self) -> str:
        return html_describe(self.describe())


def draw_seed(seed: int | None) -> int:
    """``seed`` itself, or a fresh one (recorded with the result, so the fit stays reproducible)."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    return int(seed)


def make_thresholds(mcid, measure, benefit, harm):
    """Decision thresholds for ``measure`` (``None`` without an MCID)."""
    from ketabayes.decision import Thresholds

    return Thresholds.for_measure(mcid, measure, benefit, harm) if mcid is not None else None


def prior_entry(prior: Prior | None, *, short: bool = False) -> dict | None:
    """A prior as stored in the settings: its parameters plus ``"text"`` (``str`` if ``short``, else ``describe``)."""
    if prior is None:
        return None
    return {**prior.to_dict(), "text": str(prior) if short else prior.describe()}


def prior_from_entry(d: dict | None) -> Prior | None:
    """Inverse of :func:`prior_entry`."""
    if d is None:
        return None
    return prior_from_dict({k: v for k, v in d.items() if k != "text"})


def fit_settings(model: str, engine: str, measure: str, *, priors: dict, thresholds, seed: int, draws: int,
                 chains: int, excluded, data_hash: str, head: dict | None = None, structure: dict | None = None,
                 columns: dict | None = None) -> dict:
    """The settings dictionary stored with a result.

    Keys, in order: ``model, engine``, ``head`` (e.g. ``fixed``), ``measure``,
    ``structure`` (``by, moderators, interaction, nest``), ``priors``,
    ``thresholds, seed, draws, chains, excluded_studies``, ``columns`` (if
    given), ``versions, data_hash``. The caller adds ``engine_settings``.
    """
    from ketabayes.provenance import package_versions

    out = {"model": model, "engine": engine, **(head or {}), "measure": measure, **(structure or {}), **priors,
           "thresholds": thresholds.to_dict() if thresholds else None, "seed": int(seed), "draws": int(draws),
           "chains": int(chains), "excluded_studies": list(excluded)}
    if columns is not None:
        out["columns"] = columns
    out["versions"] = package_versions()
    out["data_hash"] = data_hash
    return out


def nuts_engine_settings(tune: int, nuts: dict, sample_kwargs: dict, **extra) -> dict:
    """``engine_settings`` of a NUTS fit: tuning steps, sampler options, ``extra``, other ``pymc.sample`` args."""
    return {"tune": int(tune), "nuts": dict(nuts), **extra, **{k: repr(v) for k, v in sample_kwargs.items()}}


def default_tau_prior_for(measure: str, data: pd.DataFrame, vi, study: str = dims.STUDY_COL) -> Prior:
    """:func:`~ketabayes.model.priors.default_tau_prior` with each trial's total size from ``data``.

    The size of a row is ``n1i + n2i`` (parallel arms, multi-arm contrasts) where both are given,
    else ``ni`` (paired measures, crossover trials: the patients measured twice). A measure whose
    default needs sample sizes (MD, RD, paired measures, generic) raises a
    :class:`~ketabayes.errors.PriorError` naming the trials without one and the columns read.
    """
    from ketabayes.errors import PriorError

    m = (measure or "GEN").upper()
    n = np.full(len(data), np.nan)
    if {"n1i", "n2i"} <= set(data.columns):
        n = (pd.to_numeric(data["n1i"], errors="coerce") + pd.to_numeric(data["n2i"], errors="coerce")).to_numpy(
            dtype=float)
    if "ni" in data.columns:
        n = np.where(np.isnan(n), pd.to_numeric(data["ni"], errors="coerce").to_numpy(dtype=float), n)
    if m not in {"OR", "RR", "HR", "SMD"} and len(n) and not np.all(np.isfinite(n)):
        missing = np.flatnonzero(~np.isfinite(n))
        names = (data[study].astype(str).to_numpy()[missing].tolist() if study in data.columns
                 else [f"row {i + 1}" for i in missing])
        listed = ", ".join(map(repr, names[:5])) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise PriorError(
            f"no default prior for tau on the {m} scale: the unit-information default (Röver et al. 2021) needs "
            f"every trial's sample size (columns n1i + n2i, or ni for paired and crossover trials), missing for "
            f"{listed}; give the sizes, or a prior explicitly, e.g. prior_tau='halfnormal(10)' "
            "(CLI: --prior-tau \"halfnormal(10)\") in the units of the outcome")
    return default_tau_prior(measure, vi, n if len(n) else None)


# ---------------------------------------------------------------- hierarchical models: saved data
def group_constants(model) -> dict:
    """``constant_data`` of a hierarchical model: grouping and moderator columns, the design matrices
    and the definition of every target -- what loading the result needs, without the model object."""
    from ketabayes.inference.restore import design_constants
    from ketabayes.model.hierarchical import _label
    from ketabayes.result.hierarchical_result import target_constants

    const = {}
    for col in model.by + list(model.nest.values()):
        const[f"group_{col}"] = ((dims.STUDY,), model.data[col].map(_label).to_numpy(dtype=str))
    for m in model.design.moderators:
        const[f"moderator_{m}"] = ((dims.STUDY,), model.data[m].to_numpy(dtype=float))
    const.update(design_constants(model.design))
    const.update(target_constants(model.design.targets, model.by + list(model.nest.values())))
    return const


def constant_coords(model) -> dict:
    """Coordinates of :func:`group_constants`."""
    return {dims.STUDY: model.studies, dims.TARGET: [t.name for t in model.design.targets]}


def record_sampler(settings: dict, tree) -> None:
    """Store which NUTS implementation ran (PyMC's own or nutpie, with its version) in the settings.

    PyMC picks nutpie when it is installed; the two give different draws for the
    same seed, so the sampler is part of what makes a result reproducible.
    """
    import pytensor

    attrs = tree["posterior"].attrs
    engine = settings.setdefault("engine_settings", {})
    engine["sampler"] = (
        f"{attrs.get('inference_library', 'unknown')} {attrs.get('inference_library_version', '')}".strip())
    engine["numba_fastmath"] = bool(pytensor.config.numba__fastmath)   # False: see _compat.ieee_pytensor


def draws_tree(groups: dict[str, dict[str, np.ndarray]], var_dims: dict[str, list[str]] | None = None,
               coords: dict | None = None):
    """An ArviZ-layout ``xarray.DataTree`` from arrays of draws (what ``arviz_base.from_dict`` builds).

    Variables of the ``posterior`` group lead with ``(chain, draw)``; other groups (``observed_data``,
    ``constant_data``) have no sample dimensions. Built with xarray alone: importing ``arviz_base`` costs
    a tenth of a second at cold start (``benchmarks/cold_start.py``), and the exact engine needs none of it.

    Examples
    --------
    >>> import numpy as np
    >>> t = draws_tree({"posterior": {"mu": np.zeros((2, 3)), "theta": np.zeros((2, 3, 2))}},
    ...                {"theta": ["study"]}, {"study": ["A", "B"]})
    >>> dict(t["posterior"].sizes)
    {'chain': 2, 'draw': 3, 'study': 2}
    """
    import datetime

    import xarray as xr

    var_dims = var_dims or {}
    coords = coords or {}
    nodes = {}
    for group, variables in groups.items():
        lead = [dims.CHAIN, dims.DRAW] if group == "posterior" else []
        data_vars = {}
        for name, values in variables.items():
            values = np.asarray(values)
            named = list(var_dims.get(name, []))
            named += [f"{name}_dim_{i}" for i in range(len(named), values.ndim - len(lead))]
            data_vars[name] = (lead + named, values)
        ds = xr.Dataset(data_vars)
        ds = ds.assign_coords({d: np.asarray(coords[d]) if d in coords and d not in lead else np.arange(ds.sizes[d])
                               for d in ds.dims})
        ds.attrs = {"created_at": datetime.datetime.now(datetime.UTC).isoformat(), "creation_library": "ketabayes"}
        nodes[f"/{group}"] = ds
    return xr.DataTree.from_dict(nodes)
