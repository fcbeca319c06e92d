"""The normal-normal random-effects model (and its fixed-effect special case).

Configure -> (optionally inspect) -> ``fit()``: building the model is cheap and
does no inference; :meth:`RandomEffectsModel.fit` runs the exact engine or NUTS
and returns a :class:`~ketabayes.result.result.MetaResult`.
"""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.decision import RATIO_MEASURES
from ketabayes.errors import DataError, DataWarning, KetabayesError
from ketabayes.model._fit_common import (
    Described,
    check_method,
    default_tau_prior_for,
    draw_seed,
    fit_settings,
    make_thresholds,
    nuts_engine_settings,
    prior_entry,
    record_sampler,
)
from ketabayes.model.priors import Flat, Prior, parse_prior
from ketabayes.model.priors_extra import resolve_prior

__all__ = ["RandomEffectsModel"]


class RandomEffectsModel(Described):
    """Bayesian normal-normal random-effects meta-analysis.

    ``y_i ~ N(theta_i, v_i)``, ``theta_i ~ N(mu, tau**2)`` (``tau = 0`` if ``fixed``).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per study with effect sizes ``yi`` and ``vi`` (or ``sei``), e.g. the
        output of :func:`ketabayes.effect_sizes`. Rows flagged ``estimable == False``
        (double-zero studies on the log scale) are left out with a
        :class:`~ketabayes.errors.DataWarning` naming them.
    prior_mu : Prior or str, optional
        Prior of the average effect (default ``flat()``, as in bayesmeta): ``normal``,
        ``studentt``, ``cauchy`` (each optionally truncated, e.g. ``"cauchy(0, 0.707, lower=0)"``),
        ``point(0)`` (a null model) or ``flat()``. Strings such as ``"normal(0, 50)"`` are parsed.
        With a non-normal prior the exact engine integrates over mu as well (slower: seconds).
    prior_tau : Prior or str, optional
        Prior of the between-study SD. Default:
        :func:`~ketabayes.model.priors.default_tau_prior` for the measure.
    fixed : bool
        Fixed-effect (common-effect) model.
    measure : str, optional
        Effect measure (``MD, SMD, OR, RR, RD, GEN``); read from ``data.attrs`` or a
        ``measure`` column when not given. OR and RR are analysed on the log scale.
    study, yi, vi, sei : str
        Column names.

    Examples
    --------
    >>> import ketabayes as kb
    >>> mg = kb.load_dataset("magnesium_mi")
    >>> mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))  # three trials are "Shechter"
    >>> es = kb.effect_sizes(mg, "OR")
    >>> model = kb.RandomEffectsModel(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    >>> result = model.fit(method="exact", mcid=1.25, seed=1)
    >>> mu = result.marginal("mu")
    >>> round(mu.mean, 2), round(mu.sd, 2), round(float(mu.cdf(0.0)), 4)  # log OR; P(OR < 1)
    (-0.73, 0.23, 0.9997)
    """

    def __init__(self, data: pd.DataFrame, *, prior_mu: Prior | str | None = None,
                 prior_tau: Prior | str | None = None, fixed: bool = False, measure: str | None = None,
                 study: str = dims.STUDY_COL, yi: str = "yi", vi: str = "vi", sei: str = "sei"):
        from ketabayes.data.consistency import measure_from_column
        from ketabayes.data.validation import validate_yi_vi, vi_from_sei

        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data must be a pandas DataFrame of effect sizes, got {type(data).__name__}")
        df = data.copy()
        if study not in df.columns:
            df[study] = [f"Study {i + 1}" for i in range(len(df))]
        # a 'measure' column that mixes measures (OR and MD rows) is refused, also with measure= given
        measure = measure_from_column(df, measure if measure is not None else df.attrs.get("measure"),
                                      df[study].astype(str).tolist())
        self.measure = (measure or "GEN").upper()
        excluded = []
        if "estimable" in df.columns:
            mask = df["estimable"].astype(bool)
            excluded = df.loc[~mask, study].astype(str).tolist()
            df = df.loc[mask]
        if excluded:
            warnings.warn(
                f"{len(excluded)} study(ies) left out of the model because their effect is not estimable "
                f"on the {self.measure} scale (no events in either arm): {', '.join(excluded)}",
                DataWarning, stacklevel=2)
        self.excluded = excluded
        if vi not in df.columns and sei in df.columns:  # a negative sei is an error, not squared away
            df = df.assign(**{vi: vi_from_sei(df, sei, df[study].astype(str).tolist())})
        clean = validate_yi_vi(df, yi=yi, vi=vi, study=study)
        self.data = df.reset_index(drop=True)
        self.studies = clean[dims.STUDY_COL].tolist()  # repeated labels made unique (metafor's rule)
        self.yi = self.data[yi].to_numpy(dtype=float)
        self.vi = self.data[vi].to_numpy(dtype=float)
        self.fixed = bool(fixed)
        self.prior_mu = parse_prior(prior_mu) if prior_mu is not None else Flat()
        if self.prior_mu.support != "real":
            raise KetabayesError(f"prior_mu must be a prior on the real line (normal, studentt, cauchy, point, "
                                 f"flat), got {self.prior_mu}")
        if self.fixed:
            self.prior_tau = None
        elif prior_tau is not None:
            # data-dependent reference priors (dumouchel(), i2(), ...) get their scale from the variances
            self.prior_tau = resolve_prior(parse_prior(prior_tau), self.vi)
            if self.prior_tau.support != "positive":
                raise KetabayesError(f"prior_tau must be a prior on tau > 0, got {self.prior_tau}")
        else:
            self.prior_tau = default_tau_prior_for(self.measure, self.data, self.vi, study)

    # ------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, yi, vi, studies=None, **kwargs) -> RandomEffectsModel:
        """Build from arrays of estimates and variances."""
        yi = np.asarray(yi, dtype=float).ravel()
        df = pd.DataFrame({"yi": yi, "vi": np.asarray(vi, dtype=float).ravel()})
        df[dims.STUDY_COL] = list(studies) if studies is not None else [f"Study {i + 1}" for i in range(len(yi))]
        return cls(df, **kwargs)

    @classmethod
    def from_contrasts(cls, contrasts, *, prior_mu=None, prior_tau=None, rho: float = 0.5):
        """Multi-arm trials, handled exactly: the contrasts of
        :func:`~ketabayes.data.multiarm.multiarm_contrasts` with their within-trial covariance.

        Returns a :class:`~ketabayes.model.multivariate.MultivariateModel` (see
        :meth:`~ketabayes.model.multivariate.MultivariateModel.from_contrasts`); with only
        two-arm trials it gives the same posterior as this model.
        """
        from ketabayes.model.multivariate import MultivariateModel

        return MultivariateModel.from_contrasts(contrasts, prior_mu=prior_mu, prior_tau=prior_tau, rho=rho)

    @property
    def k(self) -> int:
        return len(self.yi)

    def describe(self) -> str:
        """Plain-text statement of the model and its priors."""
        kind = "fixed-effect (common-effect)" if self.fixed else "random-effects"
        scale = " (log scale)" if self.measure in RATIO_MEASURES else ""
        lines = [f"Normal-normal {kind} meta-analysis of {self.k} studies, measure {self.measure}{scale}",
                 "  y_i ~ N(theta_i, v_i), " + ("theta_i = mu" if self.fixed else "theta_i ~ N(mu, tau^2)"),
                 f"  prior mu:  {self.prior_mu.describe()}"]
        if not self.fixed:
            lines.append(f"  prior tau: {self.prior_tau.describe()}")
        if self.excluded:
            lines.append(f"  left out (not estimable): {', '.join(self.excluded)}")
        return "\n".join(lines)

    def data_hash(self) -> str:
        from ketabayes.provenance import data_hash

        return data_hash(self.yi, self.vi, labels=self.studies, extra=self.measure)

    # ------------------------------------------------------------------
    def fit(self, method: str = "exact", *, mcid: float | None = None, benefit: str = "lower",
            harm: float | None = None, seed: int | None = None, draws: int = 1000, chains: int = 4,
            tune: int = 1000, nuts: dict | None = None, strict: bool = False, progressbar: bool | None = None,
            frequentist: bool = True, study_draws: bool | None = None, cache=None, **sample_kwargs):
        """Fit the model.

        Parameters
        ----------
        method : {"exact", "nuts"}
            ``"exact"``: integration over tau (milliseconds, exact to ~1e-8);
            its draws are independent samples from the exact posterior.
            ``"nuts"``: PyMC's NUTS on the marginalised model.
        mcid, benefit, harm : optional
            Decision thresholds stored with the result (see
            :class:`~ketabayes.decision.Thresholds`).
        seed : int, optional
            Random seed; if ``None`` one is drawn and recorded, so the result is
            still reproducible.
        draws, chains : int
            Number of draws per chain and chains (both engines).
        tune : int
            NUTS tuning steps.
        nuts : dict, optional
            Options passed to the NUTS sampler, e.g. ``{"max_treedepth": 12}``;
            ``target_accept`` defaults to 0.95 here (PyMC's default is 0.8).
        strict : bool
            Raise :class:`~ketabayes.errors.ConvergenceError` when NUTS diagnostics fail.
        progressbar : bool, optional
            NUTS progress bar; default on in terminals and notebooks (``KETABAYES_PROGRESS=0`` turns it off).
        frequentist : bool
            Also compute the FE / DL / REML reference (metafor's ``rma``).
        study_draws : bool, optional
            Exact engine: store draws of every study effect ``theta[study]`` and the pointwise
            ``log_likelihood`` group (8 bytes per draw and study each). Default: only when
            ``k * chains * draws <= 5,000,000`` (e.g. k = 1,250 at 4 x 1,000 draws), so that very large
            meta-analyses fit in little memory; the exact marginal of every study effect is available
            either way (``result.marginal(label)``). NUTS always stores them.
        cache : CompiledModelCache, optional
            NUTS only: sample with nutpie through this cache of compiled models, so that fits that
            differ only in data or prior parameters (same number of studies and prior families:
            :func:`~ketabayes.inference.nuts.normal_normal_key`) compile once
            (:class:`~ketabayes.inference.compiled_cache.CompiledModelCache`); the draws equal an
            uncached fit's with the same seed. Of ``**sample_kwargs`` only ``cores`` is then accepted.
        **sample_kwargs
            Passed unchanged to ``pymc.sample``.

        Returns
        -------
        MetaResult
        """
        from ketabayes.result.result import MetaResult

        check_method(method)
        seed = draw_seed(seed)
        thresholds = make_thresholds(mcid, self.measure, benefit, harm)
        settings = fit_settings(
            "fixed effect" if self.fixed else "random effects", method, self.measure, head={"fixed": self.fixed},
            priors={"prior_mu": prior_entry(self.prior_mu, short=True), "prior_tau": prior_entry(self.prior_tau)},
            thresholds=thresholds, seed=seed, draws=draws, chains=chains, excluded=self.excluded,
            data_hash=self.data_hash())
        exact = None
        diagnostics = None
        if method == "exact":
            from ketabayes.inference.exact import ExactNormalNormal

            exact = ExactNormalNormal(self.yi, self.vi, self.prior_mu, self.prior_tau, fixed=self.fixed)
            settings["engine_settings"] = exact.settings.to_dict()
            if study_draws is None:
                study_draws = self.k * chains * draws <= STUDY_DRAWS_LIMIT
            settings["study_draws"] = bool(study_draws)
            # the tree (exact draws, log_likelihood, prior) is built when first asked for: tables and
            # decision probabilities come from the exact marginals, so a report needs no xarray at all
            # (bound to a copy, so that a model changed after the fit cannot change the tree)
            tree = functools.partial(copy.copy(self)._exact_full_tree, exact, seed, chains, draws, bool(study_draws))
        else:
            from ketabayes.inference.compiled_cache import sample_model
            from ketabayes.inference.diagnostics import check_convergence
            from ketabayes.inference.nuts import normal_normal_data, normal_normal_key

            # tau near 0 with a heavy data weight gives the odd divergence at PyMC's default 0.8
            nuts = {"target_accept": 0.95, **(nuts or {})}
            settings["engine_settings"] = nuts_engine_settings(tune, nuts, sample_kwargs)
            tau_prior = None if self.fixed else self.prior_tau
            tree = sample_model(self.pymc_model, cache=cache,
                                key=lambda: normal_normal_key(self.k, self.prior_mu, tau_prior, self.fixed),
                                data=lambda: normal_normal_data(self.yi, self.vi, self.prior_mu, tau_prior),
                                seed=seed, draws=draws, tune=tune, chains=chains, nuts=nuts, progressbar=progressbar,
                                **sample_kwargs)
            record_sampler(settings, tree)
            var_names = [dims.MU] if self.fixed else [dims.MU, dims.TAU, dims.THETA, dims.THETA_NEW]
            diagnostics = check_convergence(tree, var_names, strict=strict)
            if self.fixed:
                post = tree["posterior"].to_dataset()
                tree["posterior"] = xr_assign(post, dims.TAU, np.zeros((post.sizes["chain"], post.sizes["draw"])))
            tree = self._add_groups(tree, seed, log_likelihood=True)
        freq = None
        if frequentist:
            from ketabayes.inference.frequentist import rma_all

            freq = rma_all(self.yi, self.vi)
        return MetaResult(tree, settings, exact=exact, diagnostics=diagnostics, frequentist=freq,
                          studies=self.studies)

    def _add_groups(self, tree, seed, *, log_likelihood: bool):
        from ketabayes.inference.arviz_groups import add_normal_normal_groups

        return add_normal_normal_groups(tree, self.yi, self.vi, self.studies, self.prior_mu,
                                        None if self.fixed else self.prior_tau, seed=seed,
                                        log_likelihood=log_likelihood)

    def _exact_full_tree(self, exact, seed, chains, draws, study_draws: bool):
        """The tree of an exact fit: exact draws, data, ``log_likelihood`` (with study draws) and ``prior``."""
        return self._add_groups(self._exact_tree(exact, seed, chains, draws, studies=study_draws), seed,
                                log_likelihood=study_draws)

    def pymc_model(self):
        """The PyMC model the NUTS engine samples (for ``pm.sample_prior_predictive`` and other PyMC tools).

        The study effects are integrated out of the likelihood (``y_i ~ N(mu, v_i + tau^2)``);
        see :mod:`ketabayes.inference.nuts`.
        """
        from ketabayes.inference.nuts import build_normal_normal

        return build_normal_normal(self.yi, self.vi, self.studies, self.prior_mu, self.prior_tau, fixed=self.fixed)

    def _exact_tree(self, exact, seed, chains, draws, studies: bool = True):
        # xarray alone (no arviz import at all on the exact path: benchmarks/cold_start.py)
        from ketabayes.model._fit_common import draws_tree

        rng = np.random.default_rng(seed)
        d = exact.sample(chains * draws, rng, studies=studies)
        shape = (chains, draws)
        posterior = {dims.MU: d["mu"].reshape(shape), dims.TAU: d["tau"].reshape(shape)}
        if studies:
            posterior[dims.THETA] = d["theta"].reshape(*shape, self.k)
        posterior[dims.THETA_NEW] = d["theta_new"].reshape(shape)
        return draws_tree(
            {"posterior": posterior, "observed_data": {"y": self.yi}, "constant_data": {"vi": self.vi}},
            {dims.THETA: [dims.STUDY], "y": [dims.STUDY], "vi": [dims.STUDY]},
            {dims.STUDY: self.studies},
        )


#: exact fits store study-level draws only up to this many numbers (k x chains x draws)
STUDY_DRAWS_LIMIT = 5_000_000


def xr_assign(ds, name, values):
    """Return a DataTree node of ``ds`` with ``name`` added over (chain, draw)."""
    import xarray as xr

    out = ds.assign({name: ((dims.CHAIN, dims.DRAW), values)})
    return xr.DataTree(out)
