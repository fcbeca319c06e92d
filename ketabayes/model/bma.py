"""``kb.bma``: Bayesian model-averaged meta-analysis (metaBMA / RoBMA style), optionally bias-adjusted.

The data are read and checked as by :class:`~ketabayes.model.random_effects.RandomEffectsModel`;
the ensemble is fitted by :func:`ketabayes.inference.bma.fit_ensemble` and returned as a
:class:`~ketabayes.result.bma_result.BMAResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketabayes import dims

__all__ = ["bma"]


def bma(data: pd.DataFrame, *, prior_mu, prior_tau, bias=None, prior_probs=None, mcid: float | None = None,
        benefit: str = "lower", harm: float | None = None, measure: str | None = None,
        mu_truncation: str | None = None, prior_pet=None, prior_peese=None, smc_draws: int = 500,
        smc_chains: int = 4, seed: int | None = None, rob: str | None = None, rob_high=None, prior_rob=None,
        draws: int = 1000, chains: int = 4, study: str = dims.STUDY_COL, yi: str = "yi", vi: str = "vi",
        sei: str = "sei"):
    """Fit the ensemble fixed/random x effect/no effect (x bias) and average over it.

    Parameters
    ----------
    data : pandas.DataFrame
        Effect sizes ``yi`` with ``vi`` (or ``sei``), one row per study.
    prior_mu : Normal or str
        Proper normal prior of the average effect under "effect" (e.g. ``"normal(0, 1)"``).
    prior_tau : Prior or str
        Proper prior of tau under "heterogeneity" (e.g. ``"halfnormal(0.5)"``).
    bias : None, True, str or list of str
        Bias-adjustment models: ``None`` (none: 4 models), ``True`` / ``"robma"`` (RoBMA-PSMA:
        six step weight functions, PET and PEESE: 36 models), ``"pet-peese"`` (12 models),
        ``"selection"`` or names (``"PET"``, ``"PEESE"``, ``"2s.05"``, ``"1s.025.05"``, ...).
    prior_probs : None, dict or sequence
        Prior model probabilities: default 1/2 for each of effect, heterogeneity and bias (RoBMA's
        split within bias); a dict ``{"effect": p, "heterogeneity": p, "bias": p}``; or one number
        per model in the order of :attr:`BMAResult.models`.
    mcid, benefit, harm : optional
        Decision thresholds (see :class:`~ketabayes.decision.Thresholds`). ``benefit`` also
        sets the direction of small-study effects and of the one-sided p-values of the selection
        models: publication favours results on the benefit side.
    measure : str, optional
        Effect measure (``"OR"``, ``"SMD"``...); default from ``data``.
    mu_truncation : {None, "positive", "negative"}
        Directional prior of the average effect (its normal prior truncated to one side of 0).
    prior_pet, prior_peese : Prior, optional
        Priors of ``|beta|`` (default RoBMA's half-Cauchy(1) and half-Cauchy(5)).
    smc_draws, smc_chains : int
        Particles and independent runs of the SMC estimates of the selection models (used where
        importance sampling on randomised quasi-Monte Carlo points, the default engine of the
        selection models, reports a Monte-Carlo error of ``log_ml`` above 0.05).
    seed : int, optional
        Seed of the SMC runs (recorded).
    rob : str, optional
        Column with each trial's risk-of-bias judgement for one domain or overall (RoB 1: ``"low"``,
        ``"unclear"``, ``"high"``; RoB 2: ``"low"``, ``"some concerns"``, ``"high"``; spellings as
        :func:`~ketabayes.data.risk_of_bias.check_risk_of_bias` accepts them, anything else is an
        error naming the study), for the ``"RoB"`` bias model (``bias=["RoB", ...]``): trials judged
        one of ``rob_high`` are shifted by a bias ``delta`` (see ``prior_rob``); ``mu`` is then the
        effect in the other trials.
    rob_high : sequence of str, optional
        Judgements that count as high risk. Default: the levels the bias prior was estimated for
        (``("high", "unclear")`` for the meta-epidemiological priors), else ``("high",)``. A RoB 2
        column with a prior estimated from RoB 1 judgements needs it explicitly (which RoB 2 levels
        correspond to "high or unclear" is an assumption to state).
    prior_rob : BiasPrior, str or Prior, optional
        Prior of the bias (:mod:`ketabayes.model.bias_priors`): a ``BiasPrior`` (published, e.g.
        :func:`~ketabayes.model.bias_priors.meta_epidemiological_prior`, or elicited on the analysis
        scale); a string ``"ROBES 2018:<domain>[:<outcome type>]"`` / ``"BRANDO 2012:..."``; or a
        prior of the bias' size ``|delta|`` (e.g. ``"halfnormal(0.4)"``, the shift then always
        towards benefit). Default, for odds-ratio analyses only: the ROBES 2018 prior of the domain
        named by ``rob`` (a column ``rob_allocation_concealment`` of
        :func:`~ketabayes.data.revman.read_revman`, or ``allocation_concealment``...), all outcomes.
        Any other case has no cited default and needs ``prior_rob``. Log-OR priors are refused for
        other measures.
    draws, chains : int
        Shape of the stored joint draws from the model-averaged posterior (``posterior`` group of
        ``result.tree``: ``model``, ``mu``, ``tau``, ``theta_new``), with ``log_likelihood``,
        ``prior`` and ``log_prior`` groups for ArviZ (see :func:`~ketabayes.inference.arviz_groups_multi.add_bma_groups`).
        The tables do not use them: they are exact mixtures (Monte Carlo only for selection models).

    Returns
    -------
    BMAResult

    Examples
    --------
    >>> import pandas as pd, ketabayes as kb
    >>> df = pd.DataFrame({"yi": [0.3, 0.1, 0.5], "vi": [0.04, 0.09, 0.05]})
    >>> res = kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", benefit="higher", seed=1)
    >>> list(res.models["model"])
    ['FE-H0', 'FE-H1', 'RE-H0', 'RE-H1']
    >>> bool(res.inclusion_bf("effect")["bf"] > 1)
    True
    """
    import arviz as az

    from ketabayes.inference.bma import _resolve_bias, fit_ensemble
    from ketabayes.model._fit_common import draw_seed, fit_settings, make_thresholds, prior_entry
    from ketabayes.model.bias_priors import BiasPrior
    from ketabayes.model.priors import HalfCauchy, parse_prior
    from ketabayes.model.random_effects import RandomEffectsModel
    from ketabayes.result.bma_result import BMAResult

    m = RandomEffectsModel(data, prior_mu=prior_mu, prior_tau=prior_tau, measure=measure, study=study, yi=yi,
                           vi=vi, sei=sei)
    seed = draw_seed(seed)
    prior_rob = _bias_prior(prior_rob, rob, m.measure, "RoB" in _resolve_bias(bias))
    if rob_high is None:
        rob_high = prior_rob.levels if isinstance(prior_rob, BiasPrior) else ("high",)
        if isinstance(prior_rob, BiasPrior) and "unclear" in rob_high and rob is not None:
            _refuse_rob2_with_rob1_prior(m, rob, prior_rob)
    rob_x = _rob_indicator(m, rob, rob_high) if rob is not None else None
    prior_pet = parse_prior(prior_pet) if prior_pet is not None else HalfCauchy(1.0)
    prior_peese = parse_prior(prior_peese) if prior_peese is not None else HalfCauchy(5.0)
    ens = fit_ensemble(m.yi, m.vi, prior_mu=m.prior_mu, prior_tau=m.prior_tau, bias=bias, prior_probs=prior_probs,
                       benefit=benefit, mu_truncation=mu_truncation, prior_pet=prior_pet, prior_peese=prior_peese,
                       smc_draws=smc_draws, smc_chains=smc_chains, seed=seed, rob=rob_x, prior_rob=prior_rob)
    biases = list(_resolve_bias(bias))
    thresholds = make_thresholds(mcid, m.measure, benefit, harm)
    engine = "+".join(m for m in ("quadrature", "importance", "smc") if any(f.method == m for f in ens.fits))
    settings = fit_settings("bma", engine, m.measure,
                            priors={"prior_mu": prior_entry(m.prior_mu, short=True),
                                    "prior_tau": prior_entry(m.prior_tau)},
                            thresholds=thresholds, seed=seed, draws=draws, chains=chains,
                            excluded=m.excluded, data_hash=m.data_hash())
    settings["engine_settings"] = {
        "bias": biases, "prior_probs": [f.spec.prior_prob for f in ens.fits], "bias_direction": benefit,
        "mu_truncation": mu_truncation, "prior_pet": prior_entry(prior_pet), "prior_peese": prior_entry(prior_peese),
        "smc_draws": int(smc_draws), "smc_chains": int(smc_chains), "rob": rob,
        "rob_high": [str(h) for h in rob_high] if rob is not None else None,
        "prior_rob": prior_entry(prior_rob) if not isinstance(prior_rob, BiasPrior) else None,
        "bias_prior": prior_rob.to_dict() if isinstance(prior_rob, BiasPrior) else None}
    tree = az.from_dict({"posterior": {}, "observed_data": {"y": m.yi}, "constant_data": {"vi": m.vi}},
                        dims={"y": [dims.STUDY], "vi": [dims.STUDY]}, coords={dims.STUDY: m.studies})
    tree = _add_model_groups(tree, ens)
    if rob_x is not None:
        import xarray as xr

        const = tree["constant_data"].to_dataset().assign(rob_high=((dims.STUDY,), rob_x.astype(float)))
        tree["constant_data"] = xr.DataTree(const)
    from ketabayes.inference.arviz_groups_multi import add_bma_groups
    from ketabayes.inference.bma_draws import can_draw

    if can_draw(ens):
        tree = add_bma_groups(tree, ens, seed=seed, draws=draws, chains=chains)
    else:  # an engine without joint draws: the tables are unaffected, ArviZ has no draws to work on
        import xarray as xr

        tree["posterior"] = xr.DataTree(xr.Dataset())
        settings["arviz_groups"] = "not stored: a model's engine has no joint posterior draws"
    return BMAResult(tree, settings, ens)


def _rob_indicator(m, column: str, high) -> np.ndarray:
    """1.0 for the trials judged one of ``high``, 0.0 otherwise; a missing or unknown judgement is a DataError."""
    from ketabayes.data.risk_of_bias import high_risk_indicator
    from ketabayes.data.validation import require_column

    require_column(m.data, column, purpose="the risk-of-bias judgements (rob=)")
    if isinstance(high, str):
        high = (high,)
    return high_risk_indicator(m.data[column].tolist(), list(m.studies), column, high)


def _refuse_rob2_with_rob1_prior(m, column, prior) -> None:
    from ketabayes.data.risk_of_bias import normalise_judgements
    from ketabayes.errors import PriorError

    if column not in m.data.columns:
        return
    _, tool = normalise_judgements(m.data[column].tolist(), list(m.studies), column, missing="keep")
    if tool == "RoB 2":
        raise PriorError(f"column {column!r} holds RoB 2 judgements, but the bias prior {prior.label!r} was estimated "
                         "for RoB 1 judgements (high or unclear vs low). Say which RoB 2 judgements it applies to: "
                         "rob_high=('high',) or rob_high=('high', 'some concerns')")


def _bias_prior(prior_rob, rob, measure, needed: bool):
    """The prior of the risk-of-bias shift: given, parsed from a source string, or the cited default."""
    from ketabayes.errors import PriorError
    from ketabayes.model.bias_priors import LOG_OR_MEASURES, BiasPrior, meta_epidemiological_prior
    from ketabayes.model.priors import parse_prior

    if prior_rob is None:
        if not needed:
            return None
        if rob is not None and (measure or "").upper() in LOG_OR_MEASURES:
            try:
                prior_rob = meta_epidemiological_prior(str(rob), "all")
            except PriorError:
                prior_rob = None
        if prior_rob is None:
            raise PriorError(
                f"the 'RoB' bias model needs prior_rob: a cited default exists only for odds-ratio analyses whose "
                f"rob column names a domain of the ROBES study (sequence_generation, allocation_concealment, "
                f"blinding, incomplete_outcome_data); here measure={measure!r}, rob={rob!r}. Pass "
                "prior_rob=meta_epidemiological_prior(domain, outcome) (log OR scale) or an elicited "
                "BiasPrior(mean, sd, kappa) on the analysis scale")
    elif isinstance(prior_rob, str) and ":" in prior_rob:
        source, _, rest = prior_rob.partition(":")
        domain, _, outcome = rest.partition(":")
        prior_rob = meta_epidemiological_prior(domain.strip(), outcome.strip() or "all", source=source)
    elif not isinstance(prior_rob, BiasPrior):
        prior_rob = parse_prior(prior_rob)
    if isinstance(prior_rob, BiasPrior):
        prior_rob.check_measure(measure)
    return prior_rob


def _add_model_groups(tree, ens):
    """Model table in ``constant_data``; posterior model probabilities and SMC output in ``model_averaging``."""
    import xarray as xr

    tab = ens.models()
    const = tree["constant_data"].to_dataset()
    const = const.assign({c: (("model",), tab[c].to_numpy(dtype=float)) for c in ("prior_prob", "log_ml", "log_ml_se")})
    const = const.assign_coords(model=tab["model"].to_numpy(dtype=str))
    post = {"post_prob": (("model",), ens.post_probs)}
    smc = [f for f in ens.fits if f.smc is not None]
    coords = {"model": tab["model"].to_numpy(dtype=str)}
    if smc:
        n = max(f.smc.log_ml_chains.size for f in smc)
        nd = max((f.smc.mu if f.smc.mu is not None else f.smc.omega).shape[0] for f in smc)
        nw = max(f.smc.omega.shape[1] for f in smc)

        def pad(a, shape):
            out = np.full(shape, np.nan)
            if a is not None:
                out[tuple(slice(0, s) for s in a.shape)] = a
            return out

        post["log_ml_chains"] = (("smc_model", "smc_chain"), np.stack([pad(f.smc.log_ml_chains, (n,)) for f in smc]))
        post["mu_smc"] = (("smc_model", "sample"), np.stack([pad(f.smc.mu, (nd,)) for f in smc]))
        post["tau_smc"] = (("smc_model", "sample"), np.stack([pad(f.smc.tau, (nd,)) for f in smc]))
        post["omega_smc"] = (("smc_model", "sample", "weight"), np.stack([pad(f.smc.omega, (nd, nw)) for f in smc]))
        coords["smc_model"] = np.array([f.spec.label for f in smc], dtype=str)
    tree["constant_data"] = xr.DataTree(const)
    tree["model_averaging"] = xr.DataTree(xr.Dataset(post, coords=coords))
    return tree
