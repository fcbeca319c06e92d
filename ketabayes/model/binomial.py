"""Arm-level binomial-logit model for dichotomous outcomes across drugs and conditions.

For trial ``i`` with ``ai`` events of ``n1i`` on treatment and ``ci`` of ``n2i`` on control
(metafor's names)::

    ai ~ Binomial(n1i, expit(base_i + theta_i / 2)),   ci ~ Binomial(n2i, expit(base_i - theta_i / 2))
    theta_i = mu + alpha[drug_i] + beta[condition_i] (+ interaction, nesting, x_i' gamma) + e_i,
    e_i ~ N(0, tau**2),   base_i ~ prior_baseline (study-specific baselines, not pooled)

``theta_i`` is the trial's log odds ratio. The exact binomial likelihood is used:
zero-event arms and double-zero trials enter as they are, without continuity
corrections (a double-zero trial mainly informs its own baseline). Targets are
those of :class:`~ketabayes.model.hierarchical.HierarchicalModel`, on the log-OR
scale; :meth:`HierarchicalResult.absolute_effects
<ketabayes.result.hierarchical_result.HierarchicalResult.absolute_effects>` gives
OR, RR and RD at a baseline risk -- by default the median observed control-arm
risk ``median(ci / n2i)`` (if that is 0, the pooled ``(sum ci + 0.5) / (sum n2i + 1)``).

Engines: ``fit("exact")`` computes the posterior by deterministic quadrature
(:mod:`ketabayes.inference.exact_binomial`: each trial's baseline and effect
integrated by adaptive Gauss-Hermite rules, an outer grid over ``(tau, mu)``) for
the model without groupings, with one grouping (e.g. ``by="drug"``;
:mod:`~ketabayes.inference.exact_binomial_grouped`), with one moderator (e.g.
``moderators="dose"``; :mod:`~ketabayes.inference.exact_binomial_regression`), with
both (:mod:`~ketabayes.inference.exact_binomial_mixed`) or with one grouping nested in
another (``by="drug", nest={"drug": "klass"}``;
:mod:`~ketabayes.inference.exact_binomial_nested`); it is the default, as for the other
models. ``fit("nuts")`` samples every form. Crossed groupings (drug x condition),
interactions and two or more moderators are NUTS only: with binomial likelihoods the
group effects do not integrate out in closed form (as they do for the normal model), so
given the variance components the posterior is an integral over every group level (the
error message gives the dimension count), beyond tensor quadrature. lme4 draws the same
line: adaptive Gauss-Hermite quadrature (``nAGQ > 1``) only for a single scalar
random-effects term.

Every result carries each trial's own (shrunken) log odds ratio as a target named by
the study label (``kind == "study"``; exact marginals or NUTS draws), so
:func:`~ketabayes.reporting.plots.plot_forest` draws a shrinkage forest, and the
ArviZ groups ``log_likelihood`` (each trial's likelihood of both arms' counts given
the draw of its linear predictor and of ``tau``, its baseline and own effect
integrated out: :func:`~ketabayes.inference.exact_binomial.pointwise_log_lik`, so
``az.loo`` is leave-one-trial-out prediction of a new trial's counts, with stable
Pareto k) and ``prior``.

References
----------
Smith TC, Spiegelhalter DJ, Thomas A (1995). Stat Med 14(24):2685-2699. doi:10.1002/sim.4780142408
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.errors import ExactIntegrationError, KetabayesError, PriorError
from ketabayes.model._fit_common import (
    Described,
    check_method,
    constant_coords,
    draw_seed,
    draws_tree,
    fit_settings,
    group_constants,
    make_thresholds,
    nuts_engine_settings,
    prior_entry,
    record_sampler,
)
from ketabayes.model.hierarchical import HierarchicalModel, build_design, study_targets
from ketabayes.model.priors import Flat, Normal, default_tau_prior, parse_prior

__all__ = ["BinomialModel"]


class BinomialModel(Described):
    """Bayesian arm-level binomial-logit meta-analysis with partially pooled drug and condition effects.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial comparison with ``ai, n1i, ci, n2i`` and the grouping columns.
    by, moderators, interaction, nest, prior_mu, prior_tau, prior_sd, prior_gamma
        As for :class:`~ketabayes.model.hierarchical.HierarchicalModel`; default
        ``prior_tau`` is ``halfnormal(0.5)`` (log-OR scale).
    prior_baseline : Prior or str
        Prior of each trial's baseline log odds (default ``normal(0, 5)``).
    baseline_risk : float, optional
        Control risk used for RR / RD; default the median observed control-arm risk.
    study, ai, n1i, ci, n2i : str
        Column names.

    Examples
    --------
    >>> from ketabayes.data.simulate import simulate_review
    >>> from ketabayes.model.binomial import BinomialModel
    >>> df = simulate_review(seed=1, binary={})
    >>> model = BinomialModel(df, by=["drug"], prior_mu="normal(0, 2)")
    >>> result = model.fit("exact", mcid=1.25, benefit="higher", seed=1)   # SIMULATED data
    >>> result.engine, list(result.decision_table().target[:3])
    ('exact', ['mean', 'predictive', 'drug=ketamine'])
    >>> nuts = model.fit("nuts", mcid=1.25, benefit="higher", seed=1)  # doctest: +SKIP
    """

    def __init__(self, data: pd.DataFrame, by=(), *, moderators=None, interaction: bool = False,
                 nest: dict | None = None, prior_mu=None, prior_tau=None, prior_sd=None, prior_gamma=None,
                 prior_baseline="normal(0, 5)", baseline_risk: float | None = None, study: str = dims.STUDY_COL,
                 ai: str = "ai", n1i: str = "n1i", ci: str = "ci", n2i: str = "n2i"):
        from ketabayes.data.consistency import unique_labels
        from ketabayes.data.validation import (
            as_dataframe,
            check_counts,
            check_not_empty,
            check_not_greater,
            check_positive,
            numeric_column,
            study_labels,
        )

        df = as_dataframe(data).copy().reset_index(drop=True)
        check_not_empty(df)
        labels = study_labels(df, study)
        labels = unique_labels(labels, study, df)
        vals = {}
        for col, what in ((ai, "the number of events on treatment (metafor's ai)"),
                          (n1i, "the size of the treatment group (metafor's n1i)"),
                          (ci, "the number of events on control (metafor's ci)"),
                          (n2i, "the size of the control group (metafor's n2i)")):
            vals[col] = numeric_column(df, col, labels, what=what)
            check_counts(vals[col], col, labels, what=what)
        check_positive(vals[n1i], n1i, labels, what="group size")
        check_positive(vals[n2i], n2i, labels, what="group size")
        check_not_greater(vals[ai], vals[n1i], ai, n1i, labels, what="more events than participants")
        check_not_greater(vals[ci], vals[n2i], ci, n2i, labels, what="more events than participants")
        self.data = df
        self.studies = labels
        self.a, self.n1, self.c, self.n2 = (vals[x].astype(int) for x in (ai, n1i, ci, n2i))
        self.measure = "OR"
        self.excluded = []
        self.by = [by] if isinstance(by, str) else list(by or [])
        self.interaction = bool(interaction)
        self.nest = dict(nest or {})
        self.columns = {"study": study, "ai": ai, "n1i": n1i, "ci": ci, "n2i": n2i}
        self.design = build_design(df, labels, self.by, [moderators] if isinstance(moderators, str)
                                   else list(moderators or []), self.interaction, self.nest)
        self.design.targets += study_targets(self.design, self.studies, self.data, self.by + list(self.nest.values()))
        self.prior_mu = parse_prior(prior_mu) if prior_mu is not None else Flat()
        if not isinstance(self.prior_mu, (Normal, Flat)):
            raise PriorError(f"prior_mu must be normal(mean, sd) or flat(), got {self.prior_mu}")
        self.prior_tau = parse_prior(prior_tau) if prior_tau is not None else default_tau_prior("OR")
        if self.prior_tau.support != "positive":
            raise PriorError(f"prior_tau must be a prior on tau > 0, got {self.prior_tau}")
        self.prior_baseline = parse_prior(prior_baseline)
        if not isinstance(self.prior_baseline, Normal):
            raise PriorError(f"prior_baseline must be normal(mean, sd), got {self.prior_baseline}")
        self.prior_sd = HierarchicalModel._term_priors(self, prior_sd)
        self.prior_gamma = HierarchicalModel._gamma_priors(self, prior_gamma)
        if baseline_risk is None:
            r = np.median(self.c / self.n2)
            baseline_risk = float(r) if r > 0 else float((self.c.sum() + 0.5) / (self.n2.sum() + 1.0))
        if not 0.0 < baseline_risk < 1.0:
            raise KetabayesError(f"baseline_risk must be between 0 and 1, got {baseline_risk!r}")
        self.baseline_risk = float(baseline_risk)

    @property
    def k(self) -> int:
        return len(self.studies)

    _coords = HierarchicalModel._coords
    spec = HierarchicalModel.spec
    _prior_entries = HierarchicalModel._prior_entries

    def describe(self) -> str:
        """Plain-text statement of the model and its priors."""
        lines = [f"Binomial-logit hierarchical meta-analysis of {self.k} trials (log odds ratio)",
                 "  ai ~ Bin(n1i, expit(base_i + theta_i/2)), ci ~ Bin(n2i, expit(base_i - theta_i/2))",
                 "  theta_i = " + " + ".join(["mu", *(f"{t.dim}_effect" for t in self.design.terms)]
                                             + (["x'gamma"] if self.design.moderators else []) + ["e_i"])
                 + ", e_i ~ N(0, tau^2)"]
        for t in self.design.terms:
            lines.append(f"  {t.name}: {len(t.levels)} levels, prior sd_{t.dim}: {self.prior_sd[t.name].describe()}")
        lines += [f"  prior mu:  {self.prior_mu.describe()}", f"  prior tau: {self.prior_tau.describe()}",
                  f"  prior baseline log odds: {self.prior_baseline}",
                  f"  baseline risk for RR/RD: {self.baseline_risk:.4g}",
                  (f"  zero-event arms: {int(np.sum(self.a == 0) + np.sum(self.c == 0))}, double-zero trials: "
                  f"{int(np.sum((self.a == 0) & (self.c == 0)))} (exact likelihood, no continuity correction)")]
        return "\n".join(lines)

    def data_hash(self) -> str:
        from ketabayes.provenance import data_hash

        labels = [f"{s}\x1e" + "\x1e".join(str(self.data[c].iloc[i]) for c in self.by + list(self.nest.values()))
                  for i, s in enumerate(self.studies)]
        return data_hash(self.a, self.n1, self.c, self.n2, self.design.X, labels=labels, extra="binomial")

    def pymc_model(self):
        """The PyMC model the NUTS engine samples (for ``pm.sample_prior_predictive`` and other PyMC tools):
        arm-level binomial likelihood, baselines and trial effects sampled (see
        :func:`ketabayes.inference.nuts_hierarchical.build_binomial`)."""
        from ketabayes.inference.nuts_hierarchical import build_binomial

        return build_binomial(self)

    def fit(self, method: str = "exact", *, mcid: float | None = None, benefit: str = "lower",
            harm: float | None = None, seed: int | None = None, draws: int = 1000, chains: int = 4,
            tune: int = 1000, nuts: dict | None = None, strict: bool = False, progressbar: bool | None = None,
            grid=None, cache=None, **sample_kwargs):
        """Fit the model. Returns a HierarchicalResult on the log-OR scale.

        Parameters
        ----------
        method : {"exact", "nuts"}
            ``"exact"`` (default): quadrature (every target an exact normal mixture) for the
            model without groupings (:class:`~ketabayes.inference.exact_binomial.ExactBinomial`),
            with one grouping
            (:class:`~ketabayes.inference.exact_binomial_grouped.ExactBinomialGrouped`),
            with one moderator
            (:class:`~ketabayes.inference.exact_binomial_regression.ExactBinomialRegression`),
            with one grouping and one moderator
            (:class:`~ketabayes.inference.exact_binomial_mixed.ExactBinomialMixed`) or with
            one grouping nested in another
            (:class:`~ketabayes.inference.exact_binomial_nested.ExactBinomialNested`);
            other forms (crossed groupings, interactions, two or more moderators) raise an
            error that says why and names ``"nuts"``: PyMC's NUTS (every form).
        mcid, benefit, harm : optional
            ``mcid`` is a ratio (e.g. ``1.25``); ``benefit="higher"`` for responders,
            ``"lower"`` for adverse events.
        seed : int, optional
        draws, chains : int
            Posterior draws stored in the tree (independent draws for the exact engine).
        tune, nuts, strict, progressbar, **sample_kwargs
            NUTS only; ``nuts`` defaults to ``{"target_accept": 0.95}``.
        grid : GridSettings, optional
            Outer quadrature grid of the exact engine (default
            :data:`~ketabayes.inference.exact_binomial.BINOMIAL_GRID`).
        cache : CompiledModelCache, optional
            NUTS only: sample with nutpie through this cache of compiled models, so that
            fits that differ only in data or prior parameters (same prior families, same
            number of trials and groups) compile the model once
            (:class:`~ketabayes.inference.compiled_cache.CompiledModelCache`). Of
            ``**sample_kwargs`` only ``cores`` is then accepted.
        """
        from ketabayes.result.hierarchical_result import HierarchicalResult

        check_method(method)
        seed = draw_seed(seed)
        settings = fit_settings(
            "binomial", method, "OR", structure=self.spec(),
            priors={**self._prior_entries(), "prior_baseline": prior_entry(self.prior_baseline),
                    "baseline_risk": self.baseline_risk},
            thresholds=make_thresholds(mcid, "OR", benefit, harm), seed=seed, draws=draws, chains=chains,
            excluded=[], columns=self.columns, data_hash=self.data_hash())
        exact = diagnostics = None
        if method == "exact":
            try:
                exact = self._exact(grid)
                settings["engine_settings"] = exact.settings.to_dict()
                tree, centre = self._exact_tree(exact, seed, chains, draws)
            except (FloatingPointError, np.linalg.LinAlgError) as e:
                raise ExactIntegrationError(f"the exact binomial engine could not integrate this posterior ({e}); "
                                            f"fit it with method='nuts'") from None
            curves = getattr(exact, "trials", exact)
        else:
            from ketabayes.inference.compiled_cache import sample_model
            from ketabayes.inference.diagnostics import check_convergence
            from ketabayes.inference.exact_binomial import trial_curves
            from ketabayes.inference.nuts_hierarchical import add_targets, binomial_data, binomial_key, build_binomial

            nuts = {"target_accept": 0.95, **(nuts or {})}
            settings["engine_settings"] = nuts_engine_settings(tune, nuts, sample_kwargs)
            tree = sample_model(lambda: build_binomial(self), cache=cache, key=lambda: binomial_key(self),
                                data=lambda: binomial_data(self), seed=seed, draws=draws, tune=tune, chains=chains,
                                nuts=nuts, progressbar=progressbar, **sample_kwargs)
            record_sampler(settings, tree)
            tree = add_targets(tree, self, np.random.default_rng([seed, 1]))
            diagnostics = check_convergence(tree, ["mu", *self.design.components, "effect"], strict=strict)
            post = tree["posterior"]
            # each trial's linear predictor (its centre): theta_i = eta_i + tau z_i in the sampled model
            centre = (post[dims.THETA] - post[dims.TAU] * post["z_trial"]).transpose(
                dims.CHAIN, dims.DRAW, dims.STUDY).values
            curves = trial_curves(self.a, self.n1, self.c, self.n2, self.prior_baseline)
        tree = self._attach_data(tree)
        tree = self._arviz_groups(tree, curves, centre, seed)
        return HierarchicalResult(tree, settings, targets=self.design.targets, exact=exact, diagnostics=diagnostics,
                                  model=self)

    def _exact(self, grid=None):
        """The exact engine for this model (also used by the loader to re-create exact results).

        No groupings and no moderators: :class:`~ketabayes.inference.exact_binomial.ExactBinomial`;
        one grouping: :class:`~ketabayes.inference.exact_binomial_grouped.ExactBinomialGrouped`;
        one moderator: :class:`~ketabayes.inference.exact_binomial_regression.ExactBinomialRegression`;
        both: :class:`~ketabayes.inference.exact_binomial_mixed.ExactBinomialMixed`; one grouping nested in
        another: :class:`~ketabayes.inference.exact_binomial_nested.ExactBinomialNested`.
        Other forms raise a :class:`~ketabayes.errors.KetabayesError` that says why and names
        ``method="nuts"``.
        """
        d = self.design
        reason = _not_exact(d)
        if reason:
            raise KetabayesError(f"the exact binomial engine cannot fit this model: {reason}. Use method='nuts'")
        if len(d.terms) == 2:
            from ketabayes.inference.exact_binomial_nested import ExactBinomialNested

            outer, inner = d.terms
            _, mapping = d.parent_of[inner.name]
            parent = [outer.levels.index(mapping[level]) for level in inner.levels]
            return ExactBinomialNested(self.a, self.n1, self.c, self.n2, inner.index, parent, self.prior_mu,
                                       self.prior_tau, self.prior_sd[outer.name], self.prior_sd[inner.name],
                                       self.prior_baseline, d.A, d.pred, settings=grid, shrink=d.shrink)
        if d.moderators and d.terms:
            from ketabayes.inference.exact_binomial_mixed import ExactBinomialMixed

            t = d.terms[0]
            return ExactBinomialMixed(self.a, self.n1, self.c, self.n2, t.index, d.X[:, 1], self.prior_mu,
                                      self.prior_gamma[d.moderators[0]], self.prior_tau, self.prior_sd[t.name],
                                      self.prior_baseline, d.A, d.pred, settings=grid, shrink=d.shrink)
        if d.moderators:
            from ketabayes.inference.exact_binomial_regression import ExactBinomialRegression

            return ExactBinomialRegression(self.a, self.n1, self.c, self.n2, d.X[:, 1], self.prior_mu,
                                           self.prior_gamma[d.moderators[0]], self.prior_tau, self.prior_baseline,
                                           d.A, d.pred, settings=grid, shrink=d.shrink)
        if d.terms:
            from ketabayes.inference.exact_binomial_grouped import ExactBinomialGrouped

            t = d.terms[0]
            return ExactBinomialGrouped(self.a, self.n1, self.c, self.n2, t.index, self.prior_mu, self.prior_tau,
                                        self.prior_sd[t.name], self.prior_baseline, d.A, d.pred, settings=grid,
                                        shrink=d.shrink)
        from ketabayes.inference.exact_binomial import ExactBinomial

        return ExactBinomial(self.a, self.n1, self.c, self.n2, self.prior_mu, self.prior_tau, self.prior_baseline,
                             d.A, d.pred, settings=grid, shrink=d.shrink)

    def _exact_tree(self, exact, seed, chains, draws):
        """The posterior group from the engine's joint draws; also each draw's trial centres ``(chain, draw, k)``."""
        d = self.design
        s = exact.sample(chains * draws, np.random.default_rng(seed))
        shape = (chains, draws)
        post = {"mu": s["b"][:, 0], dims.TAU: s["phi"][:, 0]}
        dim_map = {"effect": [dims.TARGET], dims.THETA: [dims.STUDY]}
        if d.moderators:
            post["gamma"] = s["b"][:, 1:]
            dim_map["gamma"] = ["moderator"]
        for g, t in enumerate(d.terms):
            post[f"sd_{t.dim}"] = s["phi"][:, 1 + g]
            post[f"{t.dim}_effect"] = s["u"][:, np.asarray(d.term_of_col) == g]
            dim_map[f"{t.dim}_effect"] = [t.dim]
        post[dims.THETA] = s["theta"]
        post["effect"] = s["targets"]
        post = {k: v.reshape(*shape, *v.shape[1:]) for k, v in post.items()}
        return draws_tree({"posterior": post}, dim_map, self._coords()), s["centre"].reshape(*shape, self.k)

    def _arviz_groups(self, tree, curves, centre, seed):
        """``log_likelihood`` (each trial's likelihood given the draw of its centre and tau) and ``prior`` groups."""
        from ketabayes.inference.arviz_groups import add_groups
        from ketabayes.inference.exact_binomial import pointwise_log_lik

        ll = pointwise_log_lik(curves, centre, tree["posterior"][dims.TAU].values)
        priors = {dims.MU: self.prior_mu, dims.TAU: self.prior_tau,
                  **{f"sd_{t.dim}": self.prior_sd[t.name] for t in self.design.terms}}
        return add_groups(tree, ll, self.studies, priors, seed=seed)

    def _attach_data(self, tree):
        import xarray as xr

        obs = xr.Dataset({"ai": ((dims.STUDY,), self.a), "ci": ((dims.STUDY,), self.c)},
                         coords={dims.STUDY: self.studies})
        const = {"n1i": ((dims.STUDY,), self.n1), "n2i": ((dims.STUDY,), self.n2), **group_constants(self)}
        tree["observed_data"] = xr.DataTree(obs)
        tree["constant_data"] = xr.DataTree(xr.Dataset(const, coords=constant_coords(self)))
        return tree


def _not_exact(design) -> str:
    """Why the exact engine cannot integrate a model structure ("" if it can).

    Given ``tau`` every trial enters through its likelihood of its linear predictor, a one-dimensional
    table; what remains must be a low-dimensional integral of such tables. That holds without groupings
    (``mu``), with one grouping (``mu`` and one group SD, the groups independent given them), with one
    moderator (``mu`` and the slope), with both (the slope outside the one-grouping integral) and with one
    grouping nested in another (the levels integrated one after another); it fails for the forms below.
    """
    terms, mods = design.terms, design.moderators
    nested = (len(terms) == 2 and terms[1].name in design.parent_of
              and design.parent_of[terms[1].name][0] == terms[0].name)
    if len(terms) > 1 and not nested:
        names = ", ".join(repr(t.name) for t in terms)
        levels = sum(len(t.levels) for t in terms)
        return (f"it has the random-effect terms {names} (crossed or interacting groupings, or nesting deeper than "
                f"one grouping in another). Their effects are coupled through the trials that share levels, so given "
                f"the variance components the posterior does not split into one-dimensional integrals per group: it "
                f"is a {levels}-dimensional integral (one dimension per level) on top of {len(terms) + 1} variance "
                f"components")
    if nested and mods:
        return (f"it has nested groupings ({terms[1].name!r} within {terms[0].name!r}) and a moderator "
                f"({mods[0]!r}); the exact engine integrates nested groupings without moderators")
    if len(mods) > 1:
        return (f"it has {len(mods)} moderators ({', '.join(map(repr, mods))}); the exact engine integrates one "
                f"(tau, mu and one slope); each further slope adds a dimension to the integral")
    return ""
