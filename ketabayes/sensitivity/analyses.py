"""The analyses registry: which analysis factory fits a variant of a given ``(model, likelihood)``.

An *analysis factory* is a callable ``(data, variant, *, seed, measure, keep_result,
thresholds, study, by, **fit_kwargs)`` returning an object with ``marginal(target)``
(:func:`normal_analysis` is the reference implementation). Built in: random/fixed
normal-normal (exact or NUTS), the arm-level binomial likelihood, the hierarchical
drug x condition model and separate analyses per group. Others plug in through
:func:`register_analysis`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pandas as pd

from ketabayes import dims
from ketabayes.decision import Thresholds
from ketabayes.errors import DataWarning, KetabayesError
from ketabayes.marginals import Marginal
from ketabayes.sensitivity.spec import Variant

__all__ = ["AnalysisNotAvailableError", "normal_analysis", "binomial_analysis", "hierarchical_analysis",
           "separate_analysis", "bma_analysis", "register_analysis", "available_analyses"]


class AnalysisNotAvailableError(KetabayesError, NotImplementedError):
    """No analysis factory is registered for a (model, likelihood) combination."""


class _ExactFit:
    """Light-weight fit of the exact path: marginals straight from the engine."""

    def __init__(self, exact, studies, result=None):
        self.exact = exact
        self.studies = list(studies)
        self.result = result

    def marginal(self, target: str) -> Marginal:
        var, study = _parse_target(target, self.studies)
        if var == dims.MU:
            return self.exact.mu
        if var == dims.THETA_NEW:
            return self.exact.theta_new
        if var == dims.THETA:
            return self.exact.theta(self.studies.index(study))
        raise KetabayesError(f"unknown target {target!r} (study not in this variant's data?)")


class _EngineTargets:
    """Light-weight exact fit of a model with named targets (``model.design.targets``): their marginals
    straight from the engine, as the model's result would give them."""

    def __init__(self, exact, model):
        self.exact = exact
        self.studies = list(model.studies)
        self._index = {t.name: i for i, t in enumerate(model.design.targets)}

    def marginal(self, target: str) -> Marginal:
        name = target.removeprefix("study=")
        if name not in self._index:
            raise KetabayesError(f"unknown target {target!r} (study not in this variant's data?)")
        return self.exact.marginal(self._index[name])


def _parse_target(target: str, studies) -> tuple[str | None, str | None]:
    """``(variable, study)`` of a target name, as :meth:`MetaResult.marginal` reads it.

    ``"mean"``/``"mu"`` -> ``("mu", None)``; ``"predictive"``/``"theta_new"`` ->
    ``("theta_new", None)``; a study label or ``"study=<label>"`` in ``studies``
    -> ``("theta", label)``; anything else -> ``(None, None)``.
    """
    key = target.removeprefix("study=")
    if key in ("mean", dims.MU):
        return dims.MU, None
    if key in ("predictive", dims.THETA_NEW):
        return dims.THETA_NEW, None
    if key in studies:
        return dims.THETA, key
    return None, None


def _estimable_rows(data: pd.DataFrame, study: str) -> pd.DataFrame:
    """Rows of ``data`` a normal likelihood can use; warns naming the studies left out."""
    if "estimable" not in data.columns:
        return data
    mask = data["estimable"].astype(bool).to_numpy()
    if mask.all():
        return data
    left_out = data.loc[~mask, study].astype(str).tolist()
    if not mask.any():
        raise KetabayesError(f"no study of this variant is estimable for a normal likelihood (all "
                             f"{len(left_out)} have no events in either arm): {', '.join(left_out)}")
    warnings.warn(f"{len(left_out)} study(ies) left out of the normal-likelihood model because their effect is "
                  f"not estimable (no events in either arm): {', '.join(left_out)}", DataWarning, stacklevel=3)
    return data.loc[mask].reset_index(drop=True)


def _n_studies(fit, data: pd.DataFrame) -> int:
    """Number of studies an analysis used (its ``studies`` or its model's), else the rows it was given."""
    studies = getattr(fit, "studies", None)
    if studies is None:
        studies = getattr(getattr(fit, "model", None), "studies", None)
    try:
        return len(studies)
    except TypeError:
        return len(data)


def normal_analysis(data: pd.DataFrame, variant: Variant, *, seed: int, measure: str, keep_result: bool = False,
                    thresholds: Thresholds | None = None, study: str = dims.STUDY_COL, by=(), **fit_kwargs):
    """Built-in analysis factory: the normal-normal random- or fixed-effect model.

    This is the reference implementation of the *analysis factory* protocol used
    by :func:`register_analysis`: a callable ``(data, variant, *, seed, measure,
    keep_result, thresholds, study, **fit_kwargs)`` returning an object with a
    ``marginal(target) -> Marginal`` method (a
    :class:`~ketabayes.result.result.MetaResult` qualifies) and optionally
    ``tree`` (a DataTree with ``log_prior``/``log_likelihood`` groups, enabling
    power-scaling) and ``model`` (the PyMC model). ``by`` (the groupings of
    hierarchical variants in the same grid) is ignored.

    The grid passes every row of the variant's subset; rows flagged
    ``estimable == False`` (double-zero trials on a log scale) are left out
    here, with a :class:`~ketabayes.errors.DataWarning` naming them. Correlated
    estimates (multi-arm contrasts, time windows) and bias-adjusted variants are
    fitted by :func:`~ketabayes.sensitivity.structured.structured_analysis`.
    """
    if variant.bias is not None or {"vi_control", "time"} & set(data.columns):
        from ketabayes.sensitivity.structured import structure_of, structured_analysis

        if variant.bias is not None or structure_of(data, study) is not None:
            return structured_analysis(_estimable_rows(data, study), variant, seed=seed, measure=measure,
                                       keep_result=keep_result, thresholds=thresholds, study=study)
    if variant.method == "exact" and not keep_result:
        from ketabayes.inference.exact import ExactNormalNormal

        data = _estimable_rows(data, study)
        y = data["yi"].to_numpy(dtype=float)
        v = data["vi"].to_numpy(dtype=float)
        exact = ExactNormalNormal(y, v, variant.prior_mu, None if variant.fixed else variant.prior_tau,
                                  fixed=variant.fixed)
        return _ExactFit(exact, data[study].astype(str).tolist())
    from ketabayes.model.random_effects import RandomEffectsModel

    # RandomEffectsModel leaves out non-estimable rows itself, with a DataWarning naming them
    model = RandomEffectsModel(data, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau,
                               fixed=variant.fixed, measure=measure, study=study)
    kw = dict(fit_kwargs)
    if variant.method == "nuts":
        kw.setdefault("cores", 1)  # parallelism is across variants; nested process pools break in workers
        kw.setdefault("frequentist", False)
        _use_nuts_cache(kw, {"frequentist", "study_draws", "strict", "progressbar"})
    mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
    res = model.fit(variant.method, seed=seed, **mcid, **kw)
    if variant.method == "exact":
        return _ExactFit(res.exact, model.studies, result=res)
    return res


def binomial_analysis(data: pd.DataFrame, variant: Variant, *, seed: int, measure: str, keep_result: bool = False,
                      thresholds: Thresholds | None = None, study: str = dims.STUDY_COL, by=(), **fit_kwargs):
    """Analysis factory for the arm-level binomial-logit likelihood.

    Uses :class:`~ketabayes.model.binomial.BinomialModel` on all the variant's
    rows (columns ``ai, n1i, ci, n2i``), double-zero trials included: this
    likelihood needs no continuity correction. ``by`` adds drug / condition
    groupings. ``method="exact"`` (the grid's default) uses the exact binomial engine
    (no grouping or one grouping; more groupings give a failed variant that says to use
    NUTS); ``method="nuts"`` samples, compiling each model structure once per process
    (:class:`~ketabayes.inference.compiled_cache.CompiledModelCache`), as the normal and
    hierarchical NUTS variants do.
    """
    from ketabayes.model.binomial import BinomialModel

    model = BinomialModel(data, by=by, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau, study=study)
    mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
    if variant.method == "exact":
        if not keep_result:   # marginals straight from the engine: no draws, tree or log-likelihood
            return _EngineTargets(model._exact(), model)
        return model.fit("exact", seed=seed, **mcid)
    kw = dict(fit_kwargs)
    kw.setdefault("cores", 1)  # parallelism is across variants
    _use_nuts_cache(kw, {"strict", "progressbar"})
    return model.fit("nuts", seed=seed, **mcid, **kw)


_NUTS_CACHE = None


def _nuts_cache():
    """One :class:`~ketabayes.inference.compiled_cache.CompiledModelCache` per process for NUTS variants
    (random / fixed normal, hierarchical, binomial): one compilation per model structure and process."""
    global _NUTS_CACHE
    if _NUTS_CACHE is None:
        from ketabayes.inference.compiled_cache import CompiledModelCache

        _NUTS_CACHE = CompiledModelCache(maxsize=16)
    return _NUTS_CACHE


def _use_nuts_cache(kw: dict, fit_options: set) -> None:
    """Sample a NUTS variant through the process's cache of compiled models, unless the grid passes
    ``pymc.sample`` arguments that nutpie does not take (then every variant compiles its own model)."""
    if not (set(kw) - {"cores", "draws", "tune", "chains", "nuts", "cache", "parameterization"} - fit_options):
        kw.setdefault("cache", _nuts_cache())


def hierarchical_analysis(data: pd.DataFrame, variant: Variant, *, seed: int, measure: str,
                          keep_result: bool = False, thresholds: Thresholds | None = None,
                          study: str = dims.STUDY_COL, by=(), **fit_kwargs):
    """Analysis factory for the hierarchical (drug x condition) normal model.

    The groupings come from ``fit_kwargs={"by": [...]}`` of the grid; the
    variant's tau prior is used for every scale. Non-estimable rows are left
    out by :class:`~ketabayes.model.hierarchical.HierarchicalModel`, with a
    :class:`~ketabayes.errors.DataWarning` naming them.
    """
    from ketabayes.model.hierarchical import HierarchicalModel

    if not by:
        raise KetabayesError("model='hierarchical' needs the grouping columns: fit_kwargs={'by': ['drug', ...]}")
    model = HierarchicalModel(data, by=by, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau,
                              measure=measure, study=study)
    kw = dict(fit_kwargs)
    if variant.method == "nuts":
        kw.setdefault("cores", 1)
        _use_nuts_cache(kw, {"strict", "progressbar"})
    mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
    return model.fit(variant.method, seed=seed, **mcid, **kw)


class _SeparateFits:
    """One random-effects fit per level of a grouping column (no pooling across levels)."""

    def __init__(self, column: str, fits: dict):
        self.column = column
        self.fits = fits

    def marginal(self, target: str) -> Marginal:
        kind, _, rest = target.partition("|") if target.startswith("predictive|") else ("", "", target)
        col, eq, level = rest.partition("=")
        if eq and col == self.column and level in self.fits:
            fit = self.fits[level]
            return fit.marginal("predictive" if kind else "mean")
        raise KetabayesError(
            f"target {target!r} is not defined by separate analyses: use '{self.column}=<level>' or "
            f"'predictive|{self.column}=<level>' with levels {sorted(self.fits)}")


def separate_analysis(data: pd.DataFrame, variant: Variant, *, seed: int, measure: str, keep_result: bool = False,
                      thresholds: Thresholds | None = None, study: str = dims.STUDY_COL, by=(), **fit_kwargs):
    """Analysis factory: a separate random-effects analysis for each level of ``by[0]``.

    The no-pooling counterpart of ``model="hierarchical"``: the target
    ``"drug=ketamine"`` is the average effect of a random-effects analysis of the
    ketamine trials alone, ``"predictive|drug=ketamine"`` a new ketamine trial.
    Compare it with the hierarchical model's target of the same name to see
    what partial pooling does. Exact engine only (one fit per level).
    """
    if not by:
        raise KetabayesError("model='separate' needs the grouping column: fit_kwargs={'by': ['drug']}")
    column = list(by)[0] if not isinstance(by, str) else by
    if column not in data.columns:
        raise KetabayesError(f"model='separate': grouping column {column!r} is not in the data")
    fits = {}
    for level, rows in data.groupby(column, sort=True):
        fits[str(level)] = normal_analysis(rows, variant, seed=seed, measure=measure, keep_result=keep_result,
                                           thresholds=thresholds, study=study, **fit_kwargs)
    return _SeparateFits(column, fits)


def bma_analysis(data: pd.DataFrame, variant: Variant, **kwargs):
    """Analysis factory of ``model="bma"``: :func:`ketabayes.bma` (see
    :func:`ketabayes.sensitivity.structured.bma_analysis`)."""
    from ketabayes.sensitivity.structured import bma_analysis as fit_bma

    return fit_bma(data, variant, **kwargs)


_ANALYSES: dict[tuple[str, str], Callable] = {
    ("random", "normal"): normal_analysis,
    ("fixed", "normal"): normal_analysis,
    ("random", "binomial"): binomial_analysis,
    ("hierarchical", "normal"): hierarchical_analysis,
    ("separate", "normal"): separate_analysis,
    ("bma", "normal"): bma_analysis,
}


def register_analysis(model: str, likelihood: str = "normal", factory: Callable | None = None, *,
                      replace: bool = False):
    """Register an analysis factory for a ``(model, likelihood)`` pair of factor levels.

    This is how models built elsewhere plug into the grid, e.g. a binomial
    likelihood or a hierarchical model::

        def binomial_analysis(data, variant, *, seed, measure, keep_result, thresholds, study, **kw):
            return BinomialModel(data, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau).fit(seed=seed, **kw)

        register_analysis("random", "binomial", binomial_analysis)

    The factory receives the variant's rows of the data (all original columns,
    e.g. ``ai, n1i, ci, n2i``) and the :class:`Variant`, and returns an object
    with ``marginal(target)``; see :func:`normal_analysis`. For process-based
    executors (Dask) the factory must be importable (a module-level function).
    Can be used as a decorator when ``factory`` is omitted.
    """
    def _do(f):
        key = (str(model), str(likelihood))
        if key in _ANALYSES and not replace and _ANALYSES[key] is not f:
            raise KetabayesError(f"an analysis is already registered for model={model!r}, likelihood="
                                 f"{likelihood!r}; pass replace=True to override it")
        _ANALYSES[key] = f
        return f

    return _do if factory is None else _do(factory)


def available_analyses() -> list[tuple[str, str]]:
    """Registered ``(model, likelihood)`` pairs."""
    return sorted(_ANALYSES)


def _resolve(model, likelihood: str) -> Callable:
    if callable(model):
        return model
    key = (str(model), str(likelihood))
    if key in _ANALYSES:
        return _ANALYSES[key]
    listing = ", ".join(f"model={m!r}/likelihood={lk!r}" for m, lk in available_analyses())
    hint = ""
    if likelihood == "binomial":
        hint = (" The binomial (arm-level) likelihood is provided by a separate model class; once it is "
                "installed, register it with ketabayes.sensitivity.register_analysis(model, 'binomial', "
                "factory).")
    elif model in ("hierarchical", "separate"):
        hint = (f" The {model!r} analysis comes from ketabayes.model.hierarchical; register it with "
                f"register_analysis({model!r}, {likelihood!r}, factory).")
    raise AnalysisNotAvailableError(f"no analysis is available for model={model!r} with likelihood="
                                    f"{likelihood!r}.{hint} Available: {listing}")


