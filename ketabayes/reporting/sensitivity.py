"""Sensitivity analyses: one analysis re-run over a grid of variants, as a tidy table.

A *variant* is one combination of factor levels:

=============  ==================================================================
factor         levels
=============  ==================================================================
``prior_mu``   priors of the average effect (``"panel"`` = sceptical / neutral /
               enthusiastic, :func:`~ketabayes.model.priors.prior_panel`)
``prior_tau``  priors of the between-study SD (e.g. half-normal, Turner, Rhodes)
``model``      ``"random"`` / ``"fixed"`` built in; ``"hierarchical"`` and others
               through :func:`register_analysis` (an *analysis factory*)
``likelihood`` ``"normal"`` built in; ``"binomial"`` through :func:`register_analysis`
``subset``     ``"all"`` plus named subsets of studies (boolean masks, query strings
               or callables) and, with ``leave_one_out=True``, every study left out
``method``     ``"exact"`` (integration over tau, milliseconds) or ``"nuts"``
``mcid``       decision thresholds -- never a refit: the probabilities of every
               MCID are computed from the same posterior
=============  ==================================================================

The grid is the full factorial design (``design="factorial"``) or the
one-factor-at-a-time design around the first level of every factor
(``design="one-at-a-time"``, the design of a tornado plot). Every row of the
result is one variant x MCID x target with the posterior summary, the decision
probabilities and a *verdict* (:class:`VerdictRule`).

Cheap where possible
--------------------
* exact-engine variants call :class:`~ketabayes.inference.exact.ExactNormalNormal`
  directly (no draws, no DataTree, no frequentist fit) unless ``keep_results=True``;
* MCID variants reuse one posterior;
* NUTS variants get power-scaling prior and likelihood sensitivity
  (Kallioinen et al. 2024) by Pareto-smoothed importance weights from ArviZ --
  rows with ``power_scaling = "prior^0.8"`` etc., without refitting, with the
  importance-sampling ESS (``is_ess``) and Pareto k-hat (``pareto_k``; above
  0.7 the row's ``warning`` says the estimate is unreliable) -- and the
  local sensitivity diagnostic of :func:`arviz.psense` in columns
  ``psense_prior``/``psense_likelihood``.

Scale-out
---------
``executor=`` takes any :class:`concurrent.futures.Executor`. For large grids
use a Dask cluster::

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=8, threads_per_worker=1) as cluster, Client(cluster) as client:
        res = sensitivity_grid(data, ..., executor=client.get_executor())

Each variant's seed is derived from the base seed and the variant's name
(:func:`variant_seed`), so results do not depend on execution order or executor.
A failing variant is recorded with its error in the ``error`` column; the
others are unaffected. With ``checkpoint="grid.jsonl"`` (JSON lines, or
``.csv``) every finished variant is appended as it completes and a rerun skips
the variants already done; the checkpoint is tied to :meth:`Sensitivity.config_hash`
(data, prior definitions, subset rows, factor levels, design, targets, MCIDs,
...), so a changed configuration is refused rather than silently reused.

Reproducibility: the table has the priors themselves next to their labels
(``prior_mu_spec``, ``prior_tau_spec``) and carries package versions,
``data_hash``, the base seed, ``config_hash`` and the grid in ``table.attrs``;
:meth:`SensitivityResult.to_csv` writes those next to the CSV
(``<stem>.settings.json``).

References
----------
Kallioinen N, Paananen T, Bürkner PC, Vehtari A (2024). Detecting and diagnosing
prior and likelihood sensitivity with power-scaling. Stat Comput 34:57.
doi:10.1007/s11222-023-10366-5
Spiegelhalter DJ, Freedman LS, Parmar MKB (1994). Bayesian approaches to
randomized trials. J R Stat Soc A 157(3):357-416. doi:10.2307/2983527
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import json
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.errors import DataWarning, KetabayesError
from ketabayes.inference.bayes_factor import decision_probabilities_mixed
from ketabayes.model.priors import Flat, Prior, parse_prior, prior_panel
from ketabayes.result.decision import VERDICTS, Thresholds, VerdictRule, verdict
from ketabayes.result.marginals import Marginal, WeightedDrawsMarginal

__all__ = [
    "Sensitivity",
    "SensitivityResult",
    "Variant",
    "VerdictRule",
    "AnalysisNotAvailableError",
    "sensitivity_grid",
    "register_analysis",
    "available_analyses",
    "variant_seed",
    "verdict",
    "FACTORS",
    "VERDICTS",
    "TABLE_COLUMNS",
]

#: factor columns of the table, in order
FACTORS = ("prior_mu", "prior_tau", "model", "likelihood", "subset", "method", "mcid", "power_scaling")

#: columns of :attr:`SensitivityResult.table`
TABLE_COLUMNS = ["variant", "fit_id", *FACTORS, "prior_mu_spec", "prior_tau_spec", "k", "target", "mean", "sd",
                 "q025", "q50", "q975", "p_benefit", "p_trivial", "p_harm", "p_any_benefit", "verdict", "exact",
                 "seed", "is_ess", "pareto_k", "psense_prior", "psense_likelihood", "bf10", "post_prob_h1", "p_benefit_avg",
                 "p_trivial_avg", "p_harm_avg", "p_any_benefit_avg", "verdict_avg", "seconds", "warning", "error"]

_PROB = ("p_benefit", "p_trivial", "p_harm", "p_any_benefit")

#: Pareto k-hat above which power-scaled (importance-weighted) estimates are unreliable (Vehtari et al. 2024)
PARETO_K_THRESHOLD = 0.7


class AnalysisNotAvailableError(KetabayesError, NotImplementedError):
    """No analysis factory is registered for a (model, likelihood) combination."""


# ---------------------------------------------------------------------------
# verdicts
# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------
def variant_seed(base_seed: int, name: str) -> int:
    """Deterministic seed of a variant from the base seed and the variant's name.

    ``numpy.random.SeedSequence(base_seed, spawn_key=<128 bits of sha256(name)>)``: independent
    of the order in which variants are run and of the executor.

    Examples
    --------
    >>> from ketabayes.reporting.sensitivity import variant_seed
    >>> variant_seed(1, "model=random") == variant_seed(1, "model=random") != variant_seed(2, "model=random")
    True
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return int(np.random.SeedSequence(int(base_seed), spawn_key=key).generate_state(1, dtype=np.uint32)[0])


# ---------------------------------------------------------------------------
# analysis factories
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One variant of the analysis (all factor levels except the MCID).

    Attributes
    ----------
    name : str
        ``"factor=level | ..."``: unique within a grid, the key of checkpoints and seeds.
    levels : dict
        Factor -> level label.
    prior_mu, prior_tau : Prior
    model, likelihood, subset, method : str
    """

    name: str
    levels: dict = field(hash=False, compare=False)
    prior_mu: Prior | None = None
    prior_tau: Prior | None = None
    model: str = "random"
    likelihood: str = "normal"
    subset: str = "all"
    method: str = "exact"

    @property
    def fixed(self) -> bool:
        return self.model == "fixed"


def _summary_row(m: Marginal, th_list, rule, prob=0.95) -> tuple[dict, list[dict]]:
    a = (1.0 - prob) / 2.0
    qs = np.array([a, 0.5, 1.0 - a])
    q = np.asarray(m.ppf(qs), dtype=float)
    base = {"mean": float(m.mean), "sd": float(m.sd), "q025": float(q[0]), "q50": float(q[1]),
            "q975": float(q[2]), "exact": bool(m.exact)}
    per_mcid = []
    for th in th_list:
        if th is None:
            d = dict.fromkeys(_PROB, math.nan)
        else:
            d = decision_probabilities_mixed(m, th)
        d["verdict"] = rule(d["p_benefit"], d["p_trivial"], d["p_harm"])
        per_mcid.append(d)
    return base, per_mcid


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
    here, with a :class:`~ketabayes.errors.DataWarning` naming them.
    """
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
    mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
    res = model.fit(variant.method, seed=seed, **mcid, **kw)
    if variant.method == "exact":
        return _ExactFit(res.exact, model.studies, result=res)
    return res


def binomial_analysis(data: pd.DataFrame, variant: Variant, *, seed: int, measure: str, keep_result: bool = False,
                      thresholds: Thresholds | None = None, study: str = dims.STUDY_COL, by=(), **fit_kwargs):
    """Analysis factory for the arm-level binomial-logit likelihood (NUTS only).

    Uses :class:`~ketabayes.model.binomial.BinomialModel` on all the variant's
    rows (columns ``ai, n1i, ci, n2i``), double-zero trials included: this
    likelihood needs no continuity correction. ``by`` adds drug / condition
    groupings.
    """
    from ketabayes.model.binomial import BinomialModel

    if variant.method != "nuts":
        raise KetabayesError("the binomial likelihood has no exact engine: use method='nuts' for binomial variants")
    model = BinomialModel(data, by=by, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau, study=study)
    kw = dict(fit_kwargs)
    kw.setdefault("cores", 1)  # parallelism is across variants
    mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
    return model.fit("nuts", seed=seed, **mcid, **kw)


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


_ANALYSES: dict[tuple[str, str], Callable] = {
    ("random", "normal"): normal_analysis,
    ("fixed", "normal"): normal_analysis,
    ("random", "binomial"): binomial_analysis,
    ("hierarchical", "normal"): hierarchical_analysis,
    ("separate", "normal"): separate_analysis,
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
                "installed, register it with ketabayes.reporting.sensitivity.register_analysis(model, 'binomial', "
                "factory).")
    elif model in ("hierarchical", "separate"):
        hint = (f" The {model!r} analysis comes from ketabayes.model.hierarchical; register it with "
                f"register_analysis({model!r}, {likelihood!r}, factory).")
    raise AnalysisNotAvailableError(f"no analysis is available for model={model!r} with likelihood="
                                    f"{likelihood!r}.{hint} Available: {listing}")


# ---------------------------------------------------------------------------
# power-scaling (NUTS)
# ---------------------------------------------------------------------------
def _target_var(target: str, studies):
    """Posterior variable and coordinates of a target (``(None, None)`` if unknown)."""
    var, study = _parse_target(target, studies)
    return var, ({dims.STUDY: study} if var == dims.THETA else None)


def _power_weights(lp, alphas, sample_dims) -> dict[float, tuple[np.ndarray, float, float]]:
    """Power-scaling importance weights of one component's log density ``lp`` (a DataArray over the draws).

    For each ``alpha``: the Pareto-smoothed normalised weights (ArviZ's
    ``power_scale_lw``), their effective sample size ``1 / sum(w**2)`` and the
    Pareto k-hat of the raw weights ``exp((alpha - 1) * lp)`` (ArviZ's
    ``pareto_khat``, right tail; above :data:`PARETO_K_THRESHOLD` the estimates
    are unreliable).
    """
    out = {}
    for a in alphas:
        lw = lp.azstats.power_scale_lw(alpha=float(a), dim=sample_dims).values.ravel()
        w = np.exp(lw - lw.max())
        w /= w.sum()
        raw = (float(a) - 1.0) * lp
        if float(a) == 1.0 or float(np.ptp(raw.values)) == 0.0:
            khat = math.nan  # constant weights: nothing to diagnose
        else:
            # k-hat of the right tail of the raw weights exp((alpha - 1) lp), scaled to max 1. (Not
            # pareto_khat(log_weights=True): arviz-stats 1.3 fits that to the log weights themselves.)
            khat = float((raw - raw.max()).pipe(np.exp).azstats.pareto_khat(sample_dims=sample_dims,
                                                                             tail="right").values)
        out[float(a)] = (w, float(1.0 / np.sum(w * w)), khat)
    return out


def _power_scaling(fit, variant: Variant, alphas, targets):
    """Power-scaled marginals (PSIS weights from ArviZ) and psense values for a NUTS fit."""
    import arviz as az
    import pymc as pm

    from ketabayes.inference.nuts import build_normal_normal

    tree = fit.tree
    if "log_prior" not in tree.children or "log_likelihood" not in tree.children:
        model = getattr(fit, "model", None)
        if model is None:
            y = tree["observed_data"]["y"].values
            v = tree["constant_data"]["vi"].values
            model = build_normal_normal(y, v, fit.studies, variant.prior_mu, variant.prior_tau, fixed=variant.fixed)
        # the standard-normal auxiliaries z, z_new only generate theta from its exact conditional: they
        # are not part of the prior being assessed
        prior_vars = [rv.name for rv in model.free_RVs if rv.name not in ("z", "z_new")]
        post_vars = [v for v in tree["posterior"].data_vars if v in {rv.name for rv in model.free_RVs}
                     or v in {d.name for d in model.deterministics}]
        base = tree.copy()
        base["posterior"] = tree["posterior"].to_dataset()[post_vars]
        pm.stats.compute_log_likelihood(base, model=model, progressbar=False, extend_inferencedata=True)
        pm.stats.compute_log_prior(base, var_names=prior_vars, model=model, progressbar=False,
                                   extend_inferencedata=True)
        tree["log_likelihood"] = base["log_likelihood"]
        tree["log_prior"] = base["log_prior"]
    out = {}
    sample_dims = [dims.CHAIN, dims.DRAW]
    for component, group in (("prior", "log_prior"), ("likelihood", "log_likelihood")):
        lp = tree[group].to_dataset().to_stacked_array("_latent", sample_dims=sample_dims).sum("_latent")
        for a, val in _power_weights(lp, alphas, sample_dims).items():
            out[(component, a)] = val
    sens = {}
    for t in targets:
        var, coords = _target_var(t, fit.studies)
        if var is None:
            continue
        vals = {}
        for component in ("prior", "likelihood"):
            ps = az.psense(tree, var_names=[var], group=component, coords=coords)
            vals[component] = float(np.asarray(ps[var].values).ravel()[0])
        sens[t] = vals
    return out, sens, tree


def _target_draws(tree, target, studies):
    var, coords = _target_var(target, studies)
    da = tree["posterior"][var]
    if coords:
        da = da.sel(coords)
    return da.values.ravel()


# ---------------------------------------------------------------------------
# running one batch (module level so that process executors can pickle it)
# ---------------------------------------------------------------------------
def _run_batch(batch: list[dict], common: dict) -> list[dict]:
    """Fit a batch of variants; never raises (errors are recorded per variant)."""
    return [_run_one(task, common) for task in batch]


def _run_one(task: dict, common: dict) -> dict:
    variant: Variant = task["variant"]
    data: pd.DataFrame = task["data"]
    t0 = time.perf_counter()
    rows, result = [], None
    targets = common["targets"]
    th_list = common["thresholds"]
    rule = common["rule"]
    base = _base_row(variant, int(task["seed"]), len(data))
    caught: list = []
    try:
        factory = task["factory"]
        # warnings of one variant (e.g. NUTS diagnostics) are recorded in its rows, not raised or
        # printed once per variant; catch_warnings is process-global, so with a thread pool a warning
        # may be attributed to a concurrent variant (process executors are exact)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = factory(data, variant, seed=task["seed"], measure=common["measure"],
                          keep_result=common["keep_results"], thresholds=th_list[0], study=common["study"],
                          **common["fit_kwargs"])
        base["k"] = _n_studies(fit, data)
        result = getattr(fit, "result", fit) if common["keep_results"] else None
        bf = None
        if common["bayes_factor"] and variant.method == "exact" and variant.likelihood == "normal" \
                and variant.model in ("random", "fixed"):
            from ketabayes.inference.bayes_factor import bayes_factor

            with warnings.catch_warnings():  # the fit above has already recorded the left-out studies
                warnings.simplefilter("ignore", DataWarning)
                used = _estimable_rows(data, common["study"])
            bf = bayes_factor(used["yi"].to_numpy(float), used["vi"].to_numpy(float), variant.prior_mu,
                              None if variant.fixed else variant.prior_tau, fixed=variant.fixed,
                              prior_prob_h1=common["prior_prob_h1"])
        ps = None
        if common["power_scaling"] and hasattr(fit, "tree") and variant.method != "exact":
            ps, sens, _ = _power_scaling(fit, variant, common["power_scaling"], targets)
        for t in targets:
            try:
                m = fit.marginal(t)
                summ, per = _summary_row(m, th_list, rule)
            except Exception as e:  # one bad target (e.g. a study not in this subset) spares the others
                rows.extend({**base, "target": t, "mcid": lab, "error": _err(e)} for lab in common["mcid_labels"])
                continue
            extra = {}
            if ps is not None and t in sens:
                extra = {"psense_prior": sens[t]["prior"], "psense_likelihood": sens[t]["likelihood"]}
            for lab, th, d in zip(common["mcid_labels"], th_list, per):
                row = {**base, "target": t, "mcid": lab, **summ, **d, **extra, "error": ""}
                if bf is not None and th is not None and t in ("mean", "predictive"):
                    avg = bf.decision_probabilities(th, t)
                    row.update(bf10=bf.bf10, post_prob_h1=bf.post_prob_h1,
                               **{f"{k}_avg": v for k, v in avg.items()},
                               verdict_avg=rule(avg["p_benefit"], avg["p_trivial"], avg["p_harm"]))
                elif bf is not None:
                    row.update(bf10=bf.bf10, post_prob_h1=bf.post_prob_h1)
                rows.append(row)
            if ps is not None:
                var, _ = _target_var(t, fit.studies)
                if var is None:
                    continue
                draws = _target_draws(fit.tree, t, fit.studies)
                for (component, a), (w, ess, khat) in ps.items():
                    wm = WeightedDrawsMarginal(draws, w)
                    s2, per2 = _summary_row(wm, th_list, rule)
                    flag = ""
                    if khat > PARETO_K_THRESHOLD:
                        flag = (f"Pareto k-hat {khat:.2f} > {PARETO_K_THRESHOLD} for {component}^{a:g}: the "
                                "importance-weighted estimates are unreliable")
                    for lab, d in zip(common["mcid_labels"], per2):
                        rows.append({**base, "power_scaling": f"{component}^{a:g}", "target": t, "mcid": lab,
                                     **s2, **d, "is_ess": ess, "pareto_k": khat, "_flag": flag, "error": ""})
    except Exception as e:
        rows = [{**base, "target": t, "mcid": lab, "error": _err(e)}
                for t in targets for lab in common["mcid_labels"]]
    secs = time.perf_counter() - t0
    warn = "; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    for r in rows:
        r["seconds"] = secs
        flag = r.pop("_flag", "")
        r["warning"] = "; ".join(x for x in (warn, flag) if x)
    return {"fit_id": variant.name, "rows": rows, "result": result,
            "ok": all(not r.get("error") for r in rows)}


def _base_row(variant: Variant, seed: int, k: int) -> dict:
    """Columns shared by every row of a variant: factor levels, the priors themselves, ``k``, seed."""
    return {"variant": variant.name, "fit_id": variant.name, **{f: variant.levels.get(f, "") for f in FACTORS},
            "prior_mu_spec": "-" if variant.prior_mu is None else str(variant.prior_mu),
            "prior_tau_spec": "-" if variant.prior_tau is None else str(variant.prior_tau),
            "k": int(k), "seed": int(seed)}


def _err(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}"
    if not isinstance(e, KetabayesError):
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            msg += f" [at {Path(tb[-1].filename).name}:{tb[-1].lineno}]"
    return msg


# ---------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------
def _label(value) -> str:
    if isinstance(value, Prior):
        lab = getattr(value, "label", "")
        return lab or str(value)
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return str(value)


def _levels(value, default) -> dict[str, Any]:
    """Normalise a factor specification to an ordered ``{label: value}``."""
    if value is None:
        value = default
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, (str, Prior)) or callable(value) or not isinstance(value, Sequence):
        value = [value]
    out = {}
    for v in value:
        lab = _label(v)
        if lab in out:
            raise KetabayesError(f"two levels are both labelled {lab!r}; give them as a dict {{label: value}}")
        out[lab] = v
    return out


class Sensitivity:
    """A grid of variants of one meta-analysis (configured here, fitted by :meth:`run`).

    Building the grid does no fitting: inspect :attr:`variants` / :meth:`describe`
    first, then call :meth:`run`.

    Parameters
    ----------
    data : pandas.DataFrame
        Effect sizes (``yi``, ``vi`` and a study column, e.g. from
        :func:`ketabayes.effect_sizes`), with any further columns the subsets
        refer to (risk of bias, design, ...). Every row is passed to the
        analyses; rows with ``estimable == False`` (double-zero trials on a log
        scale) are left out by the normal-likelihood analyses, each variant
        recording a :class:`~ketabayes.errors.DataWarning` naming them in its
        ``warning`` column, and kept by the binomial likelihood.
    prior_mu : prior, str, list or dict, optional
        Level(s) of the prior of ``mu``. ``"panel"`` expands to the sceptical /
        neutral / enthusiastic priors of :func:`~ketabayes.model.priors.prior_panel`
        built from the first MCID. A dict gives labels. Default: flat.
    prior_tau : prior, str, list or dict, optional
        Level(s) of the prior of ``tau``. Default: the measure's default
        (:func:`~ketabayes.model.priors.default_tau_prior`).
    mcid : float or list of float, optional
        MCID(s) on the reporting scale (ratios for OR/RR). Decision probabilities
        are computed for each from the same posterior (no refit).
    benefit : {"lower", "higher"}
    harm : float, optional
        Harm threshold if different from the MCID.
    model : str, callable, list or dict
        ``"random"`` and/or ``"fixed"``, any name registered with
        :func:`register_analysis` (e.g. ``"hierarchical"``), or analysis factories.
    likelihood : str or list
        ``"normal"`` (built in) and/or registered likelihoods (``"binomial"``).
    subsets : dict, optional
        ``{name: rows to keep}``: a boolean mask (aligned with ``data``), a
        :meth:`pandas.DataFrame.query` string, or a callable ``df -> mask``.
        The level ``"all"`` (every study) always comes first.
    leave_one_out : bool
        Add the subsets ``"without <study>"`` for every study.
    method : {"exact", "nuts"} or list
    targets : sequence of str
        ``"mean"``, ``"predictive"`` and/or study labels.
    design : {"factorial", "one-at-a-time"}
        Full crossing of all factors, or variation of one factor at a time
        around the first level of every factor.
    bayes_factor : bool
        Add ``bf10``, ``post_prob_h1`` and model-averaged probabilities
        (``*_avg``) for exact normal variants (needs proper priors for ``mu``;
        :mod:`ketabayes.inference.bayes_factor`).
    prior_prob_h1 : float
        Prior probability of an effect for the model average.
    power_scaling : sequence of float, optional
        Power-scaling exponents (e.g. ``(0.8, 1.25)``) for the prior and the
        likelihood of NUTS variants, applied by importance weighting.
    rule : VerdictRule, optional
        Verdict cut-offs (default 0.80 for each category).
    measure : str, optional
    study : str
        Study label column.
    fit_kwargs : dict, optional
        Passed to the analysis factory and on to ``fit`` (e.g. ``draws``, ``chains``,
        ``tune``, ``nuts={...}``).
    """

    def __init__(self, data: pd.DataFrame, *, prior_mu=None, prior_tau=None, mcid=None, benefit: str = "lower",
                 harm: float | None = None, model="random", likelihood="normal", subsets: Mapping | None = None,
                 leave_one_out: bool = False, method="exact", targets=("mean", "predictive"),
                 design: str = "factorial", bayes_factor: bool = False, prior_prob_h1: float = 0.5,
                 power_scaling: Sequence[float] | None = None, rule: VerdictRule | None = None,
                 measure: str | None = None, study: str = dims.STUDY_COL, fit_kwargs: dict | None = None):
        from ketabayes.model.random_effects import RandomEffectsModel

        if not isinstance(data, pd.DataFrame):
            raise KetabayesError(f"data must be a pandas DataFrame of effect sizes, got {type(data).__name__}")
        ref = RandomEffectsModel(data, measure=measure, study=study)  # validates; warns about non-estimable rows
        self.measure = ref.measure
        self.study = study
        df = data.reset_index(drop=True).copy()
        if study not in df.columns:
            df[study] = [f"Study {i + 1}" for i in range(len(df))]
        self.data = df
        self._estimable = (df["estimable"].astype(bool).to_numpy() if "estimable" in df.columns
                           else np.ones(len(df), dtype=bool))
        if "vi" not in df.columns and "sei" in df.columns:
            df["vi"] = pd.to_numeric(df["sei"], errors="coerce") ** 2
        self.benefit = benefit
        self.harm = harm
        self.rule = rule or VerdictRule()
        self.targets = tuple(targets)
        if design not in ("factorial", "one-at-a-time"):
            raise KetabayesError(f"design must be 'factorial' or 'one-at-a-time', got {design!r}")
        self.design = design
        self.bayes_factor = bool(bayes_factor)
        self.prior_prob_h1 = float(prior_prob_h1)
        self.power_scaling = tuple(float(a) for a in power_scaling) if power_scaling else ()
        self.fit_kwargs = dict(fit_kwargs or {})

        # MCIDs (no refit)
        mcids = [] if mcid is None else (list(mcid) if isinstance(mcid, Sequence) else [mcid])
        self.thresholds = [Thresholds.for_measure(m, self.measure, benefit, harm) for m in mcids] or [None]
        self.mcid_labels = [f"{m:g}" for m in mcids] or [""]

        # prior levels
        if isinstance(prior_mu, str) and prior_mu.strip().lower() == "panel":
            if self.thresholds[0] is None:
                raise KetabayesError("prior_mu='panel' needs an MCID (mcid=...) to define the priors")
            prior_mu = dict(prior_panel(self.thresholds[0].delta_benefit, benefit).priors)
        self._mu_levels = {k: parse_prior(v) for k, v in _levels(prior_mu, Flat()).items()}
        self._tau_levels = {k: parse_prior(v) for k, v in _levels(prior_tau, ref.prior_tau).items()}
        for lab, p in self._tau_levels.items():
            if p.support != "positive":
                raise KetabayesError(f"prior_tau level {lab!r} must be a prior on tau > 0, got {p}")
        if self.bayes_factor:
            for lab, p in self._mu_levels.items():
                if not p.proper:
                    from ketabayes.errors import PriorError

                    raise PriorError(f"bayes_factor=True needs proper priors for mu; level {lab!r} is {p}: "
                                     "give normal priors, e.g. prior_mu='panel'")
        self._model_levels = _levels(model, "random")
        self._lik_levels = {k: str(v) for k, v in _levels(likelihood, "normal").items()}
        self._method_levels = {k: str(v) for k, v in _levels(method, "exact").items()}
        for m in self._method_levels.values():
            if m not in ("exact", "nuts"):
                raise KetabayesError(f"method must be 'exact' or 'nuts', got {m!r}")
        # analyses must exist before anything runs
        self._factories = {}
        for mlab, mval in self._model_levels.items():
            for llab, lval in self._lik_levels.items():
                self._factories[(mlab, llab)] = _resolve(mval, lval)

        # subsets: masks over ALL rows (the binomial likelihood keeps double-zero trials; the
        # normal-likelihood analyses drop non-estimable rows themselves, with a warning)
        self._subsets = {"all": np.ones(len(df), dtype=bool)}
        for name, spec in (subsets or {}).items():
            if name in self._subsets:
                raise KetabayesError(f"subset name {name!r} is used twice")
            self._subsets[str(name)] = self._mask(name, spec)
        if leave_one_out:
            labels = df[study].astype(str).tolist()
            for i, s in enumerate(labels):
                keep = np.ones(len(df), dtype=bool)
                keep[i] = False
                self._subsets[f"without {s}"] = keep
        for name, keep in self._subsets.items():
            if keep.sum() == 0:
                raise KetabayesError(f"subset {name!r} keeps no study")

        self.variants = self._build_variants()

    # ------------------------------------------------------------------
    def _mask(self, name, spec) -> np.ndarray:
        df = self.data
        try:
            if isinstance(spec, str):
                keep = df.index.isin(df.query(spec).index)
            elif callable(spec):
                keep = np.asarray(spec(df), dtype=bool)
            else:
                keep = np.asarray(spec, dtype=bool)
        except Exception as e:
            raise KetabayesError(f"subset {name!r}: could not select rows with {spec!r}: {e}") from e
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(df),):
            raise KetabayesError(f"subset {name!r}: the mask has {keep.size} entries but the data has {len(df)} rows")
        return keep

    def _factor_levels(self) -> dict[str, list[str]]:
        return {"prior_mu": list(self._mu_levels), "prior_tau": list(self._tau_levels),
                "model": list(self._model_levels), "likelihood": list(self._lik_levels),
                "subset": list(self._subsets), "method": list(self._method_levels)}

    def _build_variants(self) -> list[Variant]:
        levels = self._factor_levels()
        names = list(levels)
        if self.design == "factorial":
            combos = list(itertools.product(*(levels[n] for n in names)))
        else:
            base = tuple(levels[n][0] for n in names)
            combos = [base]
            for j, n in enumerate(names):
                for lev in levels[n][1:]:
                    c = list(base)
                    c[j] = lev
                    combos.append(tuple(c))
        out = []
        for c in combos:
            lv = dict(zip(names, c))
            if self._model_levels[lv["model"]] == "fixed" or lv["model"] == "fixed":
                if len(self._tau_levels) > 1 and lv["prior_tau"] != levels["prior_tau"][0]:
                    continue  # tau priors do not enter a fixed-effect model: one variant suffices
                lv["prior_tau"] = "-"
            shown = [f"{n}={lv[n]}" for n in names if len(levels[n]) > 1 or n in ("prior_mu", "prior_tau")]
            name = " | ".join(shown)
            out.append(Variant(name=name, levels=lv, prior_mu=self._mu_levels[lv["prior_mu"]],
                               prior_tau=None if lv["prior_tau"] == "-" else self._tau_levels[lv["prior_tau"]],
                               model=str(self._model_levels[lv["model"]]) if not callable(
                                   self._model_levels[lv["model"]]) else lv["model"],
                               likelihood=self._lik_levels[lv["likelihood"]], subset=lv["subset"],
                               method=self._method_levels[lv["method"]]))
        return out

    @property
    def n_fits(self) -> int:
        return len(self.variants)

    def describe(self) -> str:
        """Plain-text description of the grid."""
        lv = self._factor_levels()
        lines = [f"Sensitivity grid ({self.design}): {self.n_fits} fits x {len(self.mcid_labels)} MCID(s) x "
                 f"{len(self.targets)} target(s)"]
        for k, v in lv.items():
            lines.append(f"  {k:<11} {len(v):>3} level(s): {', '.join(v[:6])}{', ...' if len(v) > 6 else ''}")
        lines.append(f"  mcid        {', '.join(self.mcid_labels) or '-'} (benefit {self.benefit})")
        lines.append(f"  verdicts    {self.rule.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def settings(self, seed: int | None = None) -> dict:
        """Everything that determines the rows, as plain (JSON-able) data.

        Prior definitions (``to_dict``) under their labels, the row mask of every
        subset, all factor levels (callable analyses by module and qualified
        name), the design, targets, MCIDs, verdict rule, measure, study column,
        ``fit_kwargs``, a digest of the whole data frame (every column, so
        grouping columns count) and ``seed``. :meth:`config_hash` hashes it.
        """
        return {
            "data": _frame_digest(self.data),
            "prior_mu": {k: _prior_dict(p) for k, p in self._mu_levels.items()},
            "prior_tau": {k: _prior_dict(p) for k, p in self._tau_levels.items()},
            "model": {k: _level_id(v) for k, v in self._model_levels.items()},
            "likelihood": dict(self._lik_levels), "method": dict(self._method_levels),
            "analyses": {f"{m}/{lk}": _level_id(f) for (m, lk), f in self._factories.items()},
            "subsets": {k: _mask_digest(m) for k, m in self._subsets.items()},
            "design": self.design, "targets": list(self.targets), "measure": self.measure, "study": self.study,
            "mcid": self.mcid_labels, "thresholds": [t.to_dict() if t else None for t in self.thresholds],
            "benefit": self.benefit, "harm": self.harm, "rule": repr(self.rule),
            "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
            "power_scaling": list(self.power_scaling), "fit_kwargs": repr(sorted(self.fit_kwargs.items())),
            "seed": None if seed is None else int(seed),
        }

    def config_hash(self, seed: int) -> str:
        """Hash of everything that determines the rows (:meth:`settings`); checkpoints are tied to it."""
        payload = json.dumps(self.settings(seed), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def data_hash(self) -> str:
        """:func:`ketabayes.result.provenance.data_hash` of ``yi``, ``vi``, the study labels and all other columns."""
        from ketabayes.result.provenance import data_hash

        d = self.data
        return data_hash(d["yi"].to_numpy(float), d["vi"].to_numpy(float), labels=d[self.study].astype(str),
                         extra=_frame_digest(d))

    def grid_description(self) -> dict:
        """The grid as data: factor levels with the priors written out, subsets as the studies they keep.

        A subset is ``{"n": rows kept, "kept": [...]}`` or, when shorter,
        ``{"n": ..., "left_out": [...]}`` (so leave-one-out grids stay small).
        """
        studies = self.data[self.study].astype(str).to_numpy()
        return {
            "design": self.design, "n_fits": self.n_fits,
            "prior_mu": {k: {"prior": str(p), **_prior_dict(p)} for k, p in self._mu_levels.items()},
            "prior_tau": {k: {"prior": str(p), **_prior_dict(p)} for k, p in self._tau_levels.items()},
            "model": {k: _level_id(v) for k, v in self._model_levels.items()},
            "likelihood": dict(self._lik_levels), "method": dict(self._method_levels),
            "subset": {k: _describe_mask(m, studies) for k, m in self._subsets.items()},
            "mcid": self.mcid_labels, "targets": list(self.targets), "rule": self.rule.describe(),
            "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
            "power_scaling": list(self.power_scaling), "fit_kwargs": repr(sorted(self.fit_kwargs.items())),
            "study": self.study, "text": self.describe(),
        }

    # ------------------------------------------------------------------
    def _subset_data(self, name: str) -> pd.DataFrame:
        cache = self.__dict__.setdefault("_subset_cache", {})
        if name not in cache:
            cache[name] = self.data.loc[self._subsets[name]].reset_index(drop=True)
        return cache[name]

    def _task(self, v: Variant, seed: int) -> dict:
        return {"variant": v, "data": self._subset_data(v.subset),
                "seed": variant_seed(seed, v.name),
                "factory": self._factories[(v.levels["model"], v.levels["likelihood"])]}

    def _common(self, keep_results: bool) -> dict:
        return {"targets": self.targets, "thresholds": self.thresholds, "mcid_labels": self.mcid_labels,
                "rule": self.rule, "measure": self.measure, "keep_results": bool(keep_results),
                "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
                "power_scaling": self.power_scaling, "fit_kwargs": self.fit_kwargs, "study": self.study}

    def run(self, *, seed: int = 0, executor: cf.Executor | None = None, batch_size: int | None = None,
            progress: bool | None = None, checkpoint: str | Path | None = None, keep_results: bool = False,
            retry_failed: bool = True) -> SensitivityResult:
        """Fit every variant and collect the table.

        Parameters
        ----------
        seed : int
            Base seed; each variant's seed is :func:`variant_seed` ``(seed, name)``.
        executor : concurrent.futures.Executor, optional
            Where to run the fits (default: serially in this process), e.g. a
            ``ProcessPoolExecutor`` or ``distributed.Client(...).get_executor()``.
        batch_size : int, optional
            Variants per submitted task (default: 1 for NUTS, enough to give
            each worker ~8 tasks for exact grids).
        progress : bool, optional
            Show a tqdm progress bar (default: only when stderr is a terminal).
        checkpoint : str or Path, optional
            ``.jsonl`` (JSON lines) or ``.csv`` file. Finished variants are appended as
            they complete; on a rerun with the same configuration they are read back and
            not refitted (failed ones are retried unless ``retry_failed=False``).
        keep_results : bool
            Keep every fitted result (a :class:`~ketabayes.result.result.MetaResult` for the
            built-in analyses) in :attr:`SensitivityResult.results`; the exact path then
            builds full results (draws, DataTree, frequentist fit), which is slower.

        Returns
        -------
        SensitivityResult
        """
        from tqdm import tqdm  # not tqdm.auto: it warns in Jupyter without ipywidgets

        cfg = self.config_hash(seed)
        done_rows: dict[str, list[dict]] = {}
        ckpt = _Checkpoint(checkpoint, cfg) if checkpoint is not None else None
        if ckpt is not None:
            for fit_id, (rows, ok) in ckpt.load().items():
                if ok or not retry_failed:
                    done_rows[fit_id] = rows
        todo = [v for v in self.variants if v.name not in done_rows]
        common = self._common(keep_results)
        results: dict[str, Any] = {}
        if progress is None:
            progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
        bar = tqdm(total=len(self.variants), initial=len(self.variants) - len(todo), disable=not progress,
                   desc="sensitivity", unit="fit")

        def handle(out: dict):
            done_rows[out["fit_id"]] = out["rows"]
            if keep_results and out["result"] is not None:
                results[out["fit_id"]] = out["result"]
            if ckpt is not None:
                ckpt.append(out["fit_id"], out["rows"], out["ok"])
            bar.update(1)

        try:
            if executor is None:
                for v in todo:
                    handle(_run_one(self._task(v, seed), common))
            else:
                if batch_size is None:
                    nuts = any(v.method == "nuts" for v in todo)
                    workers = getattr(executor, "_max_workers", None) or 2
                    batch_size = 1 if nuts else max(1, math.ceil(len(todo) / (8 * workers)))
                batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
                futures = {executor.submit(_run_batch, [self._task(v, seed) for v in b], common): b for b in batches}
                for fut in cf.as_completed(futures):
                    try:
                        outs = fut.result()
                    except Exception as e:  # the task itself died (e.g. a worker was lost)
                        outs = [_failed(self, v, seed, e) for v in futures[fut]]
                    for out in outs:
                        handle(out)
        finally:
            bar.close()
        table = self._table(done_rows)
        from ketabayes.result.provenance import package_versions

        table.attrs.update(seed=int(seed), config_hash=cfg, data_hash=self.data_hash(),
                           versions=package_versions(), grid=self.grid_description())
        return SensitivityResult(table=table, results=results, grid=self, seed=seed)

    def _table(self, done_rows) -> pd.DataFrame:
        order = {v.name: i for i, v in enumerate(self.variants)}
        rows = [r for v in self.variants for r in done_rows.get(v.name, [])]
        df = pd.DataFrame(rows)
        for c in TABLE_COLUMNS:
            if c not in df.columns:
                df[c] = np.nan if c not in ("error", "verdict", "verdict_avg", "warning") else ""
        df = df[TABLE_COLUMNS + [c for c in df.columns if c not in TABLE_COLUMNS]].copy()
        df["power_scaling"] = df["power_scaling"].replace("", "none").fillna("none")
        df["error"] = df["error"].fillna("")
        df["warning"] = df["warning"].fillna("")
        for c in ("verdict", "verdict_avg"):
            df[c] = df[c].fillna("")
        if len(self.mcid_labels) > 1:
            df["variant"] = df["fit_id"] + " | mcid=" + df["mcid"].astype(str)
        ps = df["power_scaling"] != "none"
        df.loc[ps, "variant"] = df.loc[ps, "variant"] + " | " + df.loc[ps, "power_scaling"]
        tpos = {t: i for i, t in enumerate(self.targets)}
        mpos = {m: i for i, m in enumerate(self.mcid_labels)}
        df["_o"] = df["fit_id"].map(order)
        df["_p"] = ps.astype(int)
        df["_t"] = df["target"].map(tpos)
        df["_m"] = df["mcid"].map(mpos)
        df = df.sort_values(["_o", "_m", "_p", "power_scaling", "_t"], kind="stable").drop(
            columns=["_o", "_p", "_t", "_m"]).reset_index(drop=True)
        df.attrs.update(measure=self.measure, benefit=self.benefit, harm=self.harm, rule=self.rule.describe(),
                        thresholds=[t.to_dict() if t else None for t in self.thresholds], design=self.design)
        return df


def _frame_digest(df: pd.DataFrame) -> str:
    """SHA-256 of a data frame's column names, dtypes and every value (row order included)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode("utf-8"))
    try:
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists, dicts): fall back to the text form
        h.update(df.to_csv(index=False, float_format="%.17g").encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _describe_mask(mask: np.ndarray, studies: np.ndarray) -> dict:
    m = np.asarray(mask, dtype=bool)
    if (~m).sum() < m.sum():
        return {"n": int(m.sum()), "left_out": studies[~m].tolist()}
    return {"n": int(m.sum()), "kept": studies[m].tolist()}


def _mask_digest(mask: np.ndarray) -> str:
    m = np.asarray(mask, dtype=bool)
    return f"{m.size}:{int(m.sum())}:" + hashlib.sha256(np.packbits(m).tobytes()).hexdigest()[:32]


def _prior_dict(p: Prior | None):
    return None if p is None else {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                                   for k, v in p.to_dict().items()}


def _level_id(v) -> str:
    if callable(v):
        return f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
    return str(v)


def _failed(grid: Sensitivity, v: Variant, seed: int, e: BaseException) -> dict:
    base = _base_row(v, variant_seed(seed, v.name), int(grid._subsets[v.subset].sum()))
    rows = [{**base, "target": t, "mcid": lab, "error": _err(e)} for t in grid.targets for lab in grid.mcid_labels]
    return {"fit_id": v.name, "rows": rows, "result": None, "ok": False}


class _Checkpoint:
    """Append-only record of finished variants (JSON lines or CSV)."""

    def __init__(self, path, config: str):
        self.path = Path(path)
        self.config = config
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".json", ".csv"):
            raise KetabayesError(f"checkpoint must be a .jsonl or .csv file, got {self.path.name!r} "
                                 "(parquet would need pyarrow)")
        self.csv = suffix == ".csv"

    def load(self) -> dict[str, tuple[list[dict], bool]]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return {}
        if self.csv:
            df = pd.read_csv(self.path, keep_default_na=False, na_values=[""],
                             dtype={"error": str, "mcid": str, "verdict": str, "verdict_avg": str})
            recs = df.to_dict(orient="records")
            configs = {r.pop("_config") for r in recs}
            self._check(configs)
            out: dict[str, tuple[list[dict], bool]] = {}
            for r in recs:
                ok = bool(r.pop("_ok"))
                r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                r["error"] = r.get("error") or ""
                rows, ok0 = out.get(r["fit_id"], ([], True))
                out[r["fit_id"]] = ([*rows, r], ok0 and ok)
            return out
        out = {}
        with self.path.open(encoding="utf-8") as f:
            lines = [json.loads(s) for s in f if s.strip()]
        self._check({rec["config"] for rec in lines})
        for rec in lines:
            out[rec["fit_id"]] = (rec["rows"], rec["ok"])
        return out

    def _check(self, configs):
        bad = configs - {self.config}
        if bad:
            raise KetabayesError(f"checkpoint {str(self.path)!r} was written for a different configuration (data "
                                 "set, prior definitions, subsets, factor levels, MCIDs, targets or other grid "
                                 f"settings differ: config {sorted(bad)[0]} vs {self.config}), so its rows "
                                 "cannot be reused; delete it or choose another checkpoint path")

    def append(self, fit_id: str, rows: list[dict], ok: bool) -> None:
        clean = [{k: _jsonable(v) for k, v in r.items()} for r in rows]
        if self.csv:
            df = pd.DataFrame(clean)
            df["_config"] = self.config
            df["_ok"] = ok
            exists = self.path.exists() and self.path.stat().st_size > 0
            if exists:
                cols = pd.read_csv(self.path, nrows=0).columns.tolist()
                for c in cols:
                    if c not in df.columns:
                        df[c] = None
                extra = [c for c in df.columns if c not in cols]
                if extra:  # a wider row than the header: rewrite the file with the union of columns
                    old = pd.read_csv(self.path, keep_default_na=False, na_values=[""])
                    pd.concat([old, df], ignore_index=True).to_csv(self.path, index=False)
                    return
                df = df[cols]
            df.to_csv(self.path, mode="a", header=not exists, index=False)
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"config": self.config, "fit_id": fit_id, "ok": ok, "rows": clean}) + "\n")


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------
@dataclass
class SensitivityResult:
    """Result of :meth:`Sensitivity.run`.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy table, one row per variant x MCID x target (x power-scaling); columns
        :data:`TABLE_COLUMNS` (factor columns, the priors ``prior_mu_spec`` /
        ``prior_tau_spec``, ``k`` = studies the analysis used, posterior ``mean, sd,
        q025, q50, q975``, decision probabilities, ``verdict``, ``seed``, ``warning``,
        ``error``, ...). Probabilities are on the analysis scale (log scale for OR/RR).
        ``attrs``: thresholds, rule, design, ``seed``, ``config_hash``, ``data_hash``,
        ``versions`` and ``grid`` (:meth:`Sensitivity.grid_description`).
    results : dict
        Fitted results by variant name (only with ``keep_results=True``).
    grid : Sensitivity
    seed : int
    """

    table: pd.DataFrame
    results: dict
    grid: Sensitivity
    seed: int

    @property
    def failed(self) -> pd.DataFrame:
        """Rows of variants that failed, with their error messages."""
        return self.table[self.table["error"] != ""]

    def robustness(self, by=("target", "mcid"), column: str = "verdict") -> pd.DataFrame:
        """Does the conclusion change across the grid?

        Parameters
        ----------
        by : sequence of str
            Columns within which variants are compared (default: each target and MCID).
        column : {"verdict", "verdict_avg"}
            Verdict column (``verdict_avg``: model-averaged over H0/H1).

        Returns
        -------
        pandas.DataFrame
            One row per group: ``n_variants``, ``base_verdict`` (first variant of the grid),
            ``verdicts`` (counts), ``robust`` (one verdict everywhere), ``p_benefit_min``,
            ``p_benefit_max``, ``changed_in`` (variants whose verdict differs from the base).
        """
        ok = self.table[(self.table["error"] == "") & (self.table[column] != "")]
        out = []
        for key, g in ok.groupby(list(by), sort=False):
            key = key if isinstance(key, tuple) else (key,)
            base = g[column].iloc[0]
            counts = g[column].value_counts()
            changed = g.loc[g[column] != base, "variant"].tolist()
            out.append({**dict(zip(by, key)), "n_variants": len(g), "base_verdict": base,
                        "verdicts": "; ".join(f"{k}: {v}" for k, v in counts.items()),
                        "robust": len(counts) == 1, "p_benefit_min": g["p_benefit"].min(),
                        "p_benefit_max": g["p_benefit"].max(), "changed_in": changed})
        return pd.DataFrame(out)

    def plot(self, kind: str = "heatmap", **kwargs):
        """Robustness figure; see :mod:`ketabayes.reporting.robustness_plot`."""
        from ketabayes.reporting import robustness_plot

        if kind == "heatmap":
            return robustness_plot.plot_robustness_heatmap(self.table, **kwargs)
        if kind == "tornado":
            return robustness_plot.plot_tornado(self.table, **kwargs)
        raise KetabayesError(f"kind must be 'heatmap' or 'tornado', got {kind!r}")

    def settings_path(self, path) -> Path:
        """Where :meth:`to_csv` writes the settings of a table saved at ``path``: ``<stem>.settings.json``."""
        path = Path(path)
        return path.with_name(path.stem + ".settings.json")

    def to_csv(self, path) -> Path:
        """Write the table to ``path`` and its settings (``table.attrs``) next to it.

        CSV cannot hold the table's attributes, so they go to
        :meth:`settings_path` (``grid.csv`` -> ``grid.settings.json``) as strict
        JSON: package versions, ``data_hash``, base seed, ``config_hash``,
        thresholds, verdict rule and the grid with every prior written out.

        Returns
        -------
        pathlib.Path
            The CSV path.
        """
        from ketabayes.result.provenance import to_json

        path = Path(path)
        self.table.to_csv(path, index=False)
        self.settings_path(path).write_text(to_json(self.table.attrs, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
        return path

    def __repr__(self) -> str:
        n_err = self.failed["fit_id"].nunique()
        return (f"<SensitivityResult: {self.table['fit_id'].nunique()} fits, {len(self.table)} rows, "
                f"{n_err} failed>")


def sensitivity_grid(data: pd.DataFrame, *, seed: int = 0, executor: cf.Executor | None = None,
                     batch_size: int | None = None, progress: bool | None = None,
                     checkpoint: str | Path | None = None, keep_results: bool = False, **grid) -> SensitivityResult:
    """Run a sensitivity grid in one call: ``Sensitivity(data, **grid).run(...)``.

    See :class:`Sensitivity` for the grid arguments and :meth:`Sensitivity.run`
    for ``seed``, ``executor``, ``batch_size``, ``progress``, ``checkpoint`` and
    ``keep_results``.

    Examples
    --------
    >>> import ketabayes as kb
    >>> from ketabayes.reporting.sensitivity import sensitivity_grid
    >>> raw = kb.load_dataset("magnesium_mi")
    >>> raw["study"] = raw["study"] + " " + raw["year"].astype(str)
    >>> es = kb.effect_sizes(raw, "OR")
    >>> res = sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"],
    ...                        mcid=[1.1, 1.25], model=["random", "fixed"], progress=False)
    >>> len(res.table)  # (3 priors x 2 tau priors + 3 fixed-effect) x 2 MCIDs x 2 targets
    36
    >>> sorted(res.table["verdict"].unique())  # doctest: +SKIP
    ['practically no effect', 'probable benefit', 'uncertain']
    """
    return Sensitivity(data, **grid).run(seed=seed, executor=executor, batch_size=batch_size, progress=progress,
                                         checkpoint=checkpoint, keep_results=keep_results)
